"""The dense index contract: vectors by row (a row is the passage's position in the generation's
passage table), searched by inner product."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


class DenseIndex(Protocol):
    kind: str  # "flat" (exact) or "hnsw"

    @property
    def dim(self) -> int: ...

    def __len__(self) -> int: ...

    def search(self, queries: np.ndarray, k: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each (n_queries, k'), k' = min(k, searchable vectors), best first; -1 rows
        pad a short result. ``rows`` restricts the search to those positions (metadata filters)."""
        ...

    def vector(self, row: int) -> np.ndarray:
        """The stored vector at ``row`` (for hard-negative mining and checks)."""
        ...


def open_dense(index_dir: Path, ef_search: int = 128, threads: int | None = 1) -> DenseIndex:
    """The dense index saved in ``index_dir`` (faiss, exact or HNSW, whichever was built)."""
    from rag.dense.faiss_index import FaissIndex

    return FaissIndex(index_dir, ef_search, threads)
