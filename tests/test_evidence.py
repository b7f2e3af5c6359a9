"""Evidence sentences and the extractive answer: offsets, scoring, abstention, the answer modes in the
Answerer, the API (JSON and SSE) and the CLI; the real MiniLM on the sample corpus."""

import json

import pytest
from fastapi.testclient import TestClient

from indexer.sources import open_source
from rag.answer import Answerer
from rag.encoders.hashing import HashEncoder
from rag.evidence import (
    NOT_FOUND,
    Evidence,
    EvidenceFinder,
    EvidenceWeights,
    Findings,
    answer_span,
    extractive_answer,
    grounded_span,
    relevance,
    sentence_spans,
)
from rag.generators.base import Generator
from rag.generators.echo import EchoGenerator
from rag.reader import IndexReader
from rag.search import Searcher
from rag.settings import Settings
from rag.types import AnswerMode, Passage
from service import create_app
from tests.conftest import SAMPLE, make_job


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    d = tmp_path_factory.mktemp("idx")
    make_job(d, HashEncoder(dim=256), chunk={"enabled": False}).run(open_source(SAMPLE))
    return d


@pytest.fixture
def searcher(index):
    return Searcher(IndexReader(index), HashEncoder(dim=256))


class MustNotGenerate(Generator):
    def count_tokens(self, text):
        return len(text.split())

    def stream(self, messages, params):
        raise AssertionError("the extractive mode must not call the generator")


class MustNotScore(MustNotGenerate):
    def score_continuations(self, messages, continuations):
        raise AssertionError("the extractive mode must not call the generator")


def test_sentence_spans_are_offsets_into_the_text():
    text = ("Dr. Smith waters it once a month. It dislikes cold (below 10 C)! Does it flower?\n"
            "Rarely. Prices start at 3.50 dollars, e.g. in U.S. shops.")
    spans = sentence_spans(text)
    got = [text[a:b] for a, b in spans]
    assert got == ["Dr. Smith waters it once a month.", "It dislikes cold (below 10 C)!", "Does it flower?", "Rarely.",
                   "Prices start at 3.50 dollars, e.g. in U.S. shops."]
    assert sentence_spans("   ") == [] and sentence_spans("no end") == [(0, 6)]


def test_the_sentence_that_answers_scores_first():
    p = [Passage("a#0", "a", 0, "Snake plant", "The snake plant tolerates low light. Water it once a month in winter. "
                 "Overwatering causes root rot."), Passage("b#0", "b", 0, "Roses", "Prune roses in late winter.")]
    found = EvidenceFinder(HashEncoder(dim=256)).find("how often to water a snake plant in winter", p, top=3)
    ev = found.sentences
    assert ev[0].text == "Water it once a month in winter." and ev[0].passage_id == "a#0" and ev[0].number == 1
    assert p[0].text[ev[0].start:ev[0].end] == ev[0].text
    assert [e.score for e in ev] == sorted((e.score for e in ev), reverse=True)
    assert extractive_answer(found, min_relevance=found.relevance + 0.01) is None
    assert extractive_answer(found, found.relevance) == ev[0]
    assert extractive_answer(Findings([], found.relevance), 0.0) is None
    empty = EvidenceFinder(HashEncoder(dim=256)).find("how often to water", [Passage("c#0", "c", 0, "", "   ")])
    assert empty == Findings([], None) and extractive_answer(empty, -1e9) is None  # JSON has no -inf: null


def test_the_generator_s_likelihood_chooses_among_candidate_spans():
    """Two or more typed candidates: closeness + weight x the generator's likelihood of each; no
    likelihood (a backend that cannot score, or weight 0): closeness alone; one candidate: not asked."""
    s = "Gustave Eiffel built the tower that Stephen Sauvestre designed in Paris."
    found = Findings([Evidence(1, "a#0", "a", "t", 0, len(s), s, 1.0)], 1.0)
    q = "Who designed the tower?"
    asked = []

    def likes(pick):
        def score(question, e, spans):
            asked.append((question, e.text, spans))
            return [0.0 if x == pick else -50.0 for x in spans]
        return score

    closest = extractive_answer(found, 0.0, q).answer
    assert closest in ("Gustave Eiffel", "Stephen Sauvestre", "Paris")
    other = next(x for x in ("Gustave Eiffel", "Stephen Sauvestre") if x != closest)
    assert extractive_answer(found, 0.0, q, likes(other), 0.1).answer == other
    assert asked[-1][0] == q and asked[-1][1] == s and other in asked[-1][2] and closest in asked[-1][2]
    assert extractive_answer(found, 0.0, q, lambda *a: None, 0.1).answer == closest
    n = len(asked)
    assert extractive_answer(found, 0.0, q, likes(other), 0.0).answer == closest and len(asked) == n
    one = Findings([Evidence(1, "a#0", "a", "t", 0, 25, "Eiffel designed the tower.", 1.0)], 1.0)
    assert extractive_answer(one, 0.0, q, likes("x"), 0.1).answer == "Eiffel" and len(asked) == n


@pytest.mark.parametrize("question, sentence, span", [
    ("How often should I water a snake plant in winter?",
     "Water only when dry, roughly every two to three weeks in summer and once a month in winter.", "once a month"),
    ("When did the Normans conquer England?", "The Normans conquered England in 1066 under William.", "1066"),
    ("Who led the Norman conquest of England?", "The Norman conquest of England was led by William the Conqueror in 1066.",
     "William the Conqueror"),
    ("How many people live in Warsaw?", "Warsaw has a population of about 1.7 million people.", "about 1.7 million"),
    # "what was the <noun>": a name holding the noun, else the whole sentence
    ("What was the first battle of the war?", "The dispute erupted into violence in the Battle of Jumonville Glen in May 1754.",
     "Battle of Jumonville Glen"),
    ("What was the goal of the congress?", "The goal of the Albany Congress was to formalize a unified front.", None),
    # a bound is part of the quantity: "above 10", not "10"
    ("What night temperature do tomatoes need?", "Tomatoes need night temperatures above 10 degrees Celsius before planting out.",
     "above 10 degrees Celsius"),
    ("Below what temperature does basil blacken?", "Basil blackens below 10 degrees Celsius.", "10 degrees Celsius"),
    # a quantity noun a few words after "what" ("what was the ratio", "what was French population")
    ("What was the ratio of British settlers to French?",
     "British settlers outnumbered the French 20 to 1 along the eastern coast of the continent.", "20 to 1"),
    ("What was the French population in North America?",
     "At the start of the war, the French colonies had a population of roughly 60,000 settlers.", "roughly 60,000"),
    ("Where is the Eiffel tower?", "The Eiffel Tower stands in Paris, France.", "Paris"),
    ("What causes blossom end rot?", "Blossom end rot is caused by a lack of calcium.", None),
    # a nationality used as an adjective is not a "who" answer, a name is
    ("Who commanded the fleet?", "Admiral Jane Holt, a veteran of two wars, commanded the Spanish fleet.", "Admiral Jane Holt"),
    ("Who built the bridge?", "The French bridge was built in 1850 by engineers under Paul Sand.", "Paul Sand"),
    # the question's verb matches the sentence's by stem ("stop" / "stopped"); a "where" in the sentence is no anchor
    ("Where did the march stop?", "The march stopped at Fort Ely, and the rest went on to Hale Point, where they camped.", "Fort Ely"),
    # the doer of "who <verb>" is the last name before the verb, past an aside between commas
    ("Who mapped the coast in 1820?", "In 1820 Ann Reid, sailing for both Spain and Portugal, mapped the coast.", "Ann Reid"),
    # the object of "who did X <verb>" is the name after the verb
    ("Who did Carter send to meet the colonel?", "In May Carter sent Hugh Park north to meet Colonel Ames, the Essex commander.",
     "Hugh Park"),
    # ... but for "which country" a nationality adjective is the answer (and no name need say "country")
    ("Which country made the cars that sold best?", "Japanese cars sold best in Ohio that year.", "Japanese"),
    # "what fort": a name that says it is one
    ("In 1760 what fort did the army take?", "In 1760 the Essex army under James Hale took Fort Lyle.", "Fort Lyle"),
    # "where": a place right after the question's verb
    ("Where did Hale slip away to attack?", "With Lee held at Boston, Hale slipped away and led the attack on Salem in May.", "Salem"),
    # a quantity keeps its unit and range, unless the question names the unit
    ("How deep should I plant garlic?", "Plant garlic cloves in autumn, 2.5 cm below the surface and 15 cm apart.", "2.5 cm"),
    ("How hot does a compost heap get?", "A working heap reaches 55 to 65 °C within a week.", "55 to 65 °C"),
    ("How many years did the siege last?", "The siege lasted seven years, from 1756 to 1763.", "seven"),
    ("How long did the siege last?", "The siege lasted seven years, from 1756 to 1763.", "seven years"),
    # a year or decade is no count, nor is a number word inside a name
    ("How many men did the British lose?", "In 1759-60 the British lost about 1,000 men in the Seven Years' War.", "about 1,000"),
    ("How much powder was destroyed?", "By the 1880s the Seven Years' War was long forgotten.", None),
])
def test_answer_span_finds_what_the_question_asks_for(question, sentence, span):
    got = answer_span(question, sentence)
    assert (sentence[got[0]:got[1]] if got else None) == span


def test_extractive_mode_answers_without_the_generator_and_cites_its_sentence(searcher):
    # the hashing encoder's scores are not on MiniLM's scale: no abstention threshold here
    finder = EvidenceFinder(searcher.encoder, EvidenceWeights(min_relevance=float("-inf")))
    a = Answerer(searcher, MustNotScore(), evidence=finder, mode=AnswerMode.extractive)
    r = a.answer("How often should I water a snake plant in winter?", k=3)  # two typed candidates: closeness alone
    assert r.extractive is not None and r.answer == r.extractive.answer and r.extractive.document_id == "garden-001"
    assert r.answer in r.extractive.text
    assert [c.passage_id for c in r.citations] == [r.extractive.passage_id]
    hit_ids = [h.passage.id for h in r.search.hits]
    assert all(e.passage_id in hit_ids for e in r.evidence) and {"evidence", "total"} <= set(r.timings_ms)
    r = Answerer(searcher, MustNotGenerate(), evidence=EvidenceFinder(searcher.encoder, EvidenceWeights(min_relevance=99)),
                 mode=AnswerMode.extractive).answer("snake plant", k=3)
    assert r.extractive is None and r.answer == NOT_FOUND and r.citations == []


def test_both_mode_gives_the_extractive_answer_before_the_first_token(searcher):
    a = Answerer(searcher, EchoGenerator(), evidence=EvidenceFinder(searcher.encoder), mode=AnswerMode.both)
    kinds = [k for k, _ in a.stream("When should I prune roses?")]
    assert kinds.index("extractive") < kinds.index("token") and kinds[0] == "search" and kinds[-1] == "result"
    with pytest.raises(Exception, match="answer mode"):
        list(a.stream("x", mode="telepathic"))


def test_answer_api_modes_json_and_sse(index):
    enc = HashEncoder(dim=256)
    app = create_app(Settings(index_dir=index, auth={"enabled": False}, answer={"evidence": {"min_relevance": -1e9}}),
                     searcher_factory=lambda: Searcher(IndexReader(index), enc),
                     generator_factory=EchoGenerator)
    with TestClient(app) as c:
        r = c.post("/v1/answer", json={"question": "How often should I water a snake plant in winter?", "mode": "extractive"})
        body = r.json()
        assert r.status_code == 200 and body["mode"] == "extractive" and body["extractive"]["found"]
        assert body["answer"] == body["extractive"]["answer"] and body["usage"] == {} and isinstance(body["relevance"], float)
        hits = {h["passage_id"]: h["text"] for h in body["search"]["hits"]}
        for e in body["evidence"]:
            assert hits[e["passage_id"]][e["start"]:e["end"]] == e["text"]
        assert c.post("/v1/answer", json={"question": "x", "mode": "magic"}).status_code == 422
        with c.stream("POST", "/v1/answer", json={"question": "What causes blossom end rot?", "stream": True}) as s:
            events = [line.removeprefix("event: ") for line in s.iter_lines() if line.startswith("event: ")]
        assert events[:3] == ["search", "evidence", "extractive"] and events[-1] == "final" and "token" in events


@pytest.mark.slow
def test_extractive_answers_with_the_real_encoder(tmp_path, real_encoder):
    """The questions the issue quoted, on the sample corpus with all-MiniLM-L6-v2."""
    from rag.factory import make_answerer

    make_job(tmp_path, real_encoder, chunk={"enabled": False}).run(open_source(SAMPLE))
    a = make_answerer(Settings(index_dir=tmp_path, answer={"mode": "extractive"}),
                      searcher=Searcher(IndexReader(tmp_path), real_encoder), generator=MustNotGenerate())
    r = a.answer("How often should I water a snake plant in winter?")  # the first example
    assert r.answer == "once a month" and r.extractive.document_id == "garden-001" and "once a month in winter" in r.extractive.text
    on_topic = r.relevance
    r = a.answer("What is the capital of France?")  # off-topic: the default threshold abstains
    assert r.answer == NOT_FOUND and r.extractive is None and r.citations == [] and r.relevance < on_topic
    for question in ("What causes blossom end rot?", "When should I prune roses?", "What is the airspeed of a swallow?"):
        r = a.answer(question)
        if r.extractive is None:
            assert r.answer == NOT_FOUND and r.citations == []
        else:  # every citation is the passage the answer was taken from
            assert r.answer in r.extractive.text and [c.passage_id for c in r.citations] == [r.extractive.passage_id]
        print(json.dumps({"q": question, "a": r.answer, "sentence": r.extractive and r.extractive.text}))


class Recording(EchoGenerator):
    def stream(self, messages, params):
        self.seen = messages
        return super().stream(messages, params)


@pytest.mark.parametrize("backend, model, context", [("local", None, "sentence"), ("ctranslate2", None, "sentence"),
                                                     ("local", "/some/bigger/model", "passages"),
                                                     ("openai", "llama-3-70b", "passages")])
def test_large_models_still_read_whole_passages(searcher, backend, model, context):
    """answer.context=auto: only the embedded small model gets evidence sentences; a model served by vLLM
    (the openai backend) or named by the user reads the whole passages, and its citations stay valid."""
    from rag.factory import make_answerer

    gen = Recording()
    settings = Settings(index_dir=searcher.reader.index_dir, generator={"backend": backend, "model": model})
    a = make_answerer(settings, searcher=searcher, generator=gen)
    assert a.context == context
    r = a.answer("When should I prune roses?", mode="generative", k=3)
    prompt = gen.seen[-1]["content"]
    if context == "passages":
        assert all(h.passage.text in prompt for h in r.search.hits) and len(r.passages) == 3
    else:  # the best sentence alone
        assert "Sentence:" in prompt and r.evidence[0].text in prompt and not any(e.text in prompt for e in r.evidence[1:])
    assert r.citations and all(c.passage_id in {h.passage.id for h in r.search.hits} for c in r.citations)
    assert r.invalid_citations == []


@pytest.mark.parametrize("generated, expected", [
    ("once a month", "once a month"),
    ("Once a month.", "once a month"),  # case and punctuation do not matter
    ("a month in winter", "a month in winter"),
    ("month in winter", "month in winter"),  # of spans that match equally, the one as long as the copy
    ("twice a week", None),  # not the sentence's words
    ("", None),
])
def test_grounded_span_matches_a_copy_back_onto_the_sentence(generated, expected):
    sentence = "Water only when dry, roughly every two weeks in summer and once a month in winter."
    got = grounded_span(generated, sentence)
    assert (sentence[got[0]:got[1]] if got else None) == expected


class Says(EchoGenerator):
    def __init__(self, text):
        super().__init__()
        self.text, self.calls = text, 0

    def _answer(self, messages):
        self.calls += 1
        return self.text


@pytest.mark.parametrize("says, grounded", [("the lack of calcium", True), ("too much sunlight", False)])
def test_both_mode_with_the_sentence_context_answers_in_the_evidence_words(searcher, says, grounded):
    """The small model copies words of the best sentence: its copy, matched onto the sentence, is the
    answer (with offsets and the passage cited); words that are not in the sentence are not an answer,
    the sentence is."""
    finder = EvidenceFinder(searcher.encoder, EvidenceWeights(min_relevance=float("-inf")))
    best = finder.find("What causes blossom end rot?", [h.passage for h in searcher.search("What causes blossom end rot?", k=3).hits]).sentences[0]
    gen = Says(says if not grounded else " ".join(best.text.rstrip(".").split()[-8:]))  # a copy of the sentence's tail
    a = Answerer(searcher, gen, evidence=finder, mode=AnswerMode.both, context="sentence")
    kinds, r = [], None
    for kind, value in a.stream("What causes blossom end rot?", k=3):
        kinds.append(kind)
        r = value
    assert gen.calls == 1 and kinds.index("extractive") < kinds.index("token")
    e = r.answer_evidence
    assert e is not None and (e.passage_id, e.start, e.end) == (best.passage_id, best.start, best.end)
    passage = next(h.passage for h in r.search.hits if h.passage.id == e.passage_id)
    if grounded:
        assert r.answer == gen.text and passage.text[e.span_start:e.span_end] == r.answer
    else:
        assert r.answer == best.text and e.span_start is None
    assert r.generated == gen.text and [c.passage_id for c in r.citations] == [e.passage_id]


def test_both_mode_with_the_sentence_context_needs_no_generator_for_a_typed_question(searcher):
    finder = EvidenceFinder(searcher.encoder, EvidenceWeights(min_relevance=float("-inf")))
    a = Answerer(searcher, MustNotGenerate(), evidence=finder, mode=AnswerMode.both, context="sentence")
    r = a.answer("How often should I water a snake plant in winter?", k=3)
    assert r.answer == "once a month" and r.answer_evidence.document_id == "garden-001" and r.generated is None
    a = Answerer(searcher, MustNotGenerate(), evidence=EvidenceFinder(searcher.encoder, EvidenceWeights(min_relevance=99)),
                 mode=AnswerMode.both, context="sentence")
    r = a.answer("What causes blossom end rot?", k=3)  # nothing scores high enough: no answer, no generation
    assert r.answer == NOT_FOUND and r.citations == [] and r.answer_evidence is None


def test_the_generator_scores_the_typed_spans_without_generating_and_a_failure_leaves_the_closest(searcher):
    """"How often": the best sentence holds two candidates ("every two to three weeks", "once a
    month"); the generator scores both on the copy prompt (timed as its own stage) and its choice is
    the answer; when scoring fails, the closest span still answers."""
    from rag.generators.errors import GeneratorUnavailable

    class Prefers(MustNotGenerate):
        def __init__(self, pick=None):
            super().__init__()
            self.pick, self.seen = pick, []

        def score_continuations(self, messages, continuations):
            self.seen.append((messages[-1]["content"], continuations))
            if self.pick is None:
                raise GeneratorUnavailable("connection refused")
            return [0.0 if c == self.pick else -9.0 for c in continuations]

    finder = EvidenceFinder(searcher.encoder, EvidenceWeights(min_relevance=float("-inf")))
    q = "How often should I water a snake plant in winter?"
    gen = Prefers("every two to three weeks")
    r = Answerer(searcher, gen, evidence=finder, mode=AnswerMode.both, context="sentence").answer(q, k=3)
    (prompt, spans), = gen.seen
    assert set(spans) == {"every two to three weeks", "once a month"} and q in prompt and r.answer_evidence.text in prompt
    assert r.answer == "every two to three weeks" and "evidence.span_likelihood" in r.timings_ms and r.error is None
    r = Answerer(searcher, Prefers(None), evidence=finder, mode=AnswerMode.both, context="sentence").answer(q, k=3)
    assert r.answer == "once a month" and r.error is None


def test_both_mode_with_the_sentence_context_keeps_the_sentence_when_the_generator_is_down(searcher):
    from rag.generators.errors import GeneratorUnavailable

    class Down(EchoGenerator):
        def stream(self, messages, params):
            raise GeneratorUnavailable("connection refused")

    finder = EvidenceFinder(searcher.encoder, EvidenceWeights(min_relevance=float("-inf")))
    r = Answerer(searcher, Down(), evidence=finder, mode=AnswerMode.both, context="sentence").answer("What causes blossom end rot?", k=3)
    assert r.error_kind == "unavailable" and r.answer == r.extractive.text and r.citations[0].passage_id == r.extractive.passage_id


def test_abstention_threshold_keeps_answered_questions_and_drops_off_topic_ones():
    """eval.benchmarks.evidence.tune: the threshold on the question's relevance (best dense + best
    title overlap) is the lowest that keeps every right dev answer and abstains on every off-topic
    question here (0.7), not one that also drops right answers (0.8) or answers an off-topic one (0.5)."""
    import numpy as np

    from eval.benchmarks.evidence import off_topic_abstained, tune

    def feats(dense, title=0.0):  # one sentence: its dense signal and its overlap with the question
        return np.array([[dense, 0, 0, 0, 0, title]])

    dev = [{"feats": feats(s), "labels": np.array([ok])} for s, ok in [(0.9, True), (0.8, True), (0.7, True), (0.45, False)]]
    off = {"far": [feats(s) for s in (0.2, 0.3, 0.5)]}
    w = tune(dev, off)
    assert w.min_relevance == 0.7 and off_topic_abstained(off, w) == {"far": 1.0}
    assert off_topic_abstained(off, EvidenceWeights(min_relevance=0.4)) == {"far": 0.6667}
    # the relevance takes the best of each signal over all the sentences, wherever they are
    two = np.array([[0.3, 0, 0, 0, 0, 0.5], [0.6, 0, 0, 0, 0, 0.1]])
    assert relevance(two) == pytest.approx(1.1) and relevance(np.zeros((0, 6))) == float("-inf")
