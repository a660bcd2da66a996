"""Renderers of the document model: Markdown that links the figure files; one HTML file with
the figures embedded as base64 PNG, no scripts, no stylesheet links, no URL of any kind, so it
opens from disk anywhere and can be mailed; a LaTeX fragment with the tables for a paper."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd

from normbench.analysis import claims as claims_mod
from normbench.report.document import NOT_LEARNED_MARK, Document

# ---------------------------------------------------------------- rendering


def one_line(text: object) -> str:
    """``text`` on one line: a newline in a run's name must not split a heading or a table row
    of the Markdown, nor end the comment that holds the title in the LaTeX."""
    return " ".join(str(text).split())


def _md_text(text: object) -> str:
    """Text from the runs (a run's name, a swept value, an error) as one line of Markdown that
    cannot carry HTML or a link: outside code spans, a ``<`` that could open a tag (``<a``,
    ``</``, ``<!``, ``<?``) and a ``]`` that could close a link's text (before ``(``, ``[`` or
    ``:``) are backslash-escaped; they still render as themselves, and ``a < b`` or an
    interval ``[13.7, 14.5]`` stay as they are."""
    parts = one_line(text).split("`")
    return "`".join(p if i % 2 else _md_plain(p) for i, p in enumerate(parts))


def _md_plain(text: str) -> str:
    return re.sub(r"\](?=[(\[:])", r"\\]", re.sub(r"<(?=[A-Za-z/!?])", r"\\<", text))


def _md_table(frame: pd.DataFrame) -> str:
    esc = [[_md_text(v).replace("|", "\\|") for v in row] for row in frame.itertuples(index=False)]
    head = "| " + " | ".join(map(_md_text, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    return "\n".join([head, rule, *("| " + " | ".join(r) + " |" for r in esc)])


def to_markdown(doc: Document, base: Path) -> str:
    """Markdown; figures as links to their PNG and SVG files, relative to ``base``."""
    out = []
    for b in doc.blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + _md_text(b.content))
        elif b.kind == "p":
            out.append(_md_text(b.content))
        elif b.kind == "ul":
            out.append("\n".join(f"- {_md_text(item)}" for item in b.content))
        elif b.kind == "table":
            out.append((f"**{_md_text(b.caption)}**\n\n" if b.caption else "") + _md_table(b.content))
        elif b.kind == "figure":
            png, svg = (b.content[k].relative_to(base).as_posix() for k in ("png", "svg"))
            caption = _md_text(b.caption)
            out.append(f"![{caption}]({png})\n\n*{caption}* ([SVG]({svg}))")
    return "\n\n".join(out) + "\n"


def _strong(text: str) -> str:
    """Bold; a claim's verdict also gets a colour class (the word itself stays, for greyscale)."""
    verdict = {claims_mod.PASS: "pass", claims_mod.FAIL: "fail", claims_mod.INCONCLUSIVE: "inconclusive"}.get(
        text
    )
    return f'<strong class="{verdict}">{text}</strong>' if verdict else f"<strong>{text}</strong>"


def _inline(text: str) -> str:
    """Escape, then the two Markdown marks the blocks use: **bold** and `code`."""
    parts = html.escape(text).split("**")
    text = "".join(_strong(p) if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _html_table(frame: pd.DataFrame, caption: str) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_inline(str(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CSS = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#111}
table{border-collapse:collapse;margin:1em 0;font-size:90%}
caption{text-align:left;font-weight:bold;padding:.3em 0}
th,td{border:1px solid #bbb;padding:.25em .6em;text-align:left}th{background:#eee}
figure{margin:1.5em 0}img{max-width:100%;border:1px solid #ddd}figcaption{font-size:90%;color:#333}
code{background:#f3f3f3;padding:0 .2em}li{margin:.2em 0}
.pass,.fail,.inconclusive{padding:0 .3em;border-radius:3px;color:#fff}.pass{background:#1b7837}
.fail{background:#b2182b}.inconclusive{background:#666}"""


def to_html(doc: Document) -> str:
    """One self-contained HTML file (figures inlined as base64 PNG)."""
    out = []
    for b in doc.blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append(f"<{b.kind}>{_inline(b.content)}</{b.kind}>")
        elif b.kind == "p":
            out.append(f"<p>{_inline(b.content)}</p>")
        elif b.kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.content) + "</ul>")
        elif b.kind == "table":
            out.append(_html_table(b.content, b.caption))
        elif b.kind == "figure":
            data = base64.b64encode(b.content["png"].read_bytes()).decode("ascii")
            out.append(
                f'<figure><img alt="{html.escape(b.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{_inline(b.caption)}</figcaption></figure>"
            )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(doc.title)}</title>"
        f"<style>{CSS}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n"
    )


TEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
    "\\": r"\textbackslash{}",
}


def _tex_text(text: str) -> str:
    """Text for LaTeX on one line (a blank line would end a caption's paragraph): special
    characters escaped, the Markdown marks dropped."""
    plain = one_line(text).replace("**", "").replace("`", "")
    return "".join(TEX_SPECIAL.get(ch, ch) for ch in plain).replace(NOT_LEARNED_MARK, r"\dag{}")


def to_latex(doc: Document) -> str:
    """The tables of ``blocks`` (claims first, then results) as a LaTeX fragment for a paper:
    pandas' ``DataFrame.to_latex`` (booktabs rules: needs ``\\usepackage{booktabs}``)."""
    # the title comes from the runs' names: a newline in one would end the comment, and the
    # rest would be live LaTeX
    out = [f"% {_tex_text(doc.title)}: tables generated by normbench.report; needs \\usepackage{{booktabs}}"]
    for i, b in enumerate(x for x in doc.blocks if x.kind == "table"):
        frame = b.content.map(lambda v: one_line(v).replace("**", ""))
        frame.columns = [one_line(c) for c in frame.columns]
        tex = frame.to_latex(
            index=False, escape=True, caption=_tex_text(b.caption), label=f"tab:normbench{i + 1}"
        )
        out.append(tex.replace(NOT_LEARNED_MARK, r"\dag{}"))
    return "\n".join(out)
