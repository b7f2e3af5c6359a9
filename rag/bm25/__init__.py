"""BM25: one interface, two backends (Lucene through pyserini's Anserini jar; rank-bm25)."""

from rag.bm25.base import BM25Backend, BM25Retriever, build_bm25, open_bm25

__all__ = ["BM25Backend", "BM25Retriever", "build_bm25", "open_bm25"]
