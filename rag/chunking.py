"""Cut documents into passages by the encoder's own tokenizer.

Windows of at most ``size`` tokens with ``overlap`` tokens shared between neighbours, cut at word
boundaries. The title travels with every passage, so its tokens (and the passage prefix and special
tokens) are budgeted in: no passage the encoder reads exceeds its maximum length.

A window that must be cut ends at a paragraph (a blank line) when one ends in its second half, and
then the next starts with the next paragraph, without overlap. A document with sections (a PDF's
pages, a Word file's or Markdown file's headings) is cut within each section: no passage crosses a
section boundary, and each passage carries its section's location. With chunking off, the one
passage carries the range of pages it spans.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from rag.encoders.base import Encoder
from rag.types import Chunk

#: tokens kept free for re-tokenisation differences at window edges
MARGIN = 4


class Chunker:
    def __init__(self, encoder: Encoder, size: int = 200, overlap: int = 32, enabled: bool = True,
                 paragraphs: bool = True) -> None:
        """``paragraphs=False``: plain fixed windows, blind to paragraph ends (what chunking was
        before structure-aware cutting; kept for comparisons)."""
        self.encoder = encoder
        self.size = size
        self.overlap = overlap
        self.enabled = enabled
        self.paragraphs = paragraphs

    @property
    def signature(self) -> str:
        """Everything that changes how a document is cut; part of each document's content hash."""
        if not self.enabled:
            return "chunking=off"
        return f"size={self.size}|overlap={self.overlap}|tok={self.encoder.tokenizer_key}"

    def fit_title(self, title: str) -> str:
        """Titles longer than a quarter of the encoder's budget are cut at a token boundary."""
        if not self.enabled or not title:
            return title
        spans = self.encoder.token_spans(title)
        limit = self.encoder.max_length // 4
        return title if len(spans) <= limit else title[: spans[limit - 1][1]]

    def chunk(self, title: str, text: str, sections: Sequence[tuple[int, int, dict[str, Any]]] = ()) -> list[Chunk]:
        if not sections:
            return self._windows(title, text)
        if not self.enabled:
            return [Chunk(0, text, self.encoder.count_tokens(text), merged_location([loc for _, _, loc in sections]))]
        chunks: list[Chunk] = []
        for start, end, location in sections:
            for c in self._windows(title, text[start:end].strip()):
                chunks.append(Chunk(len(chunks), c.text, c.token_count, location))
        return chunks

    def _windows(self, title: str, text: str) -> list[Chunk]:
        if not text:
            return []
        spans = self.encoder.token_spans(text)
        if not self.enabled:
            return [Chunk(0, text, len(spans))]
        enc = self.encoder
        fixed = enc.num_special_tokens + enc.count_tokens(enc.passage_prefix + (f"{title}\n" if title else ""))
        budget = max(8, min(self.size, enc.max_length - fixed - MARGIN))
        overlap = min(self.overlap, budget // 2)
        if len(spans) <= budget:
            return [Chunk(0, text, len(spans))]
        starts = [i for i in range(len(spans)) if i == 0 or spans[i][0] != spans[i - 1][1]]  # word starts
        starts_set = set(starts)
        # tokens that open a paragraph (a blank line before them): the preferred place to cut
        paragraphs = {i for i in range(1, len(spans)) if "\n\n" in text[spans[i - 1][1] : spans[i][0]]} if self.paragraphs else set()
        chunks: list[Chunk] = []
        begin = 0
        while begin < len(spans):
            end = min(begin + budget, len(spans))
            at_paragraph = False
            if end < len(spans):
                # a paragraph end in the window's second half, else the last word boundary
                para = next((j for j in range(end, begin + budget // 2, -1) if j in paragraphs), None)
                cut = para or next((j for j in range(end, begin, -1) if j in starts_set), None)
                end = cut if cut is not None else end  # a single word longer than the budget is split
                at_paragraph = para is not None
            chunks.append(Chunk(len(chunks), text[spans[begin][0] : spans[end - 1][1]], end - begin))
            if end >= len(spans):
                break
            # windows overlap, except where a paragraph ended
            begin = end if at_paragraph else next((j for j in range(end - overlap, end) if j in starts_set and j > begin), end)
        return chunks


def merged_location(locations: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The location of a passage that spans several sections: their page range, or the first heading."""
    pages = [loc["page"] for loc in locations if "page" in loc]
    if pages:
        return {"page": pages[0]} if min(pages) == max(pages) else {"pages": [min(pages), max(pages)]}
    return next((dict(loc) for loc in locations if loc), {})


def text_hash(title: str, text: str) -> str:
    return hashlib.sha256(f"{title}\x00{text}".encode()).hexdigest()
