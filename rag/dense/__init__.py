"""Dense retrieval: one contract (rag.dense.base.DenseIndex); faiss behind it, exact inner product
for small indexes, HNSW from a size threshold."""

from rag.dense.base import DenseIndex, open_dense
from rag.dense.faiss_index import build_dense

__all__ = ["DenseIndex", "build_dense", "open_dense"]
