import pytest

from indexer.sources import open_source
from rag.encoders.hashing import HashEncoder
from rag.errors import ConfigError, InputError
from rag.reader import IndexReader
from rag.search import Searcher
from rag.settings import Mode, RetrievalSettings, TruncationSettings
from tests.conftest import SAMPLE, make_job


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    d = tmp_path_factory.mktemp("idx")
    enc = HashEncoder(dim=256, max_length=64)
    make_job(d, enc, chunk={"size": 40, "overlap": 8}).run(open_source(SAMPLE))
    return d, enc


def searcher(index, **retrieval):
    d, enc = index
    return Searcher(IndexReader(d), enc, RetrievalSettings(**retrieval), TruncationSettings(max_k=5))


@pytest.mark.parametrize("mode", list(Mode))
def test_modes_return_ranked_passages_with_timings(index, mode):
    r = searcher(index).search("ZZ plant Zamioculcas zamiifolia underground rhizomes", mode=mode)
    assert r.mode is mode and 0 < len(r.hits) <= 5
    assert [h.rank for h in r.hits] == list(range(1, len(r.hits) + 1))
    assert [h.score for h in r.hits] == sorted((h.score for h in r.hits), reverse=True)
    expected = {"bm25": {"bm25"}, "dense": {"encode", "dense"}, "hybrid": {"bm25", "encode", "dense"}}[mode.value]
    assert expected | {"fuse", "truncate", "fetch", "total"} <= set(r.timings_ms)
    assert r.hits[0].passage.document_id == "garden-005"


def test_filters_apply_to_both_retrievers_before_truncation(index):
    s = searcher(index)
    for mode in Mode:
        r = s.search("water soil light", mode=mode, filters={"category": "pests"})
        assert r.hits and all(h.passage.metadata["category"] == "pests" for h in r.hits)
        assert len(r.hits) == 5  # truncation after filtering still fills k
    assert s.search("water", filters={"category": "no-such"}).hits == []
    assert s.search("water", filters={"document_id": "garden-001"}).hits[0].passage.document_id == "garden-001"
    with pytest.raises(InputError, match="filter"):
        s.search("water", filters={"category": ["a", "b"]})


def test_fold_documents_gives_one_hit_per_document(index):
    r = searcher(index, fold_documents=True).search("tomato fruit water calcium", k=10)
    docs = [h.passage.document_id for h in r.hits]
    assert len(docs) == len(set(docs)) == 10
    unfolded = searcher(index).search("tomato fruit water calcium", k=10)
    assert len({h.passage.document_id for h in unfolded.hits}) < 10  # chunked: passages repeat documents


def test_truncation_info_and_k(index):
    s = searcher(index)
    r = s.search("compost", k=3)
    assert len(r.hits) == 3 and r.truncation.kept == 3 and r.truncation.cut_by == "max_k"
    s.truncation = TruncationSettings(max_k=50, token_budget=60)
    r = s.search("compost heap greens browns")
    assert sum(h.passage.token_count for h in r.hits[1:]) + r.hits[0].passage.token_count <= max(60, r.hits[0].passage.token_count)
    assert r.truncation.cut_by == "token_budget"


def test_rrf_and_convex_differ_but_share_candidates(index):
    a = searcher(index, fusion="rrf").search("slugs beer traps copper", k=5)
    b = searcher(index, fusion="convex", normalization="minmax").search("slugs beer traps copper", k=5)
    assert a.hits[0].passage.document_id == b.hits[0].passage.document_id == "garden-069"


def test_empty_query_and_wrong_encoder(index):
    with pytest.raises(InputError, match="empty"):
        searcher(index).search("   ")
    with pytest.raises(ConfigError, match="re-index"):
        Searcher(IndexReader(index[0]), HashEncoder(dim=32))
