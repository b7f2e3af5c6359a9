"""BM25 with rank-bm25, for machines without Java. Same analysis and IDF as Lucene."""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterable
from pathlib import Path

from rank_bm25 import BM25Okapi

from rag.bm25.analysis import analyze, analyze_all, top_hits
from rag.types import ScoredId

FILE = "rank_bm25.pkl"


class _LuceneIdfBM25(BM25Okapi):
    """rank-bm25's Okapi scorer with Lucene's non-negative IDF, log(1 + (N - n + 0.5) / (n + 0.5))."""

    def _calc_idf(self, nd):
        for word, freq in nd.items():
            self.idf[word] = math.log(1 + (self.corpus_size - freq + 0.5) / (freq + 0.5))


def build_rank_bm25(docs: Iterable[tuple[str, str]], out_dir: Path) -> None:
    ids, tokens = analyze_all(docs)
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / FILE).open("wb") as fh:
        pickle.dump({"ids": ids, "tokens": tokens}, fh, protocol=pickle.HIGHEST_PROTOCOL)


class RankBM25:
    def __init__(self, index_dir: Path, k1: float = 0.9, b: float = 0.4) -> None:
        with (Path(index_dir) / FILE).open("rb") as fh:
            data = pickle.load(fh)
        self.ids: list[str] = data["ids"]
        self._bm25 = _LuceneIdfBM25(data["tokens"], k1=k1, b=b) if self.ids else None

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query: str, k: int) -> list[ScoredId]:
        terms = analyze(query)
        if not terms or self._bm25 is None:
            return []
        return top_hits(self.ids, self._bm25.get_scores(terms), k)
