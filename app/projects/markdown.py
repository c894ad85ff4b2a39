"""A small, safe markdown renderer for project instructions: the text is HTML-escaped first, then a subset
(headings, paragraphs, lists, bold, italic, code, http(s) links) becomes markup, so no HTML gets through."""

from __future__ import annotations

import re
from html import escape

from markupsafe import Markup

_INLINE = [
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"<em>\1</em>"),
    (re.compile(r"(?<!\w)_(?!\s)(.+?)(?<!\s)_(?!\w)"), r"<em>\1</em>"),
    (
        re.compile(r"\[([^\]]+)\]\((https?://[^\s)\"'<>]+)\)"),
        r'<a href="\2" rel="noopener noreferrer" target="_blank">\1</a>',
    ),
]
_HEADING = re.compile(r"^(#{1,3})\s+(.*)$")
_BULLET = re.compile(r"^[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\d+[.)]\s+(.*)$")


def _inline(text: str) -> str:
    out = escape(text, quote=True)
    for pattern, replacement in _INLINE:
        out = pattern.sub(replacement, out)
    return out


def render_markdown(text: str) -> Markup:
    """HTML for `text`; headings start at h3 so they sit under the page's own headings."""
    html: list[str] = []
    paragraph: list[str] = []
    list_tag: str | None = None

    def close_paragraph() -> None:
        if paragraph:
            html.append(f"<p>{_inline(' '.join(paragraph))}</p>")  # a line break inside is a space
            paragraph.clear()

    def close_list() -> None:
        nonlocal list_tag
        if list_tag:
            html.append(f"</{list_tag}>")
            list_tag = None

    for raw in (text or "").splitlines():
        line = raw.strip()
        heading, bullet, numbered = _HEADING.match(line), _BULLET.match(line), _NUMBERED.match(line)
        if not line or heading or bullet or numbered:
            close_paragraph()
        if not (bullet or numbered):
            close_list()
        if heading:
            level = len(heading.group(1)) + 2
            html.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif bullet or numbered:
            tag = "ul" if bullet else "ol"
            if list_tag != tag:
                close_list()
                html.append(f"<{tag}>")
                list_tag = tag
            html.append(f"<li>{_inline((bullet or numbered).group(1))}</li>")
        elif line:
            paragraph.append(line)
    close_paragraph()
    close_list()
    return Markup("\n".join(html))
