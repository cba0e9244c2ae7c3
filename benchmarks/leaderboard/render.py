"""The page as a list of blocks, rendered twice: as markdown and as one self-contained html."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Image:
    path: str  # relative to the page
    alt: str


@dataclass(frozen=True)
class Links:
    lead: str
    items: tuple[tuple[str, str], ...]  # (label, relative path)


Block = Heading | Text | Table | Image | Links


def render_markdown(blocks: Sequence[Block]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    parts = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"{'#' * b.level} {b.text}")
        elif isinstance(b, Text):
            parts.append(b.text)
        elif isinstance(b, Table):
            lines = ["| " + " | ".join(cell(h) for h in b.header) + " |"]
            lines.append("|" + "|".join("---" for _ in b.header) + "|")
            lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in b.rows]
            parts.append("\n".join(lines))
        elif isinstance(b, Image):
            parts.append(f"![{b.alt}]({b.path})")
        else:
            parts.append(b.lead + " " + " · ".join(f"[{label}]({path})" for label, path in b.items))
    return "\n\n".join(parts) + "\n"


HTML_STYLE = (
    "body{font-family:sans-serif;max-width:80em;margin:auto;padding:1em}"
    "table{border-collapse:collapse;margin:.5em 0}"
    "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}"
    "td:first-child,th:first-child{text-align:left}"
    "p.note{color:#444;font-size:90%}img{max-width:100%}"
)


def render_html(blocks: Sequence[Block], title: str) -> str:
    """One self-contained page (inline style, no scripts); images are files beside it."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{HTML_STYLE}</style></head><body>",
    ]
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"<h{b.level}>{e(b.text)}</h{b.level}>")
        elif isinstance(b, Text):
            parts.append(f'<p class="note">{e(b.text)}</p>')
        elif isinstance(b, Table):
            head = "".join(f"<th>{e(h)}</th>" for h in b.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in b.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(b, Image):
            parts.append(f'<p><img src="{e(b.path)}" alt="{e(b.alt)}"></p>')
        else:
            links = " · ".join(f'<a href="{e(path)}">{e(label)}</a>' for label, path in b.items)
            parts.append(f"<p>{e(b.lead)} {links}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
