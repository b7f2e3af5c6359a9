"""faiss indexes over unit vectors (inner product = cosine). Rows are positions in the generation's
passage table, so no id map is needed.

ANN pays off only from about 100k vectors; below ``exact_threshold`` the index is a flat exact one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import faiss
import numpy as np

log = logging.getLogger(__name__)
FILE = "index.faiss"


def build_dense(
    vectors: np.ndarray,
    out_dir: Path,
    hnsw_m: int = 32,
    ef_construction: int = 200,
    exact_threshold: int = 100_000,
    force_hnsw: bool = False,
) -> str:
    """Build and save the index; returns its kind ("flat" or "hnsw")."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    if force_hnsw or len(vectors) >= exact_threshold:
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        kind = "hnsw"
    else:
        index = faiss.IndexFlatIP(dim)
        kind = "flat"
    if len(vectors):
        index.add(vectors)
    out_dir.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(out_dir / FILE))
    return kind


class FaissIndex:
    """:class:`rag.dense.base.DenseIndex` over a faiss index file."""

    def __init__(self, index_dir: Path, ef_search: int = 128, threads: int | None = 1) -> None:
        if threads:
            faiss.omp_set_num_threads(threads)
        self.index = faiss.read_index(str(Path(index_dir) / FILE))
        self.kind = "hnsw" if isinstance(self.index, faiss.IndexHNSW) else "flat"
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = ef_search

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def vector(self, row: int) -> np.ndarray:
        return self.index.reconstruct(int(row))

    def search(self, queries: np.ndarray, k: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each (n_queries, k'), k' = min(k, searchable vectors); ``rows`` restricts the
        search to those positions (metadata filters), inside the index rather than after it."""
        q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.index.d)
        limit = len(self) if rows is None else len(rows)
        k = min(k, limit)
        if k <= 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        if rows is None:
            return self.index.search(q, k)
        sel = faiss.IDSelectorBatch(np.ascontiguousarray(rows, dtype=np.int64))
        params = faiss.SearchParametersHNSW(sel=sel, efSearch=self.index.hnsw.efSearch) if self.kind == "hnsw" else faiss.SearchParameters(sel=sel)
        scores, found = self.index.search(q, k, params=params)
        return scores, found
