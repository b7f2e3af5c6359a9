import numpy as np
import pytest

from rag.fusion import Normalization, convex, fold_documents, normalize, rrf
from rag.types import ScoredId


def run(*pairs):
    return [ScoredId(p, s) for p, s in pairs]


def test_rrf_rewards_agreement_and_breaks_ties_by_id():
    a = run(("x", 9), ("y", 5), ("z", 1))
    b = run(("y", 0.9), ("x", 0.8), ("w", 0.1))
    fused = rrf([a, b], k=60)
    assert [h.passage_id for h in fused] == ["x", "y", "w", "z"]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 62)
    assert fused[2].score == fused[3].score and fused[2].passage_id < fused[3].passage_id


def test_rrf_k_changes_the_weight_of_the_top():
    a = run(("x", 1), ("y", 0.5), ("z", 0.1))
    b = run(("z", 1), ("q", 0.5), ("y", 0.1))
    assert rrf([a, b], k=1)[0].passage_id in {"x", "z"}
    assert rrf([a, b], k=1000)[0].passage_id in {"y", "z"}  # deep agreement wins when k is large


@pytest.mark.parametrize("method", list(Normalization))
def test_convex_weight_extremes_reproduce_each_list(method):
    dense = run(("a", 0.9), ("b", 0.5), ("c", 0.4))
    sparse = run(("c", 20.0), ("d", 10.0), ("a", 1.0))
    assert [h.passage_id for h in convex(dense, sparse, 1.0, method)][:3] == ["a", "b", "c"]
    assert [h.passage_id for h in convex(dense, sparse, 0.0, method)][:3] == ["c", "d", "a"]
    mixed = convex(dense, sparse, 0.5, method)
    assert {h.passage_id for h in mixed} == {"a", "b", "c", "d"}


def test_missing_items_get_the_lists_floor():
    dense = run(("a", 0.9), ("b", 0.1))
    sparse = run(("c", 5.0), ("a", 1.0))
    fused = {h.passage_id: h.score for h in convex(dense, sparse, 0.5, Normalization.minmax)}
    assert fused["a"] == pytest.approx(0.5)  # 0.5*1 + 0.5*0
    assert fused["b"] == pytest.approx(0.0) and fused["c"] == pytest.approx(0.5)


def test_normalize():
    x = np.array([1.0, 2.0, 3.0])
    assert normalize(x, Normalization.minmax).tolist() == [0.0, 0.5, 1.0]
    z = normalize(x, Normalization.zscore)
    assert z.mean() == pytest.approx(0) and z.std() == pytest.approx(1)
    assert normalize(np.array([2.0, 2.0]), Normalization.zscore).tolist() == [0.0, 0.0]
    assert normalize(np.array([]), Normalization.minmax).size == 0


def test_empty_lists():
    assert rrf([[], []]) == [] and convex([], [], 0.5) == []
    assert [h.passage_id for h in convex([], run(("a", 1.0)), 0.5)] == ["a"]


def test_fold_keeps_best_passage_per_document():
    hits = run(("d1#0", 0.9), ("d2#1", 0.8), ("d1#3", 0.7), ("d3#0", 0.6))
    folded = fold_documents(hits, {h.passage_id: h.passage_id.split("#")[0] for h in hits})
    assert [h.passage_id for h in folded] == ["d1#0", "d2#1", "d3#0"]
