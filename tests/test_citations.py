from rag.citations import citations, cited_numbers
from rag.types import Passage

PS = [Passage("a#0", "a", 0, "Basil", "Basil blackens below 10 degrees Celsius."),
      Passage("b#0", "b", 0, "Mint", "Mint spreads by underground runners; grow it in a pot."),
      Passage("c#0", "c", 0, "Thyme", "Thyme likes poor dry soil.")]


def test_markers_parsed_in_order_including_lists():
    assert cited_numbers("x [2] y [1, 3] z [2]") == [2, 1, 3]


def test_only_passages_given_are_cited():
    cites, invalid = citations("Grow mint in a pot [2]. Also [7].", PS)
    assert [(c.number, c.passage_id, c.inferred) for c in cites] == [(2, "b#0", False)]
    assert invalid == [7]


def test_inferred_when_nothing_is_cited():
    cites, invalid = citations("Mint spreads through underground runners, so use a pot.", PS)
    assert cites and cites[0].passage_id == "b#0" and all(c.inferred for c in cites) and invalid == []
    assert citations("Completely unrelated words xyz.", PS)[0] == []
