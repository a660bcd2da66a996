"""The report as one document model: a title and a list of blocks, which every renderer
(Markdown, HTML, LaTeX) reads; the sections build blocks and never format for one output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# After a table cell where some run did not learn (summary.json ``learned: false``).
NOT_LEARNED_MARK = "†"


@dataclass(frozen=True)
class Block:
    """``content``: str (h1-h3, p), list of str (ul), DataFrame (table), {"png": Path,
    "svg": Path} (figure). Text may hold the two Markdown marks **bold** and `code`."""

    kind: str  # h1, h2, h3, p, ul, table, figure
    content: Any
    caption: str = ""


@dataclass(frozen=True)
class Document:
    title: str
    blocks: list[Block]
