"""Ranked list truncation: keep the best passages, in rank order, and leave weak ones out.

More context is not better: irrelevant passages lower answer accuracy, and relevant ones in the
middle of a long context are used worst. Rules apply in order; the first that stops the list is
reported, so every response says why it has the length it has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field


class TruncationSettings(BaseModel):
    """Which ranked passages are kept (frozen: one value per configuration)."""

    model_config = ConfigDict(frozen=True)

    max_k: int = Field(10, ge=1, le=1000)
    min_score: float | None = Field(None, description="lowest fused score kept (scale depends on fusion)")
    score_gap: float | None = Field(None, gt=0, le=1, description="cut at a drop larger than this share of the score range")
    token_budget: int | None = Field(None, ge=1, description="most passage tokens kept")


T = TypeVar("T")


@dataclass(frozen=True)
class Truncation:
    candidates: int
    kept: int
    #: the rule that ended the list: "max_k", "min_score", "score_gap", "token_budget" or "none"
    cut_by: str


def truncate(
    items: Sequence[T],
    score: Callable[[T], float],
    max_k: int,
    min_score: float | None = None,
    score_gap: float | None = None,
    token_budget: int | None = None,
    tokens: Callable[[T], int] | None = None,
) -> tuple[list[T], Truncation]:
    """``items`` sorted best first. ``score_gap`` is a fraction of the candidates' score range: the
    list stops before the first drop between neighbours larger than that. ``token_budget`` counts
    with ``tokens``; the first item is always kept so a long best passage is not lost."""
    scores = [score(it) for it in items]
    span = (max(scores) - min(scores)) if scores else 0.0
    kept: list[T] = []
    used = 0
    cut = "none"
    for i, it in enumerate(items):
        if len(kept) >= max_k:
            cut = "max_k"
            break
        if min_score is not None and scores[i] < min_score:
            cut = "min_score"
            break
        if score_gap is not None and i > 0 and span > 0 and (scores[i - 1] - scores[i]) > score_gap * span:
            cut = "score_gap"
            break
        n = tokens(it) if tokens else 0
        if token_budget is not None and kept and used + n > token_budget:
            cut = "token_budget"
            break
        kept.append(it)
        used += n
    return kept, Truncation(len(items), len(kept), cut)
