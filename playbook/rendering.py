"""Render the human-facing texts (approval description, evidence, reports, notifications).

Two Jinja environments over ``templates/``, one per kind of reader:

- ``ENV`` (``*.md.j2``): Markdown for the Prefect UI (form descriptions, artifacts). Every value
  printed with ``{{ ... }}`` passes through ``finalize``, which makes it inert Markdown *and*
  inert HTML (macro output, already rendered by a template, is the only thing passed through):
  HTML-special characters become entities, every other Markdown punctuation character is
  backslash-escaped, and control or line-breaking characters are replaced. A template author
  cannot forget to escape. Templates therefore never put values inside code spans (backslashes
  would show there) and build all structure (tables, emphasis, links) from literal template
  text only.
- ``TEXT_ENV`` (``*.txt.j2``): plain text for chat notifications. Values are printed as they
  are (``rob@contoso.com``, not ``rob\\@contoso\\.com``), except the few characters a chat
  service reads as markup (Slack's ``<…>`` links and mentions and its ``&`` entities, Markdown
  ``[label](url)`` links in Teams cards), which become look-alike characters (``chat_text``).
  Only a ``TrustedLink`` (a URL checked by ``orchestration.approvals.notify.deep_link``) is
  printed raw.

``markdown_to_text`` turns the project's own Markdown back into plain text for a terminal.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from .eviction import EvictionEvidence, EvictionPlan
from .evidence import Evidence, Finding, key_findings, restriction_line, when
from .report import RunReport

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
MAX_VALUE_LENGTH = 2000

_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
# Markdown/GFM punctuation, including ':' '.' '@' and '/' (against parse-time autolinks) and
# '{' '}' so text never looks like a template expression. Prefect's V2 UI still links e-mail
# addresses and bare URLs found in the rendered text; such a link shows its own target, so a
# value can never become a link with a different label.
_MARKDOWN = set("\\`*_{}[]()#+-.!|~:@/=$%^")
_REPLACEMENT = "\N{REPLACEMENT CHARACTER}"


def md_escape(value: object) -> str:
    """``value`` as text that renders literally in Markdown and HTML."""
    # plain_text formats, cuts and replaces control characters; none of what it leaves behind
    # for them (the replacement character, the ellipsis) is HTML or Markdown punctuation.
    out: list[str] = []
    for ch in plain_text(value):
        if ch in _HTML:
            out.append(_HTML[ch])
        elif ch in _MARKDOWN:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _format(value: object) -> str:
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def plain_text(value: object) -> str:
    """``value`` as one line of plain text: formatted, cut, control characters replaced."""
    if value is None:
        return ""
    text = _format(value)
    if len(text) > MAX_VALUE_LENGTH:
        text = text[:MAX_VALUE_LENGTH] + "…"
    return "".join(
        _REPLACEMENT if unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} else ch for ch in text
    )


# Characters chat services read as markup, and their look-alikes. Slack: '<' '>' open and close
# links and mentions (<http://x|label>, <!channel>), '&' starts the entities it decodes. Teams
# (Adaptive Card Markdown) and Markdown in general: '[' ']' make a labelled link. None of them
# occurs in an address, a ticket or a name the playbook accepts, so ordinary values print as is.
_CHAT_LOOKALIKES = str.maketrans(
    {
        "<": "\N{SINGLE LEFT-POINTING ANGLE QUOTATION MARK}",
        ">": "\N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK}",
        "&": "\N{FULLWIDTH AMPERSAND}",
        "[": "\N{FULLWIDTH LEFT SQUARE BRACKET}",
        "]": "\N{FULLWIDTH RIGHT SQUARE BRACKET}",
    }
)


def chat_text(value: object) -> str:
    """``value`` as plain text that no chat service turns into a link, mention or markup."""
    return plain_text(value).translate(_CHAT_LOOKALIKES)


# A name from the tenant (a device, an app) shown in a form field's help text: besides links and
# tags, no emphasis, code or template braces, whatever renders that text.
_FORM_LOOKALIKES = str.maketrans(
    {
        "*": "\N{ASTERISK OPERATOR}",
        "_": "\N{FULLWIDTH LOW LINE}",
        "`": "\N{MODIFIER LETTER GRAVE ACCENT}",
        "{": "\N{FULLWIDTH LEFT CURLY BRACKET}",
        "}": "\N{FULLWIDTH RIGHT CURLY BRACKET}",
        "#": "\N{FULLWIDTH NUMBER SIGN}",
        "|": "\N{FULLWIDTH VERTICAL LINE}",
    }
)


def form_text(value: object) -> str:
    """``value`` as inert plain text for a form field's description (see ``chat_text``)."""
    return chat_text(value).translate(_FORM_LOOKALIKES)


def _finalize(value: Any) -> Markup:
    # Markup only comes from the templates themselves (macro output); every other value is data.
    if isinstance(value, Markup):
        return value
    return Markup(md_escape(value))  # noqa: S704 - md_escape made it inert


ENV = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    undefined=StrictUndefined,
    finalize=_finalize,
    # With autoescape on, macro output is Markup (not escaped again) and finalize's Markup
    # result is final; finalize does the HTML and Markdown escaping in one pass.
    autoescape=True,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


_OWN_URL = re.compile(r"https?://[A-Za-z0-9._:/\-?=&%~]+")


def md_link(text: object, url: str | None) -> Markup:
    """A Markdown link to one of our own URLs (label escaped, URL checked); else just the label."""
    label = md_escape(text)
    if not url or not _OWN_URL.fullmatch(url):
        return Markup(label)  # noqa: S704 - md_escape made it inert
    return Markup(f"[{label}]({url})")  # noqa: S704 - label escaped, URL has no ")" or space


ENV.filters["link"] = md_link


class TrustedLink(str):
    """A URL that passed ``orchestration.approvals.notify.deep_link``; ``TEXT_ENV`` prints it
    as it is."""

    __slots__ = ()


def _finalize_text(value: Any) -> str:
    if isinstance(value, TrustedLink):
        return str(value)
    return chat_text(value)


TEXT_ENV = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    undefined=StrictUndefined,
    finalize=_finalize_text,
    # Plain text, never HTML: chat_text neutralises what chat services read as markup.
    autoescape=False,  # noqa: S701
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_text(template: str, **context: Any) -> str:
    """Render the plain-text template ``templates/<template>`` with ``context``."""
    return TEXT_ENV.get_template(template).render(**context)


# Our Markdown, read back: a backslash escape, one of the five entities md_escape writes, a
# link built by md_link, or bold markers. Anything else is copied as it is.
_MARKDOWN_TOKEN = re.compile(
    r"\\(?P<escaped>.)"
    r"|&(?P<entity>amp|lt|gt|quot|#39);"
    r"|\[(?P<label>(?:\\.|[^\\\]\n])*)\]\((?P<url>https?://[^)\s]+)\)"
    r"|\*\*"
)
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "#39": "'"}
_TERMINAL_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def markdown_to_text(markdown: str) -> str:
    """The project's Markdown (from ``ENV``) as plain text for a terminal: no backslash escapes,
    no entities, no bold markers; a link becomes ``label (url)``. Headings, lists and tables stay
    as they read well. Control characters (terminal escape sequences) are replaced."""

    def plain(m: re.Match[str]) -> str:
        if m.group("escaped") is not None:
            return m.group("escaped")
        if m.group("entity") is not None:
            return _ENTITIES[m.group("entity")]
        if m.group("url") is not None:
            return f"{_MARKDOWN_TOKEN.sub(plain, m.group('label'))} ({m.group('url')})"
        return ""

    return _TERMINAL_UNSAFE.sub(_REPLACEMENT, _MARKDOWN_TOKEN.sub(plain, markdown))


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` with ``context``."""
    return ENV.get_template(template).render(**context)


def render_approval(
    report: RunReport,
    *,
    evidence: Evidence,
    removal_reason: str,
    timeout_minutes: float,
    evidence_link: str | None,
    evidence_key: str,
    plan: EvictionPlan | None = None,
) -> str:
    """The short Markdown above the approval form: the risk line, the restricted entry, the key
    findings, what approving does, and the link to the full evidence (``render_evidence``)."""
    assert report.entry is not None, "the approval is only asked for a listed account"
    findings: tuple[Finding, ...] = key_findings(evidence)
    return render(
        "approval.md.j2",
        r=report,
        ev=evidence,
        findings=findings,
        restriction=restriction_line(report.entry, report.account),
        removal_reason=removal_reason,
        timeout_minutes=timeout_minutes,
        evidence_link=evidence_link,
        evidence_key=evidence_key,
        actions=plan.actions if plan is not None else (),
    )


def render_evidence(
    report: RunReport, *, evidence: Evidence, plan: EvictionPlan | None = None
) -> str:
    """The full evidence for the approver, a Markdown artifact of its own: one section per kind
    of evidence (the eviction sections included), then the user, the Restricted users entry and
    the steps so far."""
    return render(
        "evidence.md.j2", r=report, ev=evidence, findings=key_findings(evidence), plan=plan
    )


def render_privileged_approval(
    report: RunReport,
    *,
    roles: tuple[str, ...],
    timeout_minutes: float,
    evidence_link: str | None,
    evidence_key: str,
) -> str:
    """The short Markdown above the pre-reset form for an account that holds an admin role."""
    return render(
        "privileged_approval.md.j2",
        r=report,
        roles=roles,
        timeout_minutes=timeout_minutes,
        evidence_link=evidence_link,
        evidence_key=evidence_key,
    )


def render_privileged_evidence(report: RunReport, *, roles: tuple[str, ...]) -> str:
    """The full evidence behind the pre-reset approval: the account, its roles, the request."""
    return render("privileged_evidence.md.j2", r=report, roles=roles)


def render_eviction_evidence(evidence: EvictionEvidence, plan: EvictionPlan | None = None) -> str:
    """The eviction sections of the full evidence artifact (``eviction_evidence.md.j2``): sign-in
    methods, sign-ins, app consents, delegates, sent mail, and the actions that apply. The only
    text that carries sign-in IP addresses and message subjects."""
    return render("eviction_evidence.md.j2", ev=evidence, plan=plan)


def render_unblock_report(report: RunReport) -> str:
    return render("unblock_report.md.j2", r=report)


def render_verify_report(report: RunReport) -> str:
    return render("verify_report.md.j2", r=report)
