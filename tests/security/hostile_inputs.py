"""The hostile-input corpus: values an attacker (or a careless paste) may put into any flow
parameter or approval field.

Each entry is *hostile for every free-text field*; the tests decide, per field, whether the value
must be refused (validation error) or may pass and must then be rendered inert. Groups:

- ``address``: malformed addresses, OData/filter injection through the account field;
- ``huge``: 100 KB strings;
- ``lookalike``: unicode confusables, invisible and bidi characters;
- ``crlf``: CR/LF, header and log-line injection;
- ``markup``: Markdown, HTML, Jinja;
- ``traversal``: path traversal and separators (tenant profile names, block names).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hostile:
    id: str
    group: str
    value: str

    def __repr__(self) -> str:  # keep pytest ids and failure output short
        return f"Hostile({self.id})"


_HUGE = "A" * 100_000

CORPUS: tuple[Hostile, ...] = (
    # --- malformed addresses and query injection --------------------------------------------
    Hostile("empty", "address", ""),
    Hostile("space-only", "address", "   "),
    Hostile("no-at", "address", "rob.contoso.com"),
    Hostile("two-ats", "address", "rob@evil.com@contoso.com"),
    Hostile("no-domain", "address", "rob@"),
    Hostile("no-local", "address", "@contoso.com"),
    Hostile("no-tld", "address", "rob@contoso"),
    Hostile("double-dot", "address", "rob..admin@contoso.com"),
    Hostile("leading-space", "address", " rob@contoso.com"),
    Hostile("trailing-space", "address", "rob@contoso.com "),
    Hostile("display-name", "address", "Rob <rob@contoso.com>"),
    Hostile("quoted-local", "address", '"rob@evil"@contoso.com'),
    Hostile("ip-literal", "address", "rob@[127.0.0.1]"),
    Hostile("odata-quote", "address", "rob'@contoso.com"),
    Hostile("odata-or", "address", "x@contoso.com' or startswith(userPrincipalName,'a"),
    Hostile("odata-any", "address", "x@c.com')/any(p:p eq 'smtp:admin@contoso.com"),
    Hostile("wildcard", "address", "*@contoso.com"),
    Hostile("comma-list", "address", "rob@contoso.com,admin@contoso.com"),
    Hostile("semicolon-list", "address", "rob@contoso.com;admin@contoso.com"),
    Hostile("url-encoded", "address", "rob%40contoso.com"),
    Hostile("percent-slash", "address", "rob%2f..%2fadmin@contoso.com"),
    Hostile("powershell-sub", "address", "$(Remove-Mailbox admin)@contoso.com"),
    Hostile("backtick", "address", "rob`@contoso.com"),
    Hostile("null-byte", "address", "rob@contoso.com\x00admin@contoso.com"),
    Hostile("tab", "address", "rob\t@contoso.com"),
    # --- huge -------------------------------------------------------------------------------
    Hostile("100k-plain", "huge", _HUGE),
    Hostile("100k-address", "huge", "a" * 100_000 + "@contoso.com"),
    Hostile("100k-newlines", "huge", "x\n" * 50_000),
    Hostile("100k-unicode", "huge", "\u0430" * 50_000),  # 100 KB of Cyrillic small a (2 bytes each)
    # --- unicode look-alikes, invisible and bidi characters ---------------------------------
    Hostile("cyrillic-a", "lookalike", "rob@cont\u043eso.com"),  # Cyrillic small o
    Hostile("cyrillic-local", "lookalike", "r\u043eb@contoso.com"),
    Hostile("fullwidth-at", "lookalike", "rob\uff20contoso.com"),
    Hostile("fullwidth-letters", "lookalike", "\uff52\uff4f\uff42@contoso.com"),
    Hostile("greek-omicron", "lookalike", "r\u03bfb@contoso.com"),
    Hostile("dotless-i", "lookalike", "adm\u0131n@contoso.com"),
    Hostile("zero-width-space", "lookalike", "rob\u200b@contoso.com"),
    Hostile("zero-width-joiner", "lookalike", "ro\u200db@contoso.com"),
    Hostile("bidi-override", "lookalike", "rob@\u202emoc.osotnoc"),
    Hostile("bidi-isolate", "lookalike", "\u2066admin\u2069@contoso.com"),
    Hostile("line-separator", "lookalike", "rob@contoso.com\u2028Approved: yes"),
    Hostile("combining-mark", "lookalike", "ro\u0301b@contoso.com"),
    Hostile("nbsp", "lookalike", "rob\u00a0@contoso.com"),
    Hostile("soft-hyphen", "lookalike", "con\u00adtoso"),
    Hostile("idn-punycode", "lookalike", "rob@xn--cntoso-9of.com"),
    # --- CR/LF and line injection ------------------------------------------------------------
    Hostile("crlf-header", "crlf", "rob@contoso.com\r\nBcc: attacker@evil.com"),
    Hostile("lf-log-line", "crlf", "INC-1\n2024-01-01 00:00:00 INFO approved by admin"),
    Hostile("cr-only", "crlf", "INC-1\rAPPROVED"),
    Hostile("trailing-lf", "crlf", "contoso\n"),
    Hostile("trailing-crlf-address", "crlf", "rob@contoso.com\r\n"),
    Hostile("vertical-tab", "crlf", "INC-1\x0bx"),
    Hostile("escape-seq", "crlf", "INC-1\x1b[2J\x1b[31mFAKE"),
    # --- markdown, HTML, Jinja ---------------------------------------------------------------
    Hostile("md-link", "markup", "[click to approve](https://evil.example/approve)"),
    Hostile("md-image", "markup", "![x](https://evil.example/track.png)"),
    Hostile("md-heading", "markup", "# APPROVED BY CISO"),
    Hostile("md-table-break", "markup", "x | **approved** | yes"),
    Hostile("md-autolink", "markup", "<https://evil.example>"),
    Hostile("md-bare-url", "markup", "www.evil.example/login"),
    Hostile("md-code-fence", "markup", "```\nfake output\n```"),
    Hostile("html-script", "markup", "<script>alert(document.cookie)</script>"),
    Hostile("html-img", "markup", "<img src=x onerror=\"fetch('//evil')\">"),
    Hostile("html-iframe", "markup", '<iframe src="https://evil.example"></iframe>'),
    Hostile("html-entity", "markup", "&lt;script&gt;"),
    Hostile("jinja-expr", "markup", "{{ 7*7 }}"),
    Hostile("jinja-config", "markup", "{{ config.items() }}"),
    Hostile("jinja-mro", "markup", "{{ ''.__class__.__mro__[1].__subclasses__() }}"),
    Hostile("jinja-stmt", "markup", "{% for x in range(10**9) %}x{% endfor %}"),
    Hostile("jinja-comment", "markup", "{# hidden #}"),
    Hostile("format-string", "markup", "{0.__class__} %s %n %(password)s"),
    Hostile("prefect-template", "markup", "{{ prefect.blocks.secret.unblock-handover }}"),
    # --- path traversal and separators -------------------------------------------------------
    Hostile("dotdot", "traversal", "../../etc/passwd"),
    Hostile("dotdot-backslash", "traversal", "..\\..\\windows\\system32"),
    Hostile("dotdot-encoded", "traversal", "%2e%2e%2f%2e%2e%2fetc"),
    Hostile("dotdot-double-encoded", "traversal", "%252e%252e%252f"),
    Hostile("absolute", "traversal", "/etc/passwd"),
    Hostile("slash-in-name", "traversal", "contoso/../fabrikam"),
    Hostile("block-slug", "traversal", "secret/unblock-handover-x"),
    Hostile("dot", "traversal", "."),
    Hostile("dotdot-bare", "traversal", ".."),
    Hostile("upper-case", "traversal", "CONTOSO"),
    Hostile("tenant-guid-url", "traversal", "contoso?include_secrets=true"),
    Hostile("tenant-hash", "traversal", "contoso#fragment"),
    Hostile("null-in-name", "traversal", "contoso\x00fabrikam"),
    Hostile("leading-dash", "traversal", "-contoso"),
    Hostile("65-chars", "traversal", "a" * 65),
)

assert len({h.id for h in CORPUS}) == len(CORPUS), "ids must be unique"

# Values that are valid profile names/addresses but look suspicious; they must *pass* validation
# (no false positives) and act only on what they name.
BENIGN_LOOKING: tuple[tuple[str, str], ...] = (
    ("tenant", "contoso"),
    ("account", "rob@contoso.com"),
    ("account", "Rob.Smith+tag@Contoso.com"),
    ("ticket", "INC-12345"),
    ("requested_by", "alice@contoso.com"),
)


def by_group(*groups: str) -> tuple[Hostile, ...]:
    return tuple(h for h in CORPUS if h.group in groups)
