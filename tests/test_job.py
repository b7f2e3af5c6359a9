
import pytest

from indexer.job import StrictModeError
from indexer.sources import open_source
from rag import generations as gens
from rag import manifest
from rag.reader import IndexReader
from rag.settings import BM25Backend
from rag.store.sql import DocumentStore
from tests.conftest import SAMPLE, make_job, write_jsonl


def rows(n, prefix="d", text="soil water light"):
    return [{"id": f"{prefix}{i}", "title": f"Title {i}", "text": f"{text} number{i} " * 8} for i in range(n)]


def test_index_publishes_consistent_generation(tmp_path, hash_encoder):
    src = open_source(SAMPLE)
    s = make_job(tmp_path, hash_encoder).run(src)
    assert s.published and s.added == 113 and s.rejected == 0
    assert s.passages_encoded == s.passages_total > 113  # small windows: several passages per document
    gen = gens.require_current(tmp_path)
    m = gens.read_manifest(gen)
    assert (m.counts.documents, m.counts.passages) == (113, s.passages_total) and m.version == manifest.VERSION
    assert m.encoder.model_key == hash_encoder.model_key and m.generation == gen.name
    assert gens.verify(gen) == []
    r = IndexReader(tmp_path)
    assert len(r.passages) == len(r.bm25) == len(r.dense) == s.passages_total
    hit = r.bm25.search("Zamioculcas", 1)[0]
    assert r.passages.get([hit.passage_id])[hit.passage_id].document_id == "garden-005"
    # dense rows line up with the passages rows
    vec = hash_encoder.encode_passages([r.passages.get([r.passages.ids[7]])[r.passages.ids[7]].indexed_text])
    assert r.dense.search(vec, 1)[1][0][0] == 7


def test_rerun_skips_everything_and_keeps_generation(tmp_path, hash_encoder):
    make_job(tmp_path, hash_encoder).run(open_source(SAMPLE))
    first = gens.current_generation(tmp_path)
    s = make_job(tmp_path, hash_encoder).run(open_source(SAMPLE))
    assert (s.added, s.updated, s.skipped, s.passages_encoded, s.published) == (0, 0, 113, 0, False)
    assert gens.current_generation(tmp_path) == first


def test_changed_documents_are_reencoded_and_sync_deletes(tmp_path, hash_encoder):
    corpus = write_jsonl(tmp_path / "c.jsonl", rows(10))
    idx = tmp_path / "idx"
    make_job(idx, hash_encoder).run(open_source(corpus))
    reader = IndexReader(idx)
    data = rows(10)
    data[3]["text"] = "completely different words here"
    del data[7]
    write_jsonl(corpus, data + [{"id": "new", "text": "brand new document"}])
    s = make_job(idx, hash_encoder).run(open_source(corpus), sync=True)
    assert (s.added, s.updated, s.deleted, s.skipped) == (1, 1, 1, 8)
    assert 0 < s.passages_encoded < 5  # only the changed and new passages
    # the old reader still answers from its generation until it refreshes
    assert reader.passages.get(["d7#0"]) and reader.bm25.search("number7", 1)[0].passage_id.startswith("d7#")
    assert reader.refresh() is True
    assert not reader.passages.get(["d7#0"]) and reader.bm25.search("number7", 3) == []
    assert reader.bm25.search("brand", 1)[0].passage_id == "new#0"
    docs = {p.document_id for p in DocumentStore(f"sqlite:///{idx / 'rag.db'}").iter_passages()}
    assert "d7" not in docs and "new" in docs


def test_sync_only_deletes_within_the_same_source(tmp_path, hash_encoder):
    a = write_jsonl(tmp_path / "a.jsonl", rows(3, "a"))
    b = write_jsonl(tmp_path / "b.jsonl", rows(3, "b"))
    idx = tmp_path / "idx"
    make_job(idx, hash_encoder).run(open_source(a))
    make_job(idx, hash_encoder).run(open_source(b))
    write_jsonl(a, rows(2, "a"))
    s = make_job(idx, hash_encoder).run(open_source(a), sync=True)
    assert s.deleted == 1 and s.documents_total == 5


def test_bad_records_are_counted_and_strict_writes_nothing(tmp_path, hash_encoder):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "ok", "text": "fine"}\n{broken\n{"id": "e", "text": ""}\n')
    s = make_job(tmp_path / "lenient", hash_encoder).run(open_source(corpus))
    assert s.added == 1 and s.rejected == 2
    assert [r.line for r in s.rejections] == [2, 3]
    with pytest.raises(StrictModeError, match=r"c\.jsonl:2: malformed JSON"):
        make_job(tmp_path / "strict", hash_encoder).run(open_source(corpus), strict=True)
    assert gens.current_generation(tmp_path / "strict") is None
    assert DocumentStore(f"sqlite:///{tmp_path / 'strict' / 'rag.db'}").counts() == (0, 0)


def test_old_generations_are_collected(tmp_path, hash_encoder):
    corpus = write_jsonl(tmp_path / "c.jsonl", rows(3))
    idx = tmp_path / "idx"
    for i in range(4):
        write_jsonl(corpus, rows(3, text=f"version{i}"))
        make_job(idx, hash_encoder, keep_generations=2).run(open_source(corpus))
    names = sorted(p.name for p in (idx / gens.GENERATIONS).iterdir())
    assert len(names) == 2 and names[-1] == gens.current_generation(idx).name
    assert names[0].startswith("g000003") and names[1].startswith("g000004")


def test_stale_staging_is_removed_and_tampering_detected(tmp_path, hash_encoder):
    corpus = write_jsonl(tmp_path / "c.jsonl", rows(3))
    idx = tmp_path / "idx"
    (idx / gens.GENERATIONS / ".staging-g000009-x").mkdir(parents=True)
    make_job(idx, hash_encoder).run(open_source(corpus))
    assert [p.name for p in (idx / gens.GENERATIONS).iterdir() if p.name.startswith(".")] == []
    gen = gens.current_generation(idx)
    (gen / "passages.sqlite").write_bytes(b"corrupt")
    assert gens.verify(gen) == ["passages.sqlite"]


def test_one_job_at_a_time(tmp_path, hash_encoder):
    from rag.errors import InputError

    with gens.job_lock(tmp_path):
        with pytest.raises(InputError, match="another indexing job"):
            make_job(tmp_path, hash_encoder).run(None)


def test_new_model_reencodes_without_a_source(tmp_path, hash_encoder):
    from rag.encoders.hashing import HashEncoder

    make_job(tmp_path, hash_encoder).run(open_source(SAMPLE))
    before = gens.current_generation(tmp_path)
    other = HashEncoder(dim=32, max_length=64)
    s = make_job(tmp_path, other).run(None)
    assert s.published and s.passages_encoded == s.passages_total
    r = IndexReader(tmp_path)
    assert r.manifest.encoder.dim == 32 and r.dense.dim == 32
    # BM25 untouched: the new generation shares the old one's files
    for f in (before / "bm25").iterdir():
        assert (r.gen_dir / "bm25" / f.name).stat().st_ino == f.stat().st_ino
    assert gens.verify(r.gen_dir) == []


@pytest.mark.parametrize("backend", list(BM25Backend), ids=lambda b: b.value)
def test_every_bm25_backend_publishes(tmp_path, hash_encoder, backend):
    corpus = write_jsonl(tmp_path / "c.jsonl", rows(5))
    make_job(tmp_path / "idx", hash_encoder, backend=backend).run(open_source(corpus))
    r = IndexReader(tmp_path / "idx")
    assert r.manifest.bm25_backend == backend.value
    assert r.bm25.search("number3", 1)[0].passage_id.startswith("d3#")


@pytest.mark.postgres
def test_job_on_postgres_store(tmp_path, hash_encoder, postgres_url):
    store = DocumentStore(postgres_url)
    s = make_job(tmp_path, hash_encoder, store=store).run(open_source(SAMPLE))
    assert s.published and store.counts() == (113, s.passages_total)
    s2 = make_job(tmp_path, hash_encoder, store=store).run(open_source(SAMPLE))
    assert s2.skipped == 113 and not s2.published
