"""The reranking stage's depth and weight, chosen on dev queries for `rag train --reranker`."""

from __future__ import annotations

import numpy as np

from eval.metrics import evaluate
from eval.runner import doc_run
from rag.rerank import rerank
from rag.types import ScoredId

DEPTHS = (20, 50, 100)
WEIGHTS = (0.2, 0.4, 0.6, 0.8, 1.0)


def choose_plan(gold: dict[str, dict[str, int]], hits: dict[str, list[ScoredId]], scores: dict[str, np.ndarray],
                ) -> tuple[float, list[dict[str, float]], dict[str, float]]:
    """The hybrid's dev nDCG@10, every (depth, weight) reranked, and the best (ties: the cheaper depth)."""
    base = float(evaluate(gold, {q: doc_run(h) for q, h in hits.items()})["ndcg@10"])
    grid = [{"top_k": k, "weight": w, "ndcg@10": round(float(evaluate(gold, {
        q: doc_run(rerank(h, scores[q][:k], w)) for q, h in hits.items()})["ndcg@10"]), 4)}
        for k in DEPTHS for w in WEIGHTS]
    return base, grid, max(grid, key=lambda g: (g["ndcg@10"], -g["top_k"]))
