from rag.prompts import PassageOrder, PromptBuilder, order_passages
from rag.types import Passage


def P(i, words=20):
    return Passage(f"d{i}#0", f"d{i}", 0, f"Title {i}", " ".join(f"w{i}_{j}" for j in range(words)))


def count(text):
    return len(text.split())


def test_question_before_and_after_passages_numbered_in_rank_order():
    pr = PromptBuilder(count, budget=10_000).build("why is the sky blue?", [P(1), P(2), P(3)])
    user = pr.messages[-1]["content"]
    assert user.count("why is the sky blue?") == 2
    assert user.index("why is the sky blue?") < user.index("[1] Title 1") < user.index("[2] Title 2") < user.index("[3] Title 3")
    assert user.rindex("why is the sky blue?") > user.index("[3]")
    assert [p.id for p in pr.passages] == ["d1#0", "d2#0", "d3#0"] and pr.dropped == 0
    assert pr.messages[0]["role"] == "system" and "[1]" in pr.messages[0]["content"]


def test_contextualization_off_puts_the_question_once_after():
    user = PromptBuilder(count, contextualize=False, budget=10_000).build("q?", [P(1)]).messages[-1]["content"]
    assert user.count("q?") == 1 and user.index("q?") > user.index("[1]")


def test_best_at_both_ends():
    ps = [P(i) for i in range(1, 6)]
    assert [p.id[1] for p in order_passages(ps, PassageOrder.ends)] == ["1", "3", "5", "4", "2"]
    pr = PromptBuilder(count, order=PassageOrder.ends, budget=10_000).build("q", ps)
    assert pr.passages[0].id == "d1#0" and pr.passages[-1].id == "d2#0"


def test_budget_drops_lowest_ranked_first_then_trims_the_last():
    ps = [P(1, 50), P(2, 50), P(3, 50)]
    full = PromptBuilder(count, budget=10_000).build("q", ps).tokens
    pr = PromptBuilder(count, budget=full - 80).build("q", ps)  # room for 1 and part of 2
    assert [p.id for p in pr.passages] == ["d1#0", "d2#0"] and pr.dropped == 1
    assert pr.passages[1].text.endswith("...") and len(pr.passages[1].text.split()) < 50
    assert pr.passages[0].text == ps[0].text and pr.tokens <= full - 80


def test_tiny_budget_keeps_no_passage_rather_than_overflowing():
    pr = PromptBuilder(count, budget=25).build("q", [P(1, 200)])
    assert pr.passages == [] or pr.tokens <= 25
