import os
import subprocess
import sys
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from indexer.sources import open_source
from rag.encoders.hashing import HashEncoder
from rag.generators.echo import EchoGenerator
from rag.reader import IndexReader
from rag.search import Searcher
from rag.settings import Settings
from rag.store.sql import DocumentStore
from service import create_app
from tests.conftest import SAMPLE, free_port, make_job


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    d = tmp_path_factory.mktemp("idx")
    enc = HashEncoder(dim=256)
    make_job(d, enc).run(open_source(SAMPLE))
    app = create_app(Settings(index_dir=d, auth={"enabled": False}), searcher_factory=lambda: Searcher(IndexReader(d), enc),
                     generator_factory=EchoGenerator)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_search_returns_ranked_hits(client):
    r = client.post("/v1/search", json={"query": "Zamioculcas rhizomes watering", "top_k": 3, "mode": "bm25"})
    assert r.status_code == 200
    body = r.json()
    assert [h["rank"] for h in body["hits"]] == [1, 2, 3] and body["hits"][0]["document_id"] == "garden-005"
    assert body["truncation"]["kept"] == 3 and {"bm25", "fuse", "total"} <= set(body["timings_ms"])


def test_filters_over_http(client):
    r = client.post("/v1/search", json={"query": "water", "filters": {"category": "herbs"}})
    assert r.status_code == 200 and {h["metadata"]["category"] for h in r.json()["hits"]} == {"herbs"}


@pytest.mark.parametrize("body, field", [
    ({"query": ""}, "query"), ({"query": "x", "top_k": 0}, "top_k"), ({"query": "x", "mode": "magic"}, "mode"),
    ({"query": "x" * 3000}, "query"), ({"q": "x"}, "query"), ({"query": "x", "filters": {"a": [1]}}, "filters"),
])
def test_validation_errors_name_the_field(client, body, field):
    r = client.post("/v1/search", json=body)
    assert r.status_code == 422 and r.json()["error"]["type"] == "validation"
    assert field in r.json()["error"]["message"]


def test_malformed_json_and_blank_query(client):
    r = client.post("/v1/search", content=b"{not json", headers={"content-type": "application/json"})
    err = r.json()["error"]
    assert r.status_code == 422 and err["fields"][0]["field"] == "body" and err["message"].startswith("body: not valid JSON (")
    r = client.post("/v1/search", json={"query": "   "})
    assert r.status_code == 400 and r.json()["error"]["message"] == "query is empty"


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["passages"] > 0


def test_readiness_waits_for_the_warm_up_which_exercises_search_and_the_generator(tmp_path):
    d = tmp_path / "idx"
    enc = HashEncoder(dim=64)
    make_job(d, enc).run(open_source(SAMPLE))
    release, searched = threading.Event(), []

    class Recording(Searcher):
        def search(self, query, mode=None, k=None, filters=None):
            searched.append(mode)
            return super().search(query, mode, k, filters)

    prompts = []

    class SlowToLoad(EchoGenerator):
        def stream(self, messages, params):
            release.wait(10)
            prompts.append(messages)
            return super().stream(messages, params)

    app = create_app(Settings(index_dir=d, auth={"enabled": False}, warmup_queries=9),
                     searcher_factory=lambda: Recording(IndexReader(d), enc), generator_factory=SlowToLoad)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "warming up"
        release.set()
        assert app.state.warmup.done.wait(10)
        assert c.get("/readyz").status_code == 200
    # then the answer path once (its prompt's start then sits in the generator's prefix cache)
    assert len(searched) == 9 + 1 and set(searched[:9]) == {"hybrid", "bm25", "dense"} and searched[9:] == [None]
    assert app.state.warmup.report["generator"] is True and len(prompts) == 1


def test_start_up_builds_what_the_first_request_would_and_counts_no_request(tmp_path):
    """service.warmup.touch_routes: the middleware stack, the routers' tables and every endpoint's
    source location are built before the first request, which metrics do not see."""
    import fastapi.routing

    from service.app import create_app

    app = create_app(Settings(index_dir=tmp_path / "none", auth={"enabled": False}, warmup_queries=0))
    from service.routes import answer, search

    endpoints = [search.search, answer.answer, *(r.endpoint for r in app.router.routes if isinstance(r, fastapi.routing.APIRoute))]
    cache = fastapi.routing._endpoint_context_cache
    for e in endpoints:
        cache.pop(id(e), None)
    assert app.middleware_stack is None
    with TestClient(app):
        assert app.middleware_stack is not None
        assert all(id(e) in cache for e in endpoints) and endpoints
        assert not [m for m in app.state.metrics.requests.collect()[0].samples if m.name.endswith("_total")]


def test_no_index_gives_503_not_a_traceback(tmp_path):
    with TestClient(create_app(Settings(index_dir=tmp_path / "none", auth={"enabled": False})), raise_server_exceptions=False) as c:
        r = c.post("/v1/search", json={"query": "x"})
        assert r.status_code == 503 and "rag index" in r.json()["error"]["message"]
        assert c.get("/readyz").status_code == 503


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_rag_serve_over_real_http(tmp_path, store, request):
    """Integration: `rag keys`, `rag index` and `rag serve` (uvicorn) with the real encoder, Lucene and the
    store on SQLite or PostgreSQL, over loopback HTTP: search, feedback, ingestion, deletion, auth."""
    env = {**os.environ, "RAG_INDEX_DIR": str(tmp_path)}
    if store == "postgres":
        env["RAG_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    run = lambda *a: subprocess.run([sys.executable, "-m", "service", *a], check=True, env=env, capture_output=True, text=True)  # noqa: E731
    run("index", str(SAMPLE), "--no-progress")
    token = run("keys", "create", "--scope", "write").stdout.strip()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "service", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    h = {"Authorization": f"Bearer {token}"}
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                httpx.get(f"{base}/healthz", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert httpx.post(f"{base}/v1/search", json={"query": "x"}, timeout=30).status_code == 401
        r = httpx.post(f"{base}/v1/search", json={"query": "why do my tomatoes get black bottoms", "top_k": 3}, headers=h, timeout=60)
        assert r.status_code == 200
        body = r.json()
        assert body["mode"] == "hybrid" and "Tomato blossom end rot" in [x["title"] for x in body["hits"]]
        assert {"encode", "bm25", "dense", "fuse", "truncate"} <= set(body["timings_ms"])
        r = httpx.post(f"{base}/v1/feedback", json={"query": "q", "passage_id": body["hits"][0]["passage_id"], "signal": "useful"},
                       headers=h, timeout=30)
        assert r.status_code == 201
        doc = {"id": "axolotl", "title": "Axolotl tanks", "text": "Axolotls need cool water below 20 degrees Celsius."}
        job = httpx.post(f"{base}/v1/documents", json={"documents": [doc]}, headers=h, timeout=30).json()
        for _ in range(240):
            status = httpx.get(job["status_url"], headers=h, timeout=30).json()
            if status["status"] in ("done", "failed"):
                break
            time.sleep(0.5)
        assert status["status"] == "done", status
        time.sleep(1.2)
        r = httpx.post(f"{base}/v1/search", json={"query": "axolotl water temperature", "top_k": 1}, headers=h, timeout=60)
        assert r.json()["hits"][0]["document_id"] == "axolotl"
        assert httpx.get(f"{base}/docs", timeout=10).status_code == 200
        assert "/v1/search" in httpx.get(f"{base}/openapi.json", timeout=10).json()["paths"]
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        assert 'route="/v1/search",status="200"' in metrics
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_answer_json_and_sse(client):
    r = client.post("/v1/answer", json={"question": "Zamioculcas rhizomes watering", "top_k": 2})
    assert r.status_code == 200
    body = r.json()
    # the default generator is the embedded small model: it copies words of the best evidence sentence,
    # and the answer is those words as they stand in the passage, cited to it
    e = body["answer_evidence"]
    hits = {h["passage_id"]: h["text"] for h in body["search"]["hits"]}
    assert len(hits) == 2 and [p["passage_id"] for p in body["passages"]] == list(hits)
    assert hits[e["passage_id"]][e["span_start"]:e["span_end"]] == body["answer"] == body["generated"]
    assert [c["passage_id"] for c in body["citations"]] == [e["passage_id"]]
    assert body["usage"]["tokens_out"] > 0 and "generate" in body["timings_ms"]
    with client.stream("POST", "/v1/answer", json={"question": "compost heap", "stream": True}) as s:
        assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")
        events = [line.split(": ", 1)[1] for line in s.iter_lines() if line.startswith("event: ")]
    assert events[0] == "search" and events[-1] == "final" and events.count("token") >= 2


def test_answer_validation(client):
    assert client.post("/v1/answer", json={"question": ""}).status_code == 422
    assert client.post("/v1/answer", json={"question": "x", "max_tokens": 0}).status_code == 422
    r = client.post("/v1/answer", json={"question": "  ", "stream": True})
    assert r.status_code == 400


@pytest.mark.parametrize("exc, status", [("unavailable", 503), ("timeout", 504)])
def test_generator_down_or_slow_but_search_still_works(tmp_path_factory, exc, status):
    from rag.generators.errors import GeneratorTimeout, GeneratorUnavailable
    from tests.test_answer import Failing

    d = tmp_path_factory.mktemp("idx")
    enc = HashEncoder(dim=256)
    make_job(d, enc).run(open_source(SAMPLE))
    err = GeneratorUnavailable("server down") if exc == "unavailable" else GeneratorTimeout("too slow")
    app = create_app(Settings(index_dir=d, auth={"enabled": False}), searcher_factory=lambda: Searcher(IndexReader(d), enc),
                     generator_factory=lambda: Failing(err))
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/v1/answer", json={"question": "compost"})
        assert r.status_code == status and r.json()["error"]["kind"] == exc and r.json()["search"]["hits"]
        assert c.post("/v1/search", json={"query": "compost"}).status_code == 200
        r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == status and r.json()["error"]["type"] == f"generator_{exc}"


def test_openai_compatible_chat_completions(client):
    msgs = [{"role": "user", "content": "Passages:\n[1] T\nFirst sentence here. Second.\n\nq"}]
    r = client.post("/v1/chat/completions", json={"messages": msgs})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "First sentence here. [1]"
    with client.stream("POST", "/v1/chat/completions", json={"messages": msgs, "stream": True,
                                                             "stream_options": {"include_usage": True}}) as s:
        lines = [x for x in s.iter_lines() if x.startswith("data: ")]
    assert lines[-1] == "data: [DONE]" and '"usage"' in lines[-2]


def test_feedback_is_stored(client, tmp_path):
    r = client.post("/v1/feedback", json={"query": "zz plant water", "passage_id": "garden-005#0", "signal": "useful"})
    assert r.status_code == 201 and r.json()["id"] >= 1
    assert client.post("/v1/feedback", json={"query": "q", "passage_id": "nope#0", "signal": "click"}).status_code == 400
    assert client.post("/v1/feedback", json={"query": "q", "passage_id": "garden-005#0", "signal": "love"}).status_code == 422
    store = client.app.state.store.get()
    assert ("zz plant water", "garden-005#0") in [(q, p) for q, p, _, _ in store.positive_feedback()]


def test_prometheus_metrics(client):
    client.post("/v1/search", json={"query": "compost"})
    client.post("/v1/answer", json={"question": "compost heap"})
    text = client.get("/metrics").text
    assert 'rag_http_requests_total{method="POST",route="/v1/search",status="200"}' in text
    assert 'rag_stage_seconds_bucket{le="0.005",stage="search.bm25"}' in text
    assert 'stage="generate"' in text and "rag_generation_tokens_total" in text
    passages = [line for line in text.splitlines() if line.startswith("rag_index_passages ")]
    assert passages and float(passages[0].split()[1]) > 113


def test_documents_upsert_delete_and_jobs(tmp_path):
    d = tmp_path / "idx"
    enc = HashEncoder(dim=256)
    make_job(d, enc, chunk={"enabled": False}).run(open_source(SAMPLE))
    app = create_app(Settings(index_dir=d, auth={"enabled": False}, chunking={"enabled": False}),
                     searcher_factory=lambda: Searcher(IndexReader(d), enc), generator_factory=EchoGenerator,
                     encoder_factory=lambda: enc)
    with TestClient(app, raise_server_exceptions=False) as c:
        def wait(job_url):
            for _ in range(200):
                job = c.get(job_url).json()
                if job["status"] in ("done", "failed"):
                    return job
                time.sleep(0.05)
            raise AssertionError("job did not finish")

        before = c.get("/readyz").json()["generation"]
        docs = [{"id": f"new-{i}", "title": f"Zebrafish {i}", "text": f"zebrafish aquarium heater number{i}"} for i in range(3)]
        r = c.post("/v1/documents", json={"documents": docs})
        assert r.status_code == 202
        job = wait(r.json()["status_url"])
        assert job["status"] == "done" and job["progress"]["added"] == 3 and job["submitted"] == 3
        time.sleep(1.1)  # the searcher looks for new generations once a second
        hits = c.post("/v1/search", json={"query": "zebrafish aquarium", "mode": "bm25"}).json()
        assert hits["generation"] != before and {h["document_id"] for h in hits["hits"]} >= {"new-0", "new-1", "new-2"}
        job = wait(c.delete("/v1/documents/new-1").json()["status_url"])
        assert job["status"] == "done" and job["progress"]["deleted"] == 1
        time.sleep(1.1)
        hits = c.post("/v1/search", json={"query": "zebrafish aquarium", "mode": "bm25"}).json()
        assert "new-1" not in {h["document_id"] for h in hits["hits"]}
        assert c.get("/v1/jobs/unknown").status_code == 404
        r = c.post("/v1/documents", json={"documents": [{"id": "x", "text": "a"}, {"id": "x", "text": "b"}]})
        assert r.status_code == 422 and "unique" in r.json()["error"]["message"]
        assert c.post("/v1/documents", json={"documents": [{"id": "x", "text": "   "}]}).status_code == 422
        assert c.post("/v1/documents", json={"documents": []}).status_code == 422
        store = DocumentStore(f"sqlite:///{d / 'rag.db'}")
        r = IndexReader(d)
        assert store.counts()[1] == len(r.passages) == len(r.bm25) == len(r.dense) == 113 + 2


def test_a_lone_search_runs_on_the_event_loop_and_concurrent_ones_on_the_search_threads(tmp_path):
    """search_inline (off by default): a search with no other request in progress runs where the request
    is handled (no thread hop); requests that arrive together go to the search threads (as uvicorn hands
    them over: the body already read, so nothing yields before the route decides); a reranker turns
    inlining off."""
    import asyncio
    import json

    d = tmp_path / "idx"
    enc = HashEncoder(dim=256)
    make_job(d, enc).run(open_source(SAMPLE))

    class Where(Searcher):
        threads: list[str] = []

        def search(self, *args, **kwargs):
            self.threads.append(threading.current_thread().name)
            return super().search(*args, **kwargs)

    async def call(app, i):
        body = json.dumps({"query": f"water {i}", "mode": "bm25"}).encode()
        sent = []

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
                 "path": "/v1/search", "raw_path": b"/v1/search", "query_string": b"", "root_path": "",
                 "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                 "client": ("127.0.0.1", 1), "server": ("t", 80)}
        await app(scope, receive, send)
        return sent[0]["status"]

    async def run(settings, together):
        Where.threads = []
        app = create_app(settings, searcher_factory=lambda: Where(IndexReader(d), enc), generator_factory=EchoGenerator)
        await call(app, -1)  # the searcher loads on first use
        Where.threads = []
        if together:
            statuses = await asyncio.gather(*(call(app, i) for i in range(4)))
        else:
            statuses = [await call(app, i) for i in range(4)]
        assert statuses == [200] * 4
        return Where.threads

    base = {"index_dir": d, "auth": {"enabled": False}, "warmup_queries": 0, "search_inline": True}
    loop_thread = threading.current_thread().name  # the app runs on this test's event loop
    assert asyncio.run(run(Settings(**base), together=False)) == [loop_thread] * 4
    assert all(t.startswith("search") for t in asyncio.run(run(Settings(**base), together=True)))
    assert all(t.startswith("search") for t in asyncio.run(run(Settings(**base, rerank={"model": str(tmp_path)}), together=False)))
    assert all(t.startswith("search") for t in asyncio.run(run(Settings(**{**base, "search_inline": False}), together=False)))
