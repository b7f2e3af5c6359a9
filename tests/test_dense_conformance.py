"""The dense index contract (rag.dense.base.DenseIndex), run by every backend: a new backend is added
by passing these. Today: faiss exact (flat), faiss HNSW, and Milvus HNSW (on milvus-lite)."""

import numpy as np
import pytest

from rag import milvus
from rag.dense import build_dense, open_dense

BACKENDS = {"flat": dict(exact_threshold=10**9), "hnsw": dict(force_hnsw=True, hnsw_m=16, ef_construction=100), "milvus": {}}


def build_milvus_dense(vectors, out_dir):
    """A generation whose vectors live in a Milvus collection (texts empty: only the vectors matter here)."""
    settings = milvus.MilvusSettings()
    loc = milvus.locate(settings, out_dir)
    name = loc.collection("g000001")
    rows = (milvus.Row(i, f"p{i}", f"d{i}", "", "", {}, v) for i, v in enumerate(vectors))
    milvus.build_collection(loc, name, rows, vectors.shape[1], hnsw_m=16, ef_construction=100)
    out_dir.mkdir(parents=True, exist_ok=True)
    milvus.write_pointer(out_dir, loc, name, vectors.shape[1], 0.9, 0.4)
    return milvus.open_parts(out_dir, settings, out_dir, ef_search=128)[1]


def unit(n, d, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(params=sorted(BACKENDS))
def build(request, tmp_path):
    def _build(vectors, name="idx"):
        if request.param == "milvus":
            return build_milvus_dense(vectors, tmp_path / name)
        build_dense(vectors, tmp_path / name, **BACKENDS[request.param])
        return open_dense(tmp_path / name, ef_search=128)
    _build.kind = request.param
    return _build


def test_kind_size_dim_and_stored_vectors(build):
    x = unit(300, 32)
    idx = build(x)
    assert idx.kind == build.kind and len(idx) == 300 and idx.dim == 32
    assert np.allclose(idx.vector(17), x[17], atol=1e-6)


def test_nearest_neighbour_is_itself_and_agrees_with_exact_search(build):
    x = unit(800, 32, seed=1)
    idx = build(x)
    scores, rows = idx.search(x[:50], 10)
    assert (rows[:, 0] == np.arange(50)).all() and np.allclose(scores[:, 0], 1.0, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first
    exact = np.argsort(-(x[:50] @ x.T), axis=1)[:, :10]
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(rows, exact, strict=True)])
    assert recall >= 0.9


def test_k_larger_than_index_and_empty_index(build):
    small = build(unit(3, 8), "small")
    _, rows = small.search(unit(1, 8), 10)
    assert rows.shape == (1, 3) and sorted(rows[0]) == [0, 1, 2]
    _, rows = small.search(unit(1, 8), 10, rows=np.array([2]))
    assert rows.tolist() == [[2]]
    empty = build(np.zeros((0, 8), np.float32), "empty")
    _, rows = empty.search(unit(2, 8), 5)
    assert len(empty) == 0 and rows.shape == (2, 0)


def test_row_filter_is_applied_inside_the_search(build):
    x = unit(400, 16, seed=3)
    idx = build(x)
    allowed = np.arange(0, 400, 7)
    _, rows = idx.search(x[:5], 10, rows=allowed)
    assert rows.shape == (5, 10) and set(rows.ravel()) <= set(allowed)
    assert rows[0, 0] == 0  # row 0 is allowed and is its own nearest neighbour


def test_exact_below_the_threshold_and_hnsw_above(tmp_path):
    x = unit(500, 32)
    assert build_dense(x, tmp_path / "a", exact_threshold=1000) == "flat"
    assert build_dense(x, tmp_path / "b", exact_threshold=100) == "hnsw"
    assert open_dense(tmp_path / "a").kind == "flat" and open_dense(tmp_path / "b").kind == "hnsw"
