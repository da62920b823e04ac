"""The report as blocks (paragraphs, tables, preformatted text, figures) rendered to HTML and Markdown.

Every piece of text is escaped where it is rendered, so corpus and model text never becomes markup;
the HTML also forbids scripts outright (Content-Security-Policy).
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
pre { background: #f7f7f7; padding: .75rem; white-space: pre-wrap; word-break: break-word; font-size: .85rem; }
img { max-width: 100%; }
nav a { margin-right: 1rem; }
.caption { color: #555; font-size: .9rem; }
"""
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    id: str = ""
    caption: str = ""


@dataclass
class Preformatted:
    text: str
    summary: str = ""


@dataclass
class Figure:
    name: str
    png: bytes
    caption: str


Block = Paragraph | Table | Preformatted | Figure


@dataclass
class Section:
    title: str
    id: str
    blocks: list[Block] = field(default_factory=list)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _html_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{_e(block.text)}</p>"
    if isinstance(block, Preformatted):
        pre = f"<pre>{_e(block.text)}</pre>"
        return f"<details><summary>{_e(block.summary)}</summary>{pre}</details>" if block.summary else pre
    if isinstance(block, Figure):
        data = base64.b64encode(block.png).decode()
        return (f'<figure><img alt="{_e(block.caption)}" src="data:image/png;base64,{data}">'
                f'<figcaption class="caption">{_e(block.caption)}</figcaption></figure>')
    head = "".join(f"<th>{_e(h)}</th>" for h in block.headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in block.rows)
    caption = f"<caption>{_e(block.caption)}</caption>" if block.caption else ""
    table_id = f' id="{_e(block.id)}"' if block.id else ""
    return f"<table{table_id}>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(title: str, sections: list[Section]) -> str:
    nav = "".join(f'<a href="#{_e(s.id)}">{_e(s.title)}</a>' for s in sections)
    parts = [f'<section id="{_e(s.id)}"><h2>{_e(s.title)}</h2>' + "\n".join(_html_block(b) for b in s.blocks)
             + "</section>" for s in sections]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>{_e(title)}</title><style>{STYLE}</style></head>\n"
            f"<body><h1>{_e(title)}</h1><nav>{nav}</nav>\n" + "\n".join(parts) + "\n</body></html>\n")


def _md_text(text: object) -> str:
    """Text for Markdown: HTML escaped (renderers pass raw HTML through) and markup characters quoted."""
    escaped = html.escape(str(text), quote=False).replace("\n", " ")  # quotes are not markup outside tags
    return re.sub(r"([\\`*_\[\]|#])", r"\\\1", escaped)


def _md_block(block: Block, figures: Path, figure_link: str) -> str:
    if isinstance(block, Paragraph):
        return _md_text(block.text)
    if isinstance(block, Preformatted):
        # A fence longer than any backtick run inside: the text cannot close it.
        longest = max((len(run) for run in re.findall(r"`+", block.text)), default=0)
        fence = "`" * max(3, longest + 1)
        label = f"{_md_text(block.summary)}\n\n" if block.summary else ""
        return f"{label}{fence}text\n{block.text}\n{fence}"
    if isinstance(block, Figure):
        figures.mkdir(parents=True, exist_ok=True)
        from synthcpt.atomic import atomic_path

        with atomic_path(figures / f"{block.name}.png") as tmp:
            tmp.write_bytes(block.png)
        return f"![{_md_text(block.caption)}]({figure_link}/{block.name}.png)"
    lines = ["| " + " | ".join(_md_text(h) for h in block.headers) + " |",
             "|" + "---|" * len(block.headers)]
    lines += ["| " + " | ".join(_md_text(c) for c in row) + " |" for row in block.rows]
    caption = f"{_md_text(block.caption)}\n\n" if block.caption else ""
    return caption + "\n".join(lines)


def to_markdown(title: str, sections: list[Section], figures: Path, figure_link: str) -> str:
    """Markdown; figures are written as PNG files into `figures`, linked as `figure_link/NAME.png`."""
    parts = [f"# {_md_text(title)}"]
    for section in sections:
        parts.append(f"## {_md_text(section.title)}")
        parts += [_md_block(b, figures, figure_link) for b in section.blocks]
    return "\n\n".join(parts) + "\n"
