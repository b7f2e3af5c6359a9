"""The BM25 interface and the factory functions that pick a backend."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from pathlib import Path
from typing import Protocol

from rag.types import ScoredId


class BM25Backend(str, Enum):
    lucene = "lucene"
    rank_bm25 = "rank_bm25"
    bm25s = "bm25s"


class BM25Retriever(Protocol):
    """Searches one built BM25 index; scores are BM25 with the k1/b it was opened with."""

    def search(self, query: str, k: int) -> list[ScoredId]: ...

    @property
    def ids(self) -> list[str]:
        """Every passage id the index holds (what the job checks against the passage table)."""
        ...

    def __len__(self) -> int: ...


def build_bm25(backend: BM25Backend, docs: Iterable[tuple[str, str]], out_dir: Path, threads: int = 1) -> None:
    """Index (passage id, text) pairs into ``out_dir`` with the chosen backend."""
    if BM25Backend(backend) is BM25Backend.lucene:
        from rag.bm25.lucene import build_lucene

        build_lucene(docs, out_dir, threads)
    elif BM25Backend(backend) is BM25Backend.bm25s:
        from rag.bm25.sparse import build_bm25s

        build_bm25s(docs, out_dir)
    else:
        from rag.bm25.rank import build_rank_bm25

        build_rank_bm25(docs, out_dir)


def open_bm25(backend: BM25Backend, index_dir: Path, k1: float = 0.9, b: float = 0.4) -> BM25Retriever:
    if BM25Backend(backend) is BM25Backend.lucene:
        from rag.bm25.lucene import LuceneBM25

        return LuceneBM25(index_dir, k1, b)
    if BM25Backend(backend) is BM25Backend.bm25s:
        from rag.bm25.sparse import BM25S

        return BM25S(index_dir, k1, b)
    from rag.bm25.rank import RankBM25

    return RankBM25(index_dir, k1, b)
