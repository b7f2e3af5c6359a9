"""Rank fusion: small pure functions over ranked lists of (id, score).

- Reciprocal rank fusion: Cormack, Clarke and Buettcher, "Reciprocal Rank Fusion outperforms
  Condorcet and individual Rank Learning Methods", SIGIR 2009. score(d) = sum 1 / (k + rank(d)).
- Convex combination of normalised scores: Bruch, Gai and Ingber, "An Analysis of Fusion Functions
  for Hybrid Retrieval", ACM TOIS 42(1), 2023, who find it beats RRF once its weight is tuned on
  a little in-domain data. score(d) = w * norm(dense(d)) + (1 - w) * norm(bm25(d)).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from operator import itemgetter

import numpy as np

from rag.types import ScoredId


class FusionMethod(str, Enum):
    rrf = "rrf"
    convex = "convex"


class Normalization(str, Enum):
    minmax = "minmax"
    zscore = "zscore"


def rrf(runs: Sequence[Sequence[ScoredId]], k: float = 60.0) -> list[ScoredId]:
    """Reciprocal rank fusion of ranked lists (ranks start at 1)."""
    scores: dict[str, float] = {}
    for run in runs:
        for rank, hit in enumerate(run, start=1):
            scores[hit.passage_id] = scores.get(hit.passage_id, 0.0) + 1.0 / (k + rank)
    return _sorted(scores)


def normalize(scores: np.ndarray, method: Normalization) -> np.ndarray:
    if len(scores) == 0:
        return scores
    if Normalization(method) is Normalization.minmax:
        lo, hi = float(scores.min()), float(scores.max())
        return (scores - lo) / (hi - lo) if hi > lo else np.ones_like(scores)
    std = float(scores.std())
    return (scores - scores.mean()) / std if std > 0 else np.zeros_like(scores)


def convex(
    dense: Sequence[ScoredId], sparse: Sequence[ScoredId], weight: float = 0.5,
    method: Normalization = Normalization.zscore,
) -> list[ScoredId]:
    """``weight`` on the dense list, ``1 - weight`` on the sparse one, each normalised within its list.

    An item missing from one list gets that list's lowest normalised score: it ranked below
    everything the list returned.
    """
    index: dict[str, int] = {}
    for run in (dense, sparse):
        for h in run:
            index.setdefault(h.passage_id, len(index))
    total = np.zeros(len(index))
    for run, w in ((dense, weight), (sparse, 1.0 - weight)):
        norm = normalize(np.fromiter((h.score for h in run), dtype=np.float64, count=len(run)), method)
        part = np.full(len(index), float(norm.min()) if len(norm) else 0.0)
        part[[index[h.passage_id] for h in run]] = norm
        total += w * part
    return _sorted(dict(zip(index, total.tolist(), strict=True)))


def fold_documents(hits: Sequence[ScoredId], doc_of: dict[str, str]) -> list[ScoredId]:
    """Keep each document's best passage (max score); the list stays sorted."""
    seen: set[str] = set()
    out = []
    for h in hits:
        d = doc_of[h.passage_id]
        if d not in seen:
            seen.add(d)
            out.append(h)
    return out


def _sorted(scores: dict[str, float]) -> list[ScoredId]:
    """Best score first, ties by id: sorted by id, then stably by score (reverse keeps stability)."""
    return list(map(ScoredId._make, sorted(sorted(scores.items()), key=itemgetter(1), reverse=True)))
