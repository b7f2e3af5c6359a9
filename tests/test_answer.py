import pytest

from indexer.sources import open_source
from rag.answer import Answerer
from rag.encoders.hashing import HashEncoder
from rag.generators.base import GenerationParams, Generator
from rag.generators.echo import EchoGenerator
from rag.generators.errors import (
    GeneratorOutOfMemory,
    GeneratorTimeout,
    GeneratorUnavailable,
)
from rag.reader import IndexReader
from rag.search import Searcher
from tests.conftest import SAMPLE, make_job


@pytest.fixture(scope="module")
def searcher(tmp_path_factory):
    d = tmp_path_factory.mktemp("idx")
    enc = HashEncoder(dim=256)
    make_job(d, enc, chunk={"enabled": False}).run(open_source(SAMPLE))
    return Searcher(IndexReader(d), enc)


class Failing(Generator):
    def __init__(self, exc):
        self.exc = exc

    def count_tokens(self, text):
        return len(text.split())

    def stream(self, messages, params):
        raise self.exc


def test_answer_cites_passages_it_was_given(searcher):
    r = Answerer(searcher, EchoGenerator(), max_passages=3).answer("Zamioculcas rhizomes watering")
    assert r.error is None and r.answer.endswith("[1]")
    assert len(r.passages) == 3 and r.citations[0].passage_id == r.passages[0].id and not r.citations[0].inferred
    assert r.usage["tokens_out"] > 0 and {"prompt", "generate", "total", "search.bm25"} <= set(r.timings_ms)


def test_streaming_events_in_order(searcher):
    events = list(Answerer(searcher, EchoGenerator()).stream("compost heap"))
    kinds = [k for k, _ in events]
    assert kinds[0] == "search" and kinds[-1] == "result" and set(kinds[1:-1]) == {"token"}
    assert "".join(v for k, v in events if k == "token") == events[-1][1].answer


def test_uncited_answer_gets_inferred_citations(searcher):
    r = Answerer(searcher, EchoGenerator(cite=False)).answer("slugs snails beer traps")
    assert r.citations and all(c.inferred for c in r.citations)


def test_generation_params_reach_the_generator(searcher):
    r = Answerer(searcher, EchoGenerator()).answer("compost", params=GenerationParams(max_tokens=3))
    assert len(r.answer.split()) == 3


@pytest.mark.parametrize("exc, kind", [(GeneratorUnavailable("down"), "unavailable"), (GeneratorTimeout("slow"), "timeout"),
                                       (GeneratorOutOfMemory("oom"), "out_of_memory")])
def test_generator_failure_keeps_the_retrieval(searcher, exc, kind):
    r = Answerer(searcher, Failing(exc)).answer("compost heap")
    assert r.answer is None and r.error_kind == kind and r.search.hits and r.passages
