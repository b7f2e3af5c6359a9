from rag.truncation import truncate

ITEMS = [("a", 10.0, 50), ("b", 9.5, 50), ("c", 9.0, 50), ("d", 3.0, 50), ("e", 2.9, 50)]


def cut(**kw):
    kept, info = truncate(ITEMS, lambda it: it[1], tokens=lambda it: it[2], **kw)
    return [it[0] for it in kept], info


def test_max_k():
    kept, info = cut(max_k=2)
    assert kept == ["a", "b"] and (info.candidates, info.kept, info.cut_by) == (5, 2, "max_k")


def test_nothing_cuts():
    kept, info = cut(max_k=10)
    assert len(kept) == 5 and info.cut_by == "none"


def test_min_score():
    kept, info = cut(max_k=10, min_score=5.0)
    assert kept == ["a", "b", "c"] and info.cut_by == "min_score"


def test_score_gap_stops_at_the_cliff():
    kept, info = cut(max_k=10, score_gap=0.5)  # range 7.1: the 6.0 drop is a cliff, the 0.5 drops are not
    assert kept == ["a", "b", "c"] and info.cut_by == "score_gap"


def test_token_budget_keeps_at_least_the_best():
    assert cut(max_k=10, token_budget=120)[0] == ["a", "b"]
    kept, info = cut(max_k=10, token_budget=10)
    assert kept == ["a"] and info.cut_by == "token_budget"


def test_first_rule_to_fire_is_reported():
    kept, info = cut(max_k=3, min_score=9.6)
    assert kept == ["a"] and info.cut_by == "min_score"
