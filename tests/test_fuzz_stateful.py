"""A stateful fuzz test (hypothesis rule-based state machine) against one live service over real HTTP,
on a real on-disk index: ingestion, deletion, search and job polling interleaved, with hostile input
mixed in. After every step: no 5xx. After every poll: SQL = passage table = BM25 = dense, and every
document a finished job reported is searchable by its id (and every deleted one is gone).

RAG_FUZZ_STEPS sets the number of steps (default 2,000), RAG_FUZZ_BM25 the BM25 backend (default
rank_bm25; lucene runs Java for every job); the figures are printed at the end."""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from rag.reader import IndexReader
from rag.settings import BM25Backend
from rag.store.sql import DocumentStore
from rag.validation import unicode_problem
from tests.conftest import running_server, write_jsonl
from tests.test_hardening import ENC, make_app

STEPS = int(os.environ.get("RAG_FUZZ_STEPS", "2000"))
BM25 = BM25Backend(os.environ.get("RAG_FUZZ_BM25", "rank_bm25"))  # lucene: every job runs Java (slower)
STEPS_PER_RUN = 25

HOSTILE = ["", " ", "\x00", "\x00\x00", "a\nb", "a\rb", "tab\t", "\udc80", "\ud800x", "line\u2028sep", "\u0085",
           "slash/x", "pct%2Fx", "hash#1", "q?x=1", "..", "/", "x" * 513, "emoji\U0001F600", "\u202eevil"]
good_ids = st.one_of(st.sampled_from([f"doc-{i}" for i in range(12)] + ["line\u2028sep", "slash/x", "hash#1", "emoji\U0001F600"]),
                    st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=12))
ids = st.one_of(good_ids, good_ids, good_ids, st.sampled_from(HOSTILE))  # mostly valid, so jobs run
good_texts = st.one_of(st.sampled_from(["heron wading bird", "tomato blossom end rot", "snake plant water"]),
                       st.text(min_size=1, max_size=60).filter(lambda t: t.strip("\x00 ")))
texts = st.one_of(good_texts, good_texts, good_texts, st.sampled_from(HOSTILE))
good_values = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False),
                        st.text(st.characters(blacklist_categories=("Cs",)), max_size=8))
json_values = st.one_of(good_values, good_values, st.integers(-(2**70), 2**70), st.floats(), st.sampled_from(["\udc80", "\x00"]))
metadata = st.one_of(st.dictionaries(st.sampled_from(["category", "year", "tag"]), good_values, max_size=3),
                     st.dictionaries(st.one_of(st.text(max_size=6), st.sampled_from(["\udc80", "category"])), json_values, max_size=3))
filters = st.dictionaries(st.one_of(st.sampled_from(["category", "source", "document_id", "\udc80"]), st.text(max_size=6)),
                          json_values, max_size=4)


def send(c: httpx.Client, method: str, path: str, body=None) -> httpx.Response:
    # json.dumps escapes lone surrogates and writes NaN/Infinity literals: the bytes a hostile client sends
    content = json.dumps(body).encode() if body is not None else None
    return c.request(method, path, content=content, headers={"content-type": "application/json"})


class Stats:
    steps = requests = server_errors = jobs = polls = 0
    status: dict[int, int] = {}


class ServiceMachine(RuleBasedStateMachine):
    client: httpx.Client
    index_dir = None

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[tuple[str, str, list[str]]] = []  # (job id, kind, document ids)
        self.touched: set[str] = set()

    def _call(self, method: str, path: str, body=None) -> httpx.Response:
        r = send(self.client, method, path, body)
        Stats.requests += 1
        Stats.status[r.status_code] = Stats.status.get(r.status_code, 0) + 1
        if r.status_code >= 500:
            Stats.server_errors += 1
        assert r.status_code < 500, f"{method} {path} {body!r} -> {r.status_code} {r.text}"
        assert r.headers["content-type"].startswith("application/json")
        return r

    @initialize()
    def start(self) -> None:
        self.expected = self._stored_ids()

    def _stored_ids(self) -> set[str]:
        store = DocumentStore(f"sqlite:///{self.index_dir / 'rag.db'}")
        try:
            return set(store.document_hashes())
        finally:
            store.close()

    @rule(docs=st.lists(st.tuples(ids, texts, metadata), min_size=1, max_size=3))
    def upsert(self, docs) -> None:
        body = {"documents": [{"id": i, "title": "t", "text": t, "metadata": m} for i, t, m in docs]}
        r = self._call("POST", "/v1/documents", body)
        assert r.status_code in (202, 413, 422, 429), r.text
        if r.status_code == 202:
            self.pending.append((r.json()["job_id"], "upsert", [i for i, _, _ in docs]))

    @rule(doc_id=st.one_of(ids, st.sampled_from(["garden-001", "garden-002"])).filter(lambda i: i not in (".", "..")))
    def delete(self, doc_id) -> None:
        from urllib.parse import quote

        path = "/v1/documents/" + quote(doc_id.encode("utf-8", "surrogatepass"), safe="")
        r = self._call("DELETE", path)
        assert r.status_code in (202, 404, 405, 422, 429), r.text
        if r.status_code == 202:
            # an id that is not valid UTF-8 reaches the server decoded otherwise (U+FFFD): a delete of nothing
            self.pending.append((r.json()["job_id"], "delete", [doc_id] if unicode_problem(doc_id) is None else []))

    @rule(query=texts, mode=st.sampled_from(["bm25", "dense", "hybrid", "magic"]), f=st.one_of(st.none(), filters),
          top_k=st.one_of(st.none(), st.integers(-1, 120)))
    def search(self, query, mode, f, top_k) -> None:
        body = {"query": query, "mode": mode} | ({"filters": f} if f is not None else {}) | ({"top_k": top_k} if top_k is not None else {})
        r = self._call("POST", "/v1/search", body)
        assert r.status_code in (200, 400, 422), r.text

    @rule()
    def poll(self) -> None:
        """Wait for every submitted job, then check the whole index against the model."""
        Stats.polls += 1
        for job_id, kind, doc_ids in self.pending:
            end = time.monotonic() + 120
            while True:
                job = self._call("GET", f"/v1/jobs/{job_id}").json()
                if job["status"] in ("done", "failed") or time.monotonic() > end:
                    break
                time.sleep(0.02)
            assert job["status"] == "done", job
            Stats.jobs += 1
            if kind == "upsert":
                self.expected |= set(doc_ids)
            else:
                self.expected -= set(doc_ids)
            self.touched |= set(doc_ids)
        self.pending.clear()
        assert self._stored_ids() == self.expected
        reader = IndexReader(self.index_dir)
        try:
            counts = (len(reader.passages), len(reader.bm25), len(reader.dense))
            store = DocumentStore(f"sqlite:///{self.index_dir / 'rag.db'}")
            sql = store.counts()[1]
            store.close()
            assert len(set(counts)) == 1 and counts[0] == sql, (sql, counts)
            assert set(reader.bm25.ids) == set(reader.passages.ids)
        finally:
            reader.view.close()
        for doc_id in self.touched:
            r = self._call("POST", "/v1/search", {"query": "x", "mode": "dense", "filters": {"document_id": doc_id}})
            assert r.status_code == 200, (doc_id, r.text)
            hits = r.json()["hits"]
            assert bool(hits) == (doc_id in self.expected), (doc_id, hits)
            assert all(h["document_id"] == doc_id for h in hits)
        self.touched.clear()

    @invariant()
    def count_step(self) -> None:
        Stats.steps += 1

    def teardown(self) -> None:
        if self.pending:
            self.poll()


@pytest.mark.slow
def test_stateful_fuzz_against_a_live_service(tmp_path, capsys):
    from indexer.sources import open_source
    from tests.conftest import SAMPLE, make_job

    d = tmp_path / "idx"
    rows = [json.loads(line) for line in (SAMPLE / "corpus.jsonl").read_text().splitlines()[:20]]
    corpus = write_jsonl(tmp_path / "base.jsonl", [{"id": r["_id"], **{k: r[k] for k in ("title", "text", "metadata") if k in r}} for r in rows])
    job = make_job(d, ENC, backend=BM25, chunk={"enabled": False})
    job.run(open_source(corpus))
    job.store.close()
    app = make_app(d, BM25, limits={"max_queued_jobs": 64, "max_queued_jobs_per_key": 64})
    started = time.monotonic()
    with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        ServiceMachine.client, ServiceMachine.index_dir = client, d
        while Stats.steps < STEPS:
            run_state_machine_as_test(ServiceMachine, settings=settings(
                max_examples=max(1, (STEPS - Stats.steps) // STEPS_PER_RUN), stateful_step_count=STEPS_PER_RUN,
                deadline=None, database=None, suppress_health_check=list(HealthCheck),
                phases=[Phase.generate]))  # no shrinking: a failure prints its steps, and CI time stays bounded
    with capsys.disabled():
        print(f"\nstateful fuzz ({BM25.value}): {Stats.steps} steps, {Stats.requests} requests, {Stats.jobs} jobs, {Stats.polls} full checks, "
              f"{Stats.server_errors} 5xx, statuses {dict(sorted(Stats.status.items()))}, {time.monotonic() - started:.0f} s")
    assert Stats.server_errors == 0 and Stats.steps >= STEPS
