"""Each defect of the hardening issue as a test, over real HTTP (uvicorn on loopback) where the defect
was in the service: hostile input, crashes and damaged files must never break an index, lose a job
or answer 500."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from indexer.sources import open_source
from rag import generations as gens
from rag.bm25.lucene import LuceneBM25, build_lucene
from rag.encoders.hashing import HashEncoder
from rag.errors import IndexValidationError
from rag.generators.echo import EchoGenerator
from rag.reader import IndexReader
from rag.search import Searcher
from rag.settings import BM25Backend, Settings
from rag.store.sql import DocumentStore
from service import create_app
from tests.conftest import SAMPLE, make_job, running_server, write_jsonl

ENC = HashEncoder(dim=256)


def build(d: Path, backend: BM25Backend = BM25Backend.rank_bm25) -> None:
    job = make_job(d, ENC, backend=backend, chunk={"enabled": False})
    job.run(open_source(SAMPLE))
    job.store.close()


def make_app(d: Path, backend: BM25Backend = BM25Backend.rank_bm25, **settings):
    s = Settings(index_dir=d, auth=settings.pop("auth", {"enabled": False}), chunking={"enabled": False},
                 bm25={"backend": backend}, **settings)
    return create_app(s, searcher_factory=lambda: Searcher(IndexReader(d), ENC), generator_factory=EchoGenerator,
                      encoder_factory=lambda: ENC)


@contextmanager
def serve(d: Path, backend: BM25Backend = BM25Backend.rank_bm25, **settings):
    with running_server(make_app(d, backend, **settings)) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


def wait(c: httpx.Client, job_id: str, timeout: float = 60) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = c.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def consistent(d: Path) -> int:
    """SQL = passage table = BM25 = dense; returns the count."""
    store = DocumentStore(f"sqlite:///{d / 'rag.db'}")
    r = IndexReader(d)
    counts = (store.counts()[1], len(r.passages), len(r.bm25), len(r.dense))
    store.close()
    r.passages.close()
    assert len(set(counts)) == 1, counts
    assert set(r.bm25.ids) == set(r.passages.ids)
    return counts[0]


def post_raw(c: httpx.Client, path: str, raw: str) -> httpx.Response:
    return c.post(path, content=raw.encode("utf-8", "surrogatepass"), headers={"content-type": "application/json"})


# 1. ids with line breaks --------------------------------------------------------------------------


def test_line_breaks_in_ids_are_refused_with_422_and_the_index_is_untouched(tmp_path):
    d = tmp_path / "idx"
    build(d, BM25Backend.lucene)
    before = gens.current_generation(d).name
    with serve(d, BM25Backend.lucene) as c:
        for bad in ("!\nfirst", "a\rb", "tab\there", "nul\x00"):
            r = c.post("/v1/documents", json={"documents": [{"id": bad, "text": "x"}]})
            assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "documents.0.id", r.text
            assert "control character" in r.json()["error"]["message"]
        assert gens.current_generation(d).name == before


def test_any_other_character_in_an_id_round_trips_through_lucene(tmp_path):
    """U+2028 and U+0085 split lines for Python's splitlines(): the old one-id-per-line file broke on them."""
    d = tmp_path / "idx"
    build(d, BM25Backend.lucene)
    odd = ["line\u2028sep", "para\u2029sep", "slash/and#hash", "emoji-\U0001F600", "quote\"'\\"]
    with serve(d, BM25Backend.lucene) as c:
        r = c.post("/v1/documents", json={"documents": [{"id": i, "text": f"quokka marsupial {n}"} for n, i in enumerate(odd)]})
        assert r.status_code == 202
        assert wait(c, r.json()["job_id"])["status"] == "done"
        time.sleep(1.1)
        hits = c.post("/v1/search", json={"query": "quokka marsupial", "mode": "bm25", "top_k": 10}).json()["hits"]
        assert {h["document_id"] for h in hits} == set(odd)
        for n, i in enumerate(odd):  # dense rows still line up with passages: a text finds itself first
            top = c.post("/v1/search", json={"query": f"quokka marsupial {n}", "mode": "dense", "top_k": 1}).json()
            assert top["hits"][0]["document_id"] == i
    assert consistent(d) == 113 + len(odd)


def test_lucene_ids_file_holds_any_string(tmp_path):
    ids = ["a\nb", "c\u2028d", "e\u0085f", "plain"]
    build_lucene([(i, f"word{n} common") for n, i in enumerate(ids)], tmp_path / "bm25")
    bm25 = LuceneBM25(tmp_path / "bm25")
    assert sorted(bm25.ids) == sorted(ids) and len(bm25) == 4
    assert bm25.search("word0", 1)[0].passage_id == "a\nb"


def test_a_generation_that_fails_validation_is_never_published(tmp_path, monkeypatch):
    d = tmp_path / "idx"
    build(d)
    before = gens.current_generation(d).name
    import indexer.job as job_module

    real = job_module.build_bm25

    def lossy(backend, docs, out_dir, threads=1):  # a BM25 backend that drops a passage, as Lucene dropped NUL-only text
        return real(backend, list(docs)[1:], out_dir, threads)

    monkeypatch.setattr(job_module, "build_bm25", lossy)
    rows = write_jsonl(tmp_path / "more.jsonl", [{"id": "extra", "text": "wombat burrow"}])
    with pytest.raises(IndexValidationError, match="BM25 holds 113 passages, the store 114"):
        make_job(d, ENC, chunk={"enabled": False}).run(open_source(rows))
    assert gens.current_generation(d).name == before
    assert not [p for p in (d / "generations").iterdir() if p.name.startswith(".staging-")]
    monkeypatch.setattr(job_module, "build_bm25", real)
    summary = make_job(d, ENC, chunk={"enabled": False}).run(None)  # a re-run repairs: it is not "unchanged"
    assert summary.published and consistent(d) == 114


def test_a_damaged_current_generation_is_rebuilt_not_reported_unchanged(tmp_path):
    d = tmp_path / "idx"
    build(d)
    gen = gens.current_generation(d)
    (gen / "passages.sqlite").write_bytes(b"garbage")
    summary = make_job(d, ENC, chunk={"enabled": False}).run(open_source(SAMPLE))
    assert summary.published and summary.generation != gen.name
    assert consistent(d) == 113


# 2. NaN and Infinity in metadata ------------------------------------------------------------------


def test_non_finite_metadata_is_refused_naming_the_field(tmp_path):
    d = tmp_path / "idx"
    build(d)
    with serve(d) as c:
        for literal in ("NaN", "Infinity", "-Infinity"):
            r = post_raw(c, "/v1/documents", '{"documents": [{"id": "ok", "text": "fine"}, '
                                             '{"id": "bad", "text": "t", "metadata": {"v": [1, %s]}}]}' % literal)
            assert r.status_code == 422, r.text
            assert r.json()["error"]["fields"][0]["field"] == "documents.1.metadata"
            assert "finite" in r.json()["error"]["message"]
        r = post_raw(c, "/v1/search", '{"query": "water", "filters": {"x": NaN}}')
        assert r.status_code == 422
        r = c.post("/v1/search", json={"query": "water", "filters": {"category": "herbs"}})
        assert r.status_code == 200 and r.json()["hits"]


def test_non_finite_metadata_in_a_jsonl_source_is_a_rejected_record(tmp_path):
    src = tmp_path / "docs.jsonl"
    src.write_text('{"id": "a", "text": "ok", "metadata": {"v": NaN}}\n{"id": "b", "text": "fine"}\n')
    recs = list(open_source(src))
    assert "not a finite number" in recs[0].reason and recs[0].line == 1
    assert recs[1].id == "b"


# 3. the body limit holds for chunked uploads ------------------------------------------------------


def test_body_limit_applies_to_chunked_uploads(tmp_path):
    d = tmp_path / "idx"
    build(d)
    with serve(d) as c:
        big = json.dumps({"documents": [{"id": "big", "text": "word " * 1_000_000}]}).encode()

        def chunks():
            for i in range(0, len(big), 65536):
                yield big[i : i + 65536]

        r = c.post("/v1/documents", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["type"] == "too_large"
        small = json.dumps({"query": "tomato"}).encode()
        r = c.post("/v1/search", content=iter([small[:5], small[5:]]), headers={"content-type": "application/json"})
        assert r.status_code == 200 and r.json()["hits"]  # a small chunked body is read whole


# 4. durable jobs ----------------------------------------------------------------------------------


def _orphan(d: Path, job_id: str, status: str, payload: dict | None, owner: str = "elsewhere-gone:1:1") -> None:
    import socket

    store = DocumentStore(f"sqlite:///{d / 'rag.db'}")
    store.jobs.add(job_id, "upsert", 1, payload or {}, None, owner.replace("elsewhere-gone", socket.gethostname()), 99, 99)
    store.jobs.update(job_id, status=status, summary={"stage": "encode"}, payload=payload)
    store.close()


def test_jobs_left_by_a_killed_server_are_resumed_or_failed_at_start(tmp_path):
    d = tmp_path / "idx"
    build(d)
    doc = {"id": "resumed-doc", "title": "Axolotl", "text": "axolotl gills need cold water", "metadata": {}}
    _orphan(d, "a" * 32, "running", {"documents": [doc], "delete": []}, owner="elsewhere-gone:999999999:1")
    _orphan(d, "b" * 32, "queued", {"documents": [], "delete": ["garden-001"]}, owner="elsewhere-gone:999999998:1")
    _orphan(d, "c" * 32, "running", None, owner="elsewhere-gone:999999997:1")  # a job from before requests were stored
    _orphan(d, "d" * 32, "queued", {"documents": [doc], "delete": []}, owner="other-host:1:1")  # not ours to judge
    with serve(d) as c:
        a, b, lost = wait(c, "a" * 32), wait(c, "b" * 32), wait(c, "c" * 32)
        assert a["status"] == "done" and a["progress"]["added"] == 1
        assert b["status"] == "done" and b["progress"]["deleted"] == 1
        assert lost["status"] == "failed" and "submit it again" in lost["error"]
        assert c.get(f"/v1/jobs/{'d' * 32}").json()["status"] == "queued"
        time.sleep(1.1)
        hits = c.post("/v1/search", json={"query": "axolotl gills", "mode": "bm25"}).json()["hits"]
        assert hits[0]["document_id"] == "resumed-doc"
    assert consistent(d) == 113


def test_a_job_is_done_when_it_published_even_if_what_follows_fails(tmp_path, monkeypatch):
    d = tmp_path / "idx"
    build(d)

    def broken(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gens, "collect_garbage", broken)
    with serve(d) as c:
        c.post("/v1/search", json={"query": "x"})  # the searcher is loaded, so the job refreshes it
        monkeypatch.setattr(IndexReader, "refresh", lambda self: (_ for _ in ()).throw(RuntimeError("refresh failed")))
        r = c.post("/v1/documents", json={"documents": [{"id": "n1", "text": "newt pond"}]})
        job = wait(c, r.json()["job_id"])
        assert job["status"] == "done" and job["progress"]["published"] and job["progress"]["generation"]
        assert gens.current_generation(d).name == job["progress"]["generation"]


def test_disk_errors_fail_the_job_and_the_worker_lives_on(tmp_path, monkeypatch):
    d = tmp_path / "idx"
    build(d)
    real = HashEncoder.encode_passages
    calls = {"n": 0}

    def flaky(self, texts, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(28, "No space left on device")
        return real(self, texts, **kw)

    monkeypatch.setattr(HashEncoder, "encode_passages", flaky)
    with serve(d) as c:
        first = c.post("/v1/documents", json={"documents": [{"id": "f1", "text": "first frog"}]}).json()["job_id"]
        job = wait(c, first)
        assert job["status"] == "failed" and "No space left on device" in job["error"]
        second = c.post("/v1/documents", json={"documents": [{"id": "f2", "text": "second frog"}]}).json()["job_id"]
        assert wait(c, second)["status"] == "done"  # f1's passages were stored; this job encodes and publishes both
    assert consistent(d) == 115


# 5. a bounded queue and bounded documents ---------------------------------------------------------


def test_queue_is_bounded_per_key_and_in_total(tmp_path):
    from rag.auth import create_key
    from rag.types import Scope

    d = tmp_path / "idx"
    build(d)
    store = DocumentStore(f"sqlite:///{d / 'rag.db'}")
    tokens = [create_key(store, Scope.write)[1] for _ in range(3)]
    with serve(d, auth={"enabled": True, "rate_per_s": 1000, "burst": 1000},
               limits={"max_queued_jobs": 3, "max_queued_jobs_per_key": 2}) as c:
        def post(token, i):
            return c.post("/v1/documents", headers={"Authorization": f"Bearer {token}"},
                          json={"documents": [{"id": f"q{i}", "text": "queued"}]})

        with gens.job_lock(d):  # the worker cannot start: jobs stay queued
            assert post(tokens[0], 0).status_code == 202
            assert post(tokens[0], 1).status_code == 202
            r = post(tokens[0], 2)
            assert r.status_code == 429 and r.json()["error"]["type"] == "queue_full" and int(r.headers["Retry-After"]) > 0
            assert "per key" in r.json()["error"]["message"]
            assert post(tokens[1], 3).status_code == 202
            r = post(tokens[2], 4)
            assert r.status_code == 429 and "per key" not in r.json()["error"]["message"]
        time.sleep(0.1)


def test_document_size_is_bounded(tmp_path):
    d = tmp_path / "idx"
    build(d)
    with serve(d, limits={"max_document_chars": 1000}) as c:
        r = c.post("/v1/documents", json={"documents": [{"id": "ok", "text": "fine"}, {"id": "big", "text": "x" * 1001}]})
        assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "documents.1.text"


# 6. input that reached a 500 ----------------------------------------------------------------------


@pytest.mark.parametrize("raw, field", [
    ('{"query": "water", "filters": {"n": 9223372036854775808}}', "filters"),
    ('{"query": "water", "filters": {"n": -9223372036854775809}}', "filters"),
    ('{"query": "water", "filters": {"n": "\\udc80"}}', "filters"),
    ('{"query": "water", "filters": {"\\udc80": "x"}}', "filters"),
    ('{"query": "\\udc80 water"}', "query"),
    ('{"query": "water", "filters": {%s}}' % ", ".join(f'"k{i}": 1' for i in range(1001)), "filters"),
])
def test_hostile_search_input_is_a_422_and_the_connection_stays_open(tmp_path, raw, field):
    d = tmp_path / "idx"
    build(d)
    with serve(d) as c:
        r = post_raw(c, "/v1/search", raw)
        assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"].startswith(field), r.text
        assert r.headers.get("connection") != "close"
        assert c.post("/v1/search", json={"query": "water"}).status_code == 200


def test_hostile_documents_are_422_and_nothing_is_half_accepted(tmp_path):
    d = tmp_path / "idx"
    build(d)
    before = gens.current_generation(d).name
    with serve(d) as c:
        for raw in ('{"documents": [{"id": "good", "text": "fine"}, {"id": "bad", "text": "t", "metadata": {"k": "\\udc80"}}]}',
                    '{"documents": [{"id": "good", "text": "fine"}, {"id": "bad\\udc80", "text": "t"}]}',
                    '{"documents": [{"id": "good", "text": "\\u0000\\u0000\\u0000"}]}',
                    '{"documents": [{"id": "good", "text": "fine", "metadata": {"k": "\\u0000"}}]}'):
            r = post_raw(c, "/v1/documents", raw)
            assert r.status_code == 422, (raw, r.text)
        r = post_raw(c, "/v1/feedback", '{"query": "q", "passage_id": "\\udc80", "signal": "useful"}')
        assert r.status_code == 422
    assert gens.current_generation(d).name == before


def test_nul_only_text_in_a_source_is_rejected_not_indexed_empty(tmp_path):
    src = write_jsonl(tmp_path / "docs.jsonl", [{"id": "nul", "text": "\x00\x00\x00"}, {"id": "ok", "text": "fine\x00 text"}])
    d = tmp_path / "idx"
    summary = make_job(d, ENC, backend=BM25Backend.lucene).run(open_source(src))
    assert summary.rejected == 1 and "empty text" in summary.rejections[0].reason
    assert consistent(d) == 1
    assert IndexReader(d).passages.get(["ok#0"])["ok#0"].text == "fine text"


def test_ids_with_slashes_are_deletable(tmp_path):
    d = tmp_path / "idx"
    build(d)
    with serve(d) as c:
        r = c.post("/v1/documents", json={"documents": [{"id": "notes/2024/a b.md", "text": "ibis wading bird"}]})
        assert wait(c, r.json()["job_id"])["status"] == "done"
        r = c.delete("/v1/documents/notes/2024/a%20b.md")
        assert r.status_code == 202
        job = wait(c, r.json()["job_id"])
        assert job["status"] == "done" and job["progress"]["deleted"] == 1
    assert consistent(d) == 113


# 7. readiness tells the truth; reads need no writes -----------------------------------------------


@pytest.mark.parametrize("damage", ["manifest", "current", "passages", "faiss", "bm25"])
def test_damaged_index_files_give_503_with_the_reason(tmp_path, damage):
    d = tmp_path / "idx"
    build(d)
    gen = gens.current_generation(d)
    target = {"manifest": gen / "manifest.json", "current": d / "CURRENT", "passages": gen / "passages.sqlite",
              "faiss": gen / "dense" / "index.faiss", "bm25": gen / "bm25" / "rank_bm25.pkl"}[damage]
    target.write_bytes(b"\x00garbage")
    with serve(d) as c:
        r = c.post("/v1/search", json={"query": "tomato"})
        assert r.status_code == 503 and r.json()["error"]["type"] == "index_unavailable", r.text
        ready = c.get("/readyz")
        assert ready.status_code == 503 and "index" in ready.json()["reason"]


def test_damage_after_start_is_seen_by_readiness(tmp_path, monkeypatch):
    import service.routes.health as health

    monkeypatch.setattr(health, "VERIFY_EVERY_S", 0.0)
    d = tmp_path / "idx"
    build(d)
    with serve(d) as c:
        assert c.get("/readyz").status_code == 200
        with open(gens.current_generation(d) / "dense" / "index.faiss", "r+b") as fh:
            fh.seek(100)
            fh.write(b"\xff\xff\xff\xff")
        r = c.get("/readyz")
        assert r.status_code == 503 and "dense/index.faiss" in r.json()["reason"]


def test_a_corrupt_store_makes_readiness_503_and_authenticated_requests_503(tmp_path):
    d = tmp_path / "idx"
    build(d)
    (d / "rag.db").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (d / f"rag.db{suffix}").unlink(missing_ok=True)
    with serve(d, auth={"enabled": True}) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and "store" in r.json()["reason"]
        r = c.post("/v1/search", json={"query": "x"}, headers={"Authorization": "Bearer rag_abc_def"})
        assert r.status_code == 503 and r.json()["error"]["type"] == "store_unavailable"


def test_requests_never_migrate_the_store(tmp_path):
    d = tmp_path / "idx"
    build(d)
    app = make_app(d)
    import rag.store.sql as sql

    calls = []
    real = sql.DocumentStore.migrate
    sql.DocumentStore.migrate = lambda self: calls.append(1) or real(self)
    try:
        with running_server(app) as url, httpx.Client(base_url=url) as c:
            for _ in range(3):
                assert c.post("/v1/feedback", json={"query": "q", "passage_id": "garden-001#0", "signal": "click"}).status_code == 201
    finally:
        sql.DocumentStore.migrate = real
    assert calls == [1]  # once, at start-up


def test_serve_refuses_a_missing_index_directory(tmp_path):
    rag = [sys.executable, "-m", "service"]
    r = subprocess.run([*rag, "serve", "--index-dir", str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "nowhere").exists()


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mnt)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_full_disk_still_serves_authenticated_reads_and_fails_jobs_cleanly(small_disk):
    from rag.auth import create_key
    from rag.types import Scope

    d = small_disk / "idx"
    build(d)
    store = DocumentStore(f"sqlite:///{d / 'rag.db'}")
    token = create_key(store, Scope.write)[1]
    store.close()
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as fh:  # fill the disk to the last byte
        for size in (65536, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError:
                pass
    h = {"Authorization": f"Bearer {token}"}
    with serve(d, auth={"enabled": True}) as c:
        r = c.post("/v1/search", json={"query": "tomato", "mode": "bm25"}, headers=h)
        assert r.status_code == 200 and r.json()["hits"], r.text
        r = c.post("/v1/documents", headers=h, json={"documents": [{"id": f"d{i}", "text": "big " * 2000} for i in range(20)]})
        if r.status_code == 202:
            job = wait(c, r.json()["job_id"])
            assert job["status"] == "failed", job
        else:
            assert r.status_code == 503 and r.json()["error"]["type"] == "store_unavailable"
        assert c.post("/v1/search", json={"query": "tomato", "mode": "bm25"}, headers=h).status_code == 200
    filler.unlink()
    assert consistent(d) == 113


# 8. clean-up keeps what was published --------------------------------------------------------------


def test_cleanup_keeps_published_generations_when_current_is_deleted(tmp_path):
    d = tmp_path / "idx"
    build(d)
    g1 = gens.current_generation(d).name
    make_job(d, ENC, chunk={"enabled": False}).run(open_source(write_jsonl(tmp_path / "a.jsonl", [{"id": "a", "text": "ant"}])))
    g2 = gens.current_generation(d).name
    orphan = d / "generations" / "g000099-20260101T000000"  # sealed but never published (a crash before CURRENT moved)
    shutil.copytree(d / "generations" / g2, orphan)
    (d / "CURRENT").unlink()
    make_job(d, ENC, chunk={"enabled": False}).run(open_source(write_jsonl(tmp_path / "b.jsonl", [{"id": "b", "text": "bee"}])))
    g3 = gens.current_generation(d).name
    left = sorted(p.name for p in (d / "generations").iterdir())
    assert left == sorted([g2, g3]) and g1 not in left and orphan.name not in left
    assert gens.published(d)[-2:] == [g2, g3]


@pytest.mark.slow
def test_sigkill_of_the_server_during_ingestion_jobs_loses_and_doubles_nothing(tmp_path):
    """The crash benchmark with the hashing encoder: 5 rounds of submit, SIGKILL at a random moment,
    restart; then every job ended, every document of a done job searchable, nothing twice."""
    from eval.benchmarks.crash import run

    report = run(tmp_path / "idx", jobs=5, docs=30, seed=3, fake=True)
    assert report["jobs_not_ended"] == [] and sum(report["job_status"].values()) == 5 - report["submissions_cut_by_the_kill"]
    assert report["job_status"].get("done", 0) >= 1
    assert report["not_searchable"] == [] and report["passages_twice"] == []
    c = report["counts"]
    assert c["sql_passages"] == c["passage_table"] == c["passage_ids_unique"] == c["bm25"] == c["dense"]
    assert c["sql_documents"] == 113 + report["documents_of_done_jobs"]
