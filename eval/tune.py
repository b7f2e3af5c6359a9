"""Choose fusion settings on a train/dev split (never a test split) by nDCG@10."""

from __future__ import annotations

import itertools
import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm import tqdm

from eval.metrics import ndcg10_per_query, paired_p_value
from eval.runner import doc_run
from rag.datasets import Dataset
from rag.errors import InputError
from rag.fusion import FusionMethod, Normalization
from rag.search import Candidates, Searcher
from rag.settings import Mode
from rag.timing import Timer

log = logging.getLogger(__name__)
WEIGHTS = [round(0.05 * i, 2) for i in range(1, 20)]
RRF_KS = [5, 10, 20, 40, 60, 100]
DEPTHS = [100, 200, 300]  # passages; at least 100 so Recall@100 stays meaningful


def refuse_test_split(split: str) -> None:
    if split.lower().startswith("test"):
        raise InputError(f"refusing to tune on split {split!r}: tune on a train or dev split, report on test")


SMALL_WEIGHTS = [round(0.1 * i, 1) for i in range(2, 9)]


def grid(small: bool = False) -> list[dict[str, Any]]:
    """The full grid (396 settings: depths, normalisation, weight, RRF), or the small one for few
    queries: the convex weight x normalisation at the current depths (14; the full grid over 80 dev
    queries was shown to overfit)."""
    if small:
        return [{"fusion": FusionMethod.convex, "normalization": n, "weight": w} for n in Normalization for w in SMALL_WEIGHTS]
    out = []
    for db, dd in itertools.product(DEPTHS, DEPTHS):
        for norm, w in itertools.product(Normalization, WEIGHTS):
            out.append({"fusion": FusionMethod.convex, "normalization": norm, "weight": w, "depth_bm25": db, "depth_dense": dd})
        for k in RRF_KS:
            out.append({"fusion": FusionMethod.rrf, "rrf_k": k, "depth_bm25": db, "depth_dense": dd})
    return out


def tune(searcher: Searcher, ds: Dataset, progress: bool = True, small: bool = False,
         alpha: float | None = None) -> dict[str, Any]:
    """The grid's best setting by nDCG@10 on ``ds``. With ``alpha``, the searcher's current settings are
    kept unless the best beats them significantly (paired randomisation test over the queries,
    p < alpha): few queries otherwise pick a setting that is better on them by chance."""
    refuse_test_split(ds.split)
    r = searcher.retrieval  # the small grid keeps the current depths
    current = {"fusion": r.fusion, "normalization": r.normalization, "weight": r.weight, "rrf_k": r.rrf_k,
               "depth_bm25": r.depth_bm25, "depth_dense": r.depth_dense}
    configs = [current, *({"depth_bm25": r.depth_bm25, "depth_dense": r.depth_dense, **c} for c in grid(small))]
    depth = searcher.candidate_depth(max(max(c["depth_bm25"], c["depth_dense"]) for c in configs))
    cands: dict[str, Candidates] = {}
    for qid, text in tqdm(ds.queries.items(), desc="candidates", unit="query", disable=not progress):
        cands[qid] = searcher.candidates(text, Mode.hybrid, None, Timer(), depth, depth)
    trials = []
    for cfg in tqdm(configs, desc="tune", unit="config", disable=not progress):
        retrieval = searcher.retrieval.model_copy(update={**cfg, "fold_documents": True})
        db, dd = searcher.candidate_depth(cfg["depth_bm25"]), searcher.candidate_depth(cfg["depth_dense"])
        run = {q: doc_run(searcher.fuse(Candidates(c.bm25[:db], c.dense[:dd]), Mode.hybrid, retrieval)) for q, c in cands.items()}
        per_query = ndcg10_per_query(ds.qrels, run)
        trials.append((float(per_query.mean()), cfg, per_query))
    now_score, _, now_per_query = trials[0]
    trials.sort(key=lambda t: -t[0])  # stable: the current settings win a tie
    best_score, best, best_per_query = trials[0]
    p = paired_p_value(best_per_query, now_per_query)
    kept = best is current or (alpha is not None and p >= alpha)
    if kept and best is not current:
        log.info("kept the current settings (nDCG@10 %.4f): the best, %.4f, is not significantly better (p=%.3f >= %g)",
                 now_score, best_score, p, alpha)
        best_score, best = now_score, current
    chosen = _plain(best)
    log.info("best on %s/%s: nDCG@10 %.4f with %s", ds.name, ds.split, best_score, chosen)
    return {
        "retrieval": chosen,
        "tuned_on": {"dataset": str(ds.path), "split": ds.split, "queries": len(ds.queries), "ndcg@10": round(best_score, 4),
                     "configs_tried": len(trials), "at": datetime.now(timezone.utc).isoformat()},
        "current": {"ndcg@10": round(now_score, 4), "retrieval": _plain(current), "kept": kept,
                    "p_value_best_vs_current": round(p, 4)},
        "top": [{"ndcg@10": round(s, 4), **_plain(c)} for s, c, _ in trials[:10]],
    }


def _plain(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.value if hasattr(v, "value") else v) for k, v in cfg.items()}


def write_tuned(path: Path, tuned: dict[str, Any]) -> None:
    """Atomically replace the tuned-settings file that the CLI and the service read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(tuned, indent=2) + "\n")
    tmp.replace(path)
