"""Dense retrieval over faiss: exact inner product for small indexes, HNSW from a size threshold."""

from rag.dense.faiss_index import DenseIndex, build_dense

__all__ = ["DenseIndex", "build_dense"]
