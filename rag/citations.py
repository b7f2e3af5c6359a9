"""Citations: [n] markers that point at passages the model was given; when it cites nothing, the
passages that best support the answer by lexical overlap, marked as inferred."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rag.bm25.analysis import analyze
from rag.types import Passage

_MARK = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


@dataclass(frozen=True)
class Citation:
    number: int  # [n] in the prompt
    passage_id: str
    document_id: str
    title: str
    inferred: bool
    location: dict[str, Any] = field(default_factory=dict)  # the passage's place in its document ({"page": 3})


def cited_numbers(text: str) -> list[int]:
    """Every [n] and [n, m] marker, in order of first appearance."""
    out: list[int] = []
    for m in _MARK.finditer(text):
        for part in m.group(1).split(","):
            n = int(part)
            if n not in out:
                out.append(n)
    return out


def citations(answer: str, passages: Sequence[Passage], infer_top: int = 2, min_overlap: float = 0.2) -> tuple[list[Citation], list[int]]:
    """(citations, invalid numbers). Markers outside 1..len(passages) are invalid and dropped."""
    numbers = cited_numbers(answer)
    valid = [n for n in numbers if 1 <= n <= len(passages)]
    invalid = [n for n in numbers if n not in valid]
    if valid:
        return [_cite(n, passages[n - 1], False) for n in valid], invalid
    terms = set(analyze(answer))
    if not terms:
        return [], invalid
    scored = []
    for i, p in enumerate(passages):
        overlap = len(terms & set(analyze(p.indexed_text))) / len(terms)
        if overlap >= min_overlap:
            scored.append((overlap, -i, i))
    scored.sort(reverse=True)
    return [_cite(i + 1, passages[i], True) for _, _, i in scored[:infer_top]], invalid


def _cite(n: int, p: Passage, inferred: bool) -> Citation:
    return Citation(n, p.id, p.document_id, p.title, inferred, p.location)
