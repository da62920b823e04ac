"""The report as blocks (paragraphs, tables, fields, collapsible details, figures) rendered to HTML and
Markdown, so both formats carry the same content.

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
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #222;
       line-height: 1.45; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: .2rem; margin-top: 2.5rem; }
h3 { margin-top: 1.5rem; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .9rem; }
caption { text-align: left; font-weight: 600; padding: .25rem 0; }
th, td { border: 1px solid #ddd; padding: .3rem .6rem; text-align: left; vertical-align: top; max-width: 32rem; }
th { background: #f3f3f3; }
tbody tr:nth-child(even) { background: #fafafa; }
pre { background: #f7f7f7; padding: .75rem; white-space: pre-wrap; word-break: break-word; font-size: .85rem; }
img { max-width: 100%; }
nav { position: sticky; top: 0; background: #fff; padding: .5rem 0; border-bottom: 1px solid #eee; }
nav a { margin-right: 1rem; }
.lead { font-size: 1.1rem; }
.caption { color: #555; font-size: .9rem; }
details { border: 1px solid #e3e3e3; border-radius: 4px; padding: .3rem .6rem; margin: .4rem 0; }
summary { cursor: pointer; }
dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; font-size: .9rem; }
dl.fields dt { color: #555; }
dl.fields dd { margin: 0; }
"""
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


@dataclass
class Paragraph:
    text: str
    lead: bool = False  # the section's main finding, set larger


@dataclass
class Heading:
    text: str


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    id: str = ""
    caption: str = ""


@dataclass
class Fields:
    """Labelled values of one thing (a record's provenance, a stage's statistics)."""

    items: list[tuple[str, str]]


@dataclass
class Preformatted:
    text: str
    summary: str = ""


@dataclass
class Figure:
    name: str
    png: bytes
    caption: str


@dataclass
class Details:
    """A collapsed group of blocks: in HTML a `<details>`, in Markdown a bold line above them."""

    summary: str
    blocks: list[Block]


Block = Paragraph | Heading | Table | Fields | Preformatted | Figure | Details


@dataclass
class Section:
    title: str
    id: str
    blocks: list[Block] = field(default_factory=list)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _html_table(block: Table) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in block.headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in block.rows)
    caption = f"<caption>{_e(block.caption)}</caption>" if block.caption else ""
    table_id = f' id="{_e(block.id)}"' if block.id else ""
    return f'<div class="wide"><table{table_id}>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _html_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return f'<p class="lead">{_e(block.text)}</p>' if block.lead else f"<p>{_e(block.text)}</p>"
    if isinstance(block, Heading):
        return f"<h3>{_e(block.text)}</h3>"
    if isinstance(block, Fields):
        return '<dl class="fields">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in block.items) + "</dl>"
    if isinstance(block, Preformatted):
        pre = f"<pre>{_e(block.text)}</pre>"
        return f"<details><summary>{_e(block.summary)}</summary>{pre}</details>" if block.summary else pre
    if isinstance(block, Figure):
        data = base64.b64encode(block.png).decode()
        return (f'<figure id="figure-{_e(block.name)}"><img alt="{_e(block.caption)}" '
                f'src="data:image/png;base64,{data}"><figcaption class="caption">{_e(block.caption)}</figcaption>'
                "</figure>")
    if isinstance(block, Details):
        inner = "\n".join(_html_block(b) for b in block.blocks)
        return f"<details><summary>{_e(block.summary)}</summary>{inner}</details>"
    return _html_table(block)


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


def _md_figure(block: Figure, figures: Path, figure_link: str) -> str:
    from synthcpt.atomic import atomic_path

    figures.mkdir(parents=True, exist_ok=True)
    with atomic_path(figures / f"{block.name}.png") as tmp:
        tmp.write_bytes(block.png)
    return f"![{_md_text(block.caption)}]({figure_link}/{block.name}.png)"


def _md_table(block: Table) -> str:
    lines = ["| " + " | ".join(_md_text(h) for h in block.headers) + " |",
             "|" + "---|" * len(block.headers)]
    lines += ["| " + " | ".join(_md_text(c) for c in row) + " |" for row in block.rows]
    caption = f"{_md_text(block.caption)}\n\n" if block.caption else ""
    return caption + "\n".join(lines)


def _md_block(block: Block, figures: Path, figure_link: str) -> str:
    if isinstance(block, Paragraph):
        return f"**{_md_text(block.text)}**" if block.lead else _md_text(block.text)
    if isinstance(block, Heading):
        return f"### {_md_text(block.text)}"
    if isinstance(block, Fields):
        return "\n".join(f"- {_md_text(k)}: {_md_text(v)}" for k, v in block.items)
    if isinstance(block, Preformatted):
        # A fence longer than any backtick run inside: the text cannot close it.
        longest = max((len(run) for run in re.findall(r"`+", block.text)), default=0)
        fence = "`" * max(3, longest + 1)
        label = f"{_md_text(block.summary)}\n\n" if block.summary else ""
        return f"{label}{fence}text\n{block.text}\n{fence}"
    if isinstance(block, Figure):
        return _md_figure(block, figures, figure_link)
    if isinstance(block, Details):
        return "\n\n".join([f"**{_md_text(block.summary)}**",
                            *(_md_block(b, figures, figure_link) for b in block.blocks)])
    return _md_table(block)


def to_markdown(title: str, sections: list[Section], figures: Path, figure_link: str) -> str:
    """Markdown; figures are written as PNG files into `figures`, linked as `figure_link/NAME.png`."""
    parts = [f"# {_md_text(title)}"]
    for section in sections:
        parts.append(f"## {_md_text(section.title)}")
        parts += [_md_block(b, figures, figure_link) for b in section.blocks]
    return "\n\n".join(parts) + "\n"
