"""Render the human-facing texts (approval description, reports) from ``templates/``.

One module-level Jinja ``Environment``. Every value printed with ``{{ ... }}`` passes through
``finalize``, which makes it inert Markdown *and* inert HTML (macro output, already rendered
by a template, is the only thing passed through): HTML-special characters become
entities, every other Markdown punctuation character is backslash-escaped, and control or
line-breaking characters are replaced. A template author cannot forget to escape. Templates
therefore never put values inside code spans (backslashes would show there) and build all
structure (tables, emphasis, links) from literal template text only.
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
from .evidence import Evidence
from .report import RunReport

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
MAX_VALUE_LENGTH = 2000

_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
# Markdown/GFM punctuation, including ':' '.' '@' and '/' so bare URLs and e-mail addresses
# are not auto-linked, and '{' '}' so text never looks like a template expression.
_MARKDOWN = set("\\`*_{}[]()#+-.!|~:@/=$%^")
_REPLACEMENT = "\N{REPLACEMENT CHARACTER}"


def md_escape(value: object) -> str:
    """``value`` as text that renders literally in Markdown and HTML."""
    if value is None:
        return ""
    text = _format(value)
    if len(text) > MAX_VALUE_LENGTH:
        text = text[:MAX_VALUE_LENGTH] + "…"
    out: list[str] = []
    for ch in text:
        if ch in _HTML:
            out.append(_HTML[ch])
        elif ch in _MARKDOWN:
            out.append("\\" + ch)
        elif unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"}:
            out.append(_REPLACEMENT)
        else:
            out.append(ch)
    return "".join(out)


def _format(value: object) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


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


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` with ``context``."""
    return ENV.get_template(template).render(**context)


def render_approval(
    report: RunReport,
    *,
    removal_reason: str,
    timeout_minutes: float,
    evidence: Evidence | None = None,
) -> str:
    """The Markdown shown above the approval form; the compromise evidence first."""
    return render(
        "approval.md.j2",
        r=report,
        removal_reason=removal_reason,
        timeout_minutes=timeout_minutes,
        ev=evidence,
    )


def render_privileged_approval(report: RunReport, *, roles: tuple[str, ...]) -> str:
    """The Markdown above the pre-reset form for an account that holds an admin role."""
    return render("privileged_approval.md.j2", r=report, roles=roles)


def render_eviction_evidence(evidence: EvictionEvidence, plan: EvictionPlan | None = None) -> str:
    """The eviction sections of the full evidence artifact (``eviction_evidence.md.j2``): sign-in
    methods, sign-ins, app consents, delegates, sent mail, and the actions that apply. The only
    text that carries sign-in IP addresses and message subjects."""
    return render("eviction_evidence.md.j2", ev=evidence, plan=plan)


def render_unblock_report(report: RunReport) -> str:
    return render("unblock_report.md.j2", r=report)


def render_verify_report(report: RunReport) -> str:
    return render("verify_report.md.j2", r=report)
