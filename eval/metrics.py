"""trec_eval's measures through pytrec_eval (no hand-written metric math)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytrec_eval

Run = dict[str, dict[str, float]]
RECALL_CUTOFFS = (1, 3, 5, 10, 20, 50, 100)
_EMPTY = "__no_result__"


def _judged(qrels: dict[str, dict[str, int]], run: Run) -> Run:
    """``run`` over exactly the judged queries, an empty one as a single unjudged hit."""
    return {q: (run.get(q) or {_EMPTY: 0.0}) for q in qrels}


def evaluate(qrels: dict[str, dict[str, int]], run: Run) -> dict[str, Any]:
    """Mean nDCG@10, Recall@10/100, MRR@10, MAP@100 and the recall@k curve over every judged query.

    A query with no results counts as zero (pytrec_eval would otherwise skip it)."""
    run = _judged(qrels, run)
    measures = {"ndcg_cut.10", "map_cut.100", "recall." + ",".join(map(str, RECALL_CUTOFFS))}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    top10 = {q: dict(sorted(docs.items(), key=lambda kv: -kv[1])[:10]) for q, docs in run.items()}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    n = len(qrels)

    def mean(name: str, table=per_query) -> float:
        return sum(table[q][name] for q in qrels) / n

    out: dict[str, Any] = {
        "ndcg@10": mean("ndcg_cut_10"), "recall@10": mean("recall_10"), "recall@100": mean("recall_100"),
        "mrr@10": mean("recip_rank", rr), "map@100": mean("map_cut_100"),
    }
    out["recall_curve"] = {str(k): mean(f"recall_{k}") for k in RECALL_CUTOFFS}
    return out


def ndcg10_per_query(qrels: dict[str, dict[str, int]], run: Run) -> np.ndarray:
    """nDCG@10 of each judged query, in ``qrels`` order (a query with no results: 0)."""
    table = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(_judged(qrels, run))
    return np.array([table[q]["ndcg_cut_10"] for q in qrels])


def paired_p_value(a: np.ndarray, b: np.ndarray, rounds: int = 10_000, seed: int = 0) -> float:
    """One-sided paired randomisation test: how often randomly swapping each query's pair of scores
    gives a mean gain of ``a`` over ``b`` at least the observed one (small: ``a`` is really better)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if not d.any():
        return 1.0
    signs = np.random.default_rng(seed).choice((-1.0, 1.0), size=(rounds, d.size))
    return float(((signs @ d) >= d.sum() - 1e-12).mean())
