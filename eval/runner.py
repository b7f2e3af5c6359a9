"""Build (or reuse) a cached index of a dataset and run retrievers over a split's queries."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from tqdm import tqdm

from eval.metrics import Run
from eval.stats import pct
from indexer.datasets import dataset_index
from rag.datasets import Dataset
from rag.factory import make_encoder, make_searcher
from rag.search import DOCS_PER_QUERY, Searcher
from rag.settings import Mode, Settings
from rag.timing import Timer
from rag.types import ScoredId, document_of

log = logging.getLogger(__name__)


def open_searcher(ds: Dataset, settings: Settings) -> Searcher:
    index_dir = dataset_index(ds, settings)
    return make_searcher(settings.model_copy(update={"index_dir": index_dir}), encoder=make_encoder(settings))


@dataclass
class RetrieverRun:
    run: Run
    latency_ms: list[float] = field(default_factory=list)
    encode_ms: list[float] = field(default_factory=list)
    rerank_ms: list[float] = field(default_factory=list)

    def latency_summary(self) -> dict[str, float]:
        out = {"p50": _pct(self.latency_ms, 50), "p95": _pct(self.latency_ms, 95)}
        if any(self.encode_ms):
            rest = [t - e for t, e in zip(self.latency_ms, self.encode_ms, strict=True)]
            out |= {"encode_p50": _pct(self.encode_ms, 50), "rest_p50": _pct(rest, 50), "rest_p95": _pct(rest, 95)}
        if any(self.rerank_ms):
            out |= {"rerank_p50": _pct(self.rerank_ms, 50), "rerank_p95": _pct(self.rerank_ms, 95)}
        return out


def _pct(xs: list[float], q: float) -> float:
    return pct(xs, q) or 0.0


def doc_run(fused: list[ScoredId]) -> dict[str, float]:
    return {document_of(h.passage_id): h.score for h in fused[:DOCS_PER_QUERY]}


def run_retriever(
    searcher: Searcher, ds: Dataset, mode: Mode, progress: bool = True, warmup: int = 50, rerank_k: int | None = None,
) -> RetrieverRun:
    """Each query searched on its own, as a user would, timed end to end (encode .. fuse, and the
    searcher's reranker over the first ``rerank_k`` fused hits when given)."""
    retrieval = searcher.retrieval.model_copy(update={"fold_documents": True})
    depth_b = searcher.candidate_depth(retrieval.depth_bm25)
    depth_d = searcher.candidate_depth(retrieval.depth_dense)
    qids = list(ds.queries)
    for i, qid in enumerate(qids[:warmup]):  # JIT and caches warm, as in a long-running service
        c = searcher.candidates(ds.queries[qid], mode, None, Timer(), depth_b, depth_d)
        if rerank_k and i < 5:
            searcher.rerank(ds.queries[qid], searcher.fuse(c, mode, retrieval), Timer(), top_k=rerank_k)
    out = RetrieverRun({})
    for qid in tqdm(qids, desc=mode.value + (f"+rerank@{rerank_k}" if rerank_k else ""), unit="query", disable=not progress):
        timer = Timer()
        t = time.perf_counter()
        c = searcher.candidates(ds.queries[qid], mode, None, timer, depth_b, depth_d)
        fused = searcher.fuse(c, mode, retrieval)
        if rerank_k:
            fused = searcher.rerank(ds.queries[qid], fused, timer, top_k=rerank_k)
        out.run[qid] = doc_run(fused)
        out.latency_ms.append((time.perf_counter() - t) * 1000)
        out.encode_ms.append(timer.totals.get("encode", 0.0))
        out.rerank_ms.append(timer.totals.get("rerank", 0.0))
    return out
