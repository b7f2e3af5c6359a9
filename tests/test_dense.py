import numpy as np

from rag.dense import DenseIndex, build_dense


def unit(n, d, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_below_threshold_and_hnsw_above(tmp_path):
    x = unit(500, 32)
    assert build_dense(x, tmp_path / "a", exact_threshold=1000) == "flat"
    assert build_dense(x, tmp_path / "b", exact_threshold=100) == "hnsw"
    assert DenseIndex(tmp_path / "a").kind == "flat" and DenseIndex(tmp_path / "b").kind == "hnsw"


def test_nearest_neighbour_is_itself_and_hnsw_agrees(tmp_path):
    x = unit(800, 32, seed=1)
    build_dense(x, tmp_path / "flat", exact_threshold=10_000)
    build_dense(x, tmp_path / "hnsw", force_hnsw=True, hnsw_m=16, ef_construction=100)
    flat, hnsw = DenseIndex(tmp_path / "flat"), DenseIndex(tmp_path / "hnsw", ef_search=128)
    scores, rows = flat.search(x[:50], 10)
    assert (rows[:, 0] == np.arange(50)).all() and np.allclose(scores[:, 0], 1.0, atol=1e-5)
    _, approx = hnsw.search(x[:50], 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, rows)])
    assert recall >= 0.9


def test_k_larger_than_index_and_empty_index(tmp_path):
    build_dense(unit(3, 8), tmp_path / "small")
    scores, rows = DenseIndex(tmp_path / "small").search(unit(1, 8), 10)
    assert rows.shape == (1, 3) and sorted(rows[0]) == [0, 1, 2]
    _, rows = DenseIndex(tmp_path / "small").search(unit(1, 8), 10, rows=np.array([2]))
    assert rows.tolist() == [[2]]
    build_dense(np.zeros((0, 8), np.float32), tmp_path / "empty")
    _, rows = DenseIndex(tmp_path / "empty").search(unit(2, 8), 5)
    assert rows.shape == (2, 0)


def test_row_filter_is_applied_inside_the_search(tmp_path):
    x = unit(400, 16, seed=3)
    build_dense(x, tmp_path / "flat")
    build_dense(x, tmp_path / "hnsw", force_hnsw=True)
    allowed = np.arange(0, 400, 7)
    for kind in ("flat", "hnsw"):
        _, rows = DenseIndex(tmp_path / kind).search(x[:5], 10, rows=allowed)
        assert rows.shape == (5, 10) and set(rows.ravel()) <= set(allowed)
        assert rows[0, 0] == 0  # row 0 is allowed and is its own nearest neighbour
