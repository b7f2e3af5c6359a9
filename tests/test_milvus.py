"""The indexing job and the searcher on the Milvus backend (milvus-lite: a .db file, the same client API)."""

import json
import time

import numpy as np
import pytest

from indexer.sources import open_source
from rag import generations as gens
from rag import milvus
from rag.encoders.hashing import HashEncoder
from rag.reader import IndexReader
from rag.search import Searcher
from rag.settings import Mode, RetrievalSettings, TruncationSettings
from tests.conftest import SAMPLE, make_job, write_jsonl
from tests.index_slowly import kill_then_resume, run_slowly

SETTINGS = milvus.MilvusSettings()


def rows(n, extra=""):
    return [{"_id": f"d{i}", "title": f"T{i}", "text": f"document number{i} about topic{i % 3} {extra}",
             "metadata": {"topic": f"t{i % 3}"}} for i in range(n)]


def collections(index_dir):
    loc = milvus.locate(SETTINGS, index_dir)
    c = milvus.client(loc)
    ours = sorted(n for n in c.list_collections() if n.startswith(loc.prefix + "_"))
    alias = c.describe_alias(loc.prefix)["collection_name"] if loc.prefix in c.list_aliases()["aliases"] else None
    return ours, alias


@pytest.fixture(scope="module")
def indexes(tmp_path_factory):
    """The sample corpus indexed twice with the same encoder: local files and Milvus."""
    enc = HashEncoder(dim=128, max_length=64)
    local, remote = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("milvus")
    make_job(local, enc, chunk={"size": 40, "overlap": 8}).run(open_source(SAMPLE))
    s = make_job(remote, enc, chunk={"size": 40, "overlap": 8}, milvus=SETTINGS).run(open_source(SAMPLE))
    assert s.published
    return local, remote, enc


def test_job_publishes_a_generation_whose_collection_and_alias_are_in_milvus(indexes):
    _, remote, _ = indexes
    gen = gens.require_current(remote)
    assert gens.verify(gen) == []
    manifest = gens.read_manifest(gen)
    assert manifest.bm25_backend == "milvus" and manifest.dense.kind == "milvus"
    pointer = json.loads((gen / milvus.FILE).read_text())
    assert not (gen / "dense").exists() and not (gen / "bm25").exists()  # nothing heavy on local disk
    ours, alias = collections(remote)
    assert ours == [pointer["collection"]] and alias == pointer["collection"]
    r = IndexReader(remote)
    assert len(r.dense) == len(r.bm25) == len(r.passages) == manifest.counts.passages
    assert r.bm25.ids == r.passages.ids


def test_dense_results_equal_the_local_index_and_hybrid_uses_our_fusion(indexes):
    local, remote, enc = indexes
    a = Searcher(IndexReader(local), enc, truncation=TruncationSettings(max_k=5))
    b = Searcher(IndexReader(remote), enc, truncation=TruncationSettings(max_k=5))
    for q in ["ZZ plant rhizomes", "how often water snake plant winter", "blossom end rot calcium", "prune roses"]:
        da, db = a.search(q, mode=Mode.dense), b.search(q, mode=Mode.dense)
        assert [h.passage.id for h in da.hits] == [h.passage.id for h in db.hits]
        assert np.allclose([h.score for h in da.hits], [h.score for h in db.hits], atol=1e-5)
        hb = b.search(q, mode=Mode.hybrid)
        assert hb.hits and {"bm25", "dense", "fuse"} <= set(hb.timings_ms)
    assert b.search("Zamioculcas zamiifolia rhizomes", mode=Mode.bm25).hits[0].passage.document_id == "garden-005"


def test_filters_reach_milvus_as_rows(indexes):
    _, remote, enc = indexes
    s = Searcher(IndexReader(remote), enc, RetrievalSettings(), TruncationSettings(max_k=10))
    doc = "garden-005"
    for mode in (Mode.dense, Mode.bm25, Mode.hybrid):
        hits = s.search("plant watering soil light", mode=mode, filters={"document_id": doc}).hits
        assert hits and {h.passage.document_id for h in hits} == {doc}
    # a filter value that looks like an expression is only ever a value for the passage table
    assert s.search("plant", mode=Mode.dense, filters={"document_id": 'x" or row >= 0 or "'}).hits == []


def test_new_generations_move_the_alias_and_old_collections_are_dropped(tmp_path):
    enc = HashEncoder(dim=32)
    corpus = tmp_path / "c.jsonl"
    names = []
    for i in range(4):
        write_jsonl(corpus, rows(6, extra=f"version{i}"))
        s = make_job(tmp_path / "idx", enc, milvus=SETTINGS, keep_generations=2).run(open_source(corpus))
        assert s.published
        names.append(json.loads((gens.require_current(tmp_path / "idx") / milvus.FILE).read_text())["collection"])
        ours, alias = collections(tmp_path / "idx")
        assert alias == names[-1] and set(ours) == set(names[-2:])
    again = make_job(tmp_path / "idx", enc, milvus=SETTINGS).run(open_source(corpus))
    assert not again.published  # unchanged: the generation and its collection stay


def test_a_collection_lost_in_milvus_is_rebuilt_by_the_next_run(tmp_path):
    enc = HashEncoder(dim=32)
    corpus = write_jsonl(tmp_path / "c.jsonl", rows(5))
    make_job(tmp_path / "idx", enc, milvus=SETTINGS).run(open_source(corpus))
    gen = gens.require_current(tmp_path / "idx")
    loc = milvus.locate(SETTINGS, tmp_path / "idx")
    c = milvus.client(loc)
    c.drop_alias(loc.prefix)
    c.drop_collection(json.loads((gen / milvus.FILE).read_text())["collection"])
    with pytest.raises(Exception, match="missing"):
        IndexReader(tmp_path / "idx")
    s = make_job(tmp_path / "idx", enc, milvus=SETTINGS).run(open_source(corpus))
    assert s.published and len(IndexReader(tmp_path / "idx").dense) == 5


def test_a_client_opened_elsewhere_reads_through_the_alias(indexes):
    _, remote, enc = indexes
    loc = milvus.locate(SETTINGS, remote)
    hits = milvus.client(loc).search(loc.prefix, data=[enc.encode_queries(["snake plant"])[0].tolist()], anns_field="dense",
                                     limit=3, output_fields=["id", "title"])
    assert len(hits[0]) == 3 and all("#" in h["entity"]["id"] for h in hits[0])


@pytest.mark.slow
def test_sigkill_at_any_moment_then_resume_equals_a_clean_run_on_milvus(tmp_path):
    clean = tmp_path / "clean"
    t0 = time.perf_counter()
    assert run_slowly(SAMPLE, clean, "milvus").returncode == 0
    full = time.perf_counter() - t0
    killed = tmp_path / "killed"
    kills, out = kill_then_resume(SAMPLE, killed, full, (0.2, 0.4, 0.6, 0.8, 0.9, 0.97), "milvus")
    assert kills >= 3
    assert out.returncode == 0, out.stderr[-4000:]
    a, b = IndexReader(clean), IndexReader(killed)
    assert a.passages.ids == b.passages.ids == b.bm25.ids
    rows_ = np.arange(len(a.passages))
    assert all(np.array_equal(a.dense.vector(int(i)), b.dense.vector(int(i))) for i in rows_[:: max(1, len(rows_) // 20)])
    ours, alias = collections(killed)
    assert ours == [alias]  # leftovers of the killed builds were dropped
