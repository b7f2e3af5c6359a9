"""The searcher: BM25 and dense candidates, fusion, document folding, truncation, per-stage timings."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from rag.bm25 import BM25Retriever
from rag.encoders.base import Encoder
from rag.errors import ConfigError, InputError
from rag.fusion import FusionMethod, Normalization, convex, fold_documents, rrf
from rag.reader import GenerationView, IndexReader
from rag.rerank import Reranker, RerankPlan, rerank
from rag.timing import Timer
from rag.truncation import Truncation, TruncationSettings, truncate
from rag.types import Mode, Passage, ScoredId, document_of

log = logging.getLogger(__name__)
DOCS_PER_QUERY = 100  # what an evaluation ranks per query (Recall@100)


class RetrievalSettings(BaseModel):
    """How the searcher retrieves and fuses (frozen: one value per configuration)."""

    model_config = ConfigDict(frozen=True)

    mode: Mode = Mode.hybrid
    depth_bm25: int = Field(100, ge=1, le=10_000, description="BM25 candidates before fusion")
    depth_dense: int = Field(100, ge=1, le=10_000, description="dense candidates before fusion")
    fusion: FusionMethod = FusionMethod.convex
    normalization: Normalization = Normalization.zscore
    weight: float = Field(0.6, ge=0, le=1, description="convex: weight of the dense scores")
    rrf_k: float = Field(60.0, gt=0)
    fold_documents: bool = Field(False, description="one hit per document (its best passage)")


@dataclass(frozen=True)
class SearchHit:
    rank: int
    score: float
    passage: Passage


@dataclass
class SearchResult:
    query: str
    mode: Mode
    hits: list[SearchHit]
    truncation: Truncation
    generation: str
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Candidates:
    """What each retriever returned for one query, before fusion."""

    bm25: list[ScoredId]
    dense: list[ScoredId]


class Searcher:
    def __init__(
        self, reader: IndexReader, encoder: Encoder,
        retrieval: RetrievalSettings | None = None, truncation: TruncationSettings | None = None,
        reranker: Reranker | None = None, rerank_plan: RerankPlan | None = None,
    ) -> None:
        self.reader = reader
        self.encoder = encoder
        self.reranker = reranker
        self.rerank_plan = rerank_plan or RerankPlan()
        self.retrieval = retrieval or RetrievalSettings()
        self.truncation = truncation or TruncationSettings()
        self._check_encoder()

    def _check_encoder(self) -> None:
        """Same model and numeric path: fine. Same model on another runtime or precision (torch fp32
        vectors, int8 queries): allowed, and said, since scores shift a little. Another model: refused."""
        built, enc = self.reader.manifest.encoder, self.encoder
        self.encoder_warning = None
        if built.model_key == enc.model_key:
            return
        if built.weights_key == enc.weights_key:
            self.encoder_warning = (f"the index holds {built.numeric} vectors and queries are encoded with {enc.numeric}: "
                                    f"scores shift slightly; set encoder.backend/encoder.precision to match, or re-index")
            log.warning("%s", self.encoder_warning)
            return
        raise ConfigError(
            f"the index was built with encoder {built.model_key!r} but the configured encoder is "
            f"{enc.model_key!r}: re-index with `rag index --model ...` or set encoder.model"
        )

    def refresh(self) -> bool:
        changed = self.reader.refresh()
        if changed:
            self._check_encoder()
        return changed

    # -- stages --------------------------------------------------------------------------------

    def candidates(
        self, query: str, mode: Mode, filters: Mapping[str, Any] | None, timer: Timer,
        depth_bm25: int | None = None, depth_dense: int | None = None, query_vector: np.ndarray | None = None,
        view: GenerationView | None = None,
    ) -> Candidates:
        r = self.retrieval
        v = view or self.reader.view
        rows = allowed = None
        if filters:
            with timer("filter"):
                rows = v.passages.rows_matching(filters)
                allowed = {v.passages.ids[i] for i in rows}
        bm25: list[ScoredId] = []
        dense: list[ScoredId] = []
        if mode in (Mode.bm25, Mode.hybrid):
            with timer("bm25"):
                bm25 = self._bm25(v.bm25, query, depth_bm25 or r.depth_bm25, allowed)
        if mode in (Mode.dense, Mode.hybrid):
            if query_vector is None:
                with timer("encode"):
                    query_vector = self.encoder.encode_queries([query])
            with timer("dense"):
                scores, found = v.dense.search(query_vector, depth_dense or r.depth_dense, rows)
                ids = v.passages.ids
                dense = [ScoredId(ids[i], float(s)) for s, i in zip(scores[0], found[0], strict=True) if i >= 0]
        return Candidates(bm25, dense)

    @staticmethod
    def _bm25(bm25: BM25Retriever, query: str, depth: int, allowed: set[str] | None) -> list[ScoredId]:
        if allowed is None:
            return bm25.search(query, depth)
        # Filtered: widen the search until enough allowed hits are found or the index is exhausted.
        d = depth
        while True:
            hits = bm25.search(query, d)
            kept = [h for h in hits if h.passage_id in allowed]
            if len(kept) >= depth or len(hits) < d or d >= len(bm25):
                return kept[:depth]
            d = min(d * 4, len(bm25))

    def fuse(self, c: Candidates, mode: Mode, retrieval: RetrievalSettings | None = None) -> list[ScoredId]:
        r = retrieval or self.retrieval
        if mode is Mode.bm25:
            fused = c.bm25
        elif mode is Mode.dense:
            fused = c.dense
        elif r.fusion is FusionMethod.rrf:
            fused = rrf([c.dense, c.bm25], r.rrf_k)
        else:
            fused = convex(c.dense, c.bm25, r.weight, r.normalization)
        if r.fold_documents:
            fused = fold_documents(fused, {h.passage_id: document_of(h.passage_id) for h in fused})
        return fused

    def rerank(self, query: str, fused: list[ScoredId], timer: Timer, view: GenerationView | None = None,
               top_k: int | None = None) -> list[ScoredId]:
        """The cross-encoder's order over the first ``top_k`` fused hits (no reranker: ``fused`` as is)."""
        if self.reranker is None or not fused:
            return fused
        head = fused[: top_k or self.rerank_plan.top_k]
        with timer("rerank"):
            texts = (view or self.reader.view).passages.get([h.passage_id for h in head])
            scores = self.reranker.score(query, [texts[h.passage_id].indexed_text for h in head])
            return rerank(fused, scores, self.rerank_plan.weight)

    def candidate_depth(self, minimum: int) -> int:
        """Passages to fetch so that about DOCS_PER_QUERY documents survive folding."""
        counts = self.reader.manifest.counts
        per_doc = counts.passages / max(counts.documents, 1)
        return max(minimum, int(math.ceil(DOCS_PER_QUERY * per_doc)))

    # -- the whole search ----------------------------------------------------------------------

    def search(
        self, query: str, mode: Mode | str | None = None, k: int | None = None,
        filters: Mapping[str, Any] | None = None,
    ) -> SearchResult:
        if not query or not query.strip():
            raise InputError("query is empty")
        mode = Mode(mode) if mode is not None else self.retrieval.mode
        t = self.truncation
        timer = Timer()
        view = self.reader.view
        c = self.candidates(query, mode, filters, timer, view=view)
        with timer("fuse"):
            fused = self.fuse(c, mode)
        fused = self.rerank(query, fused, timer, view)
        max_k = k or t.max_k
        with timer("truncate"):
            # token counts matter only under a token budget: then the leading passages are read first
            passages = view.passages.get([h.passage_id for h in fused[: max_k * 4]]) if t.token_budget else {}
            kept, info = truncate(fused, lambda h: h.score, max_k, t.min_score, t.score_gap, t.token_budget,
                                  lambda h: passages[h.passage_id].token_count if h.passage_id in passages else 0)
        with timer("fetch"):
            got = passages or view.passages.get([h.passage_id for h in kept])
        hits = [SearchHit(i + 1, h.score, got[h.passage_id]) for i, h in enumerate(kept)]
        timer.totals["total"] = sum(timer.totals.values())
        return SearchResult(query, mode, hits, info, view.generation, {k_: round(v, 3) for k_, v in timer.totals.items()})
