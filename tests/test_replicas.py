"""API replicas: one rate limit and one key cache through a real Redis, one run per job through a
shared store (each app below is a replica: its own process state, the same Redis and database)."""

import time

import pytest
import redis
from fastapi.testclient import TestClient

from indexer.sources import open_source
from rag.auth import RateLimiter, Scope, create_key, revoke, verify
from rag.encoders.hashing import HashEncoder
from rag.generators.echo import EchoGenerator
from rag.reader import IndexReader
from rag.search import Searcher
from rag.settings import Settings
from rag.shared import MISSING, RedisKeyCache, RedisRateLimiter, connect
from rag.store.sql import DocumentStore
from service import create_app
from tests.conftest import SAMPLE, free_port, make_job


def test_replicas_share_one_bucket_per_key(redis_url):
    client = connect(redis_url)
    a, b = (RedisRateLimiter(client, rate=2.0, burst=10, fallback=RateLimiter(2.0, 10)) for _ in range(2))
    allowed = sum(limiter.allow("k1")[0] for _ in range(30) for limiter in (a, b))
    assert 10 <= allowed <= 11  # the burst once in total (plus what refills meanwhile), not once per replica
    ok, wait = a.allow("k1")
    assert not ok and 0 < wait <= 0.5
    assert b.allow("k2")[0]  # other keys have their own bucket
    local = [RateLimiter(2.0, 10) for _ in range(2)]
    assert sum(limiter.allow("k1")[0] for _ in range(30) for limiter in local) == 20  # what per-process limits allow


def test_an_unreachable_redis_falls_back_to_a_per_process_limit():
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    limiter = RedisRateLimiter(client, rate=0.01, burst=2, fallback=RateLimiter(0.01, 2))
    t0 = time.perf_counter()
    assert [limiter.allow("k")[0] for _ in range(50)] == [True, True] + [False] * 48
    assert time.perf_counter() - t0 < 5  # Redis is tried once, not on every request


def test_connect_names_what_is_wrong():
    with pytest.raises(Exception, match="cannot be reached"):
        connect(f"redis://127.0.0.1:{free_port()}/0")


def test_verified_keys_are_shared_and_forgotten_when_revoked(redis_url, tmp_path):
    store = DocumentStore(f"sqlite:///{tmp_path / 'rag.db'}")
    key, token = create_key(store, Scope.read)
    a, b = RedisKeyCache(connect(redis_url)), RedisKeyCache(connect(redis_url))
    lookups = []

    def lookup():
        lookups.append(1)
        return verify(store, token)

    assert a.get(token, lookup) == key and b.get(token, lookup) == key
    assert len(lookups) == 1  # the second replica found the first one's verification
    assert b.get("rag_nope_nope", lambda: None) is None and a.peek("rag_nope_nope") is None  # unknown: cached as None
    revoke(store, key.id)
    assert a.forget(key.id) == 1 and b.peek(token) is MISSING


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    d = tmp_path_factory.mktemp("idx")
    enc = HashEncoder(dim=64)
    make_job(d, enc).run(open_source(SAMPLE))
    return d, enc


def replica(index_dir, enc, **settings):
    s = Settings(index_dir=index_dir, warmup_queries=0, **settings)
    return create_app(s, searcher_factory=lambda: Searcher(IndexReader(index_dir), enc), generator_factory=EchoGenerator,
                      encoder_factory=lambda: enc)


def test_two_replicas_enforce_one_rate_limit_over_http(index, redis_url):
    d, enc = index
    token = create_key(DocumentStore(f"sqlite:///{d / 'rag.db'}"), Scope.read)[1]
    auth = {"enabled": True, "rate_per_s": 1.0, "burst": 4}
    with TestClient(replica(d, enc, auth=auth, redis_url=redis_url)) as a, \
            TestClient(replica(d, enc, auth=auth, redis_url=redis_url)) as b:
        codes = [c.post("/v1/search", json={"query": "compost", "mode": "bm25"}, headers={"X-API-Key": token}).status_code
                 for _ in range(6) for c in (a, b)]
    assert codes.count(200) in (4, 5) and codes.count(429) == len(codes) - codes.count(200)


def test_a_job_retried_through_another_replica_runs_once(index, redis_url):
    d, enc = index
    doc = {"documents": [{"id": "replicated-1", "title": "Mulch", "text": "Mulch keeps soil moist in summer."}]}
    headers = {"Idempotency-Key": "upload-42"}
    with TestClient(replica(d, enc, auth={"enabled": False}, redis_url=redis_url)) as a, \
            TestClient(replica(d, enc, auth={"enabled": False}, redis_url=redis_url)) as b:
        first = a.post("/v1/documents", json=doc, headers=headers)
        second = b.post("/v1/documents", json=doc, headers=headers)
        assert first.status_code == second.status_code == 202
        assert first.json()["job_id"] == second.json()["job_id"]
        for _ in range(200):
            status = a.get(f"/v1/jobs/{first.json()['job_id']}").json()
            if status["status"] in ("done", "failed"):
                break
            time.sleep(0.05)
        assert status["status"] == "done"
        other = b.post("/v1/documents", json=doc, headers={"Idempotency-Key": "upload-43"}).json()["job_id"]
        assert other != first.json()["job_id"]  # another key is another job
        assert b.post("/v1/documents", json=doc, headers={"Idempotency-Key": "x" * 129}).status_code == 422
    store = DocumentStore(f"sqlite:///{d / 'rag.db'}")
    with store.engine.connect() as c:
        runs = c.exec_driver_sql("SELECT count(*) FROM jobs WHERE request_key = '-:upload-42'").scalar()
    assert runs == 1


def test_keys_revoke_forgets_the_key_in_redis_and_survives_redis_down(redis_url, tmp_path):
    import os
    import subprocess
    import sys

    store = DocumentStore(f"sqlite:///{tmp_path / 'rag.db'}")
    key, token = create_key(store, Scope.read)
    cache = RedisKeyCache(connect(redis_url))
    cache.get(token, lambda: verify(store, token))
    cmd = [sys.executable, "-m", "service", "keys", "revoke", key.id, "--index-dir", str(tmp_path)]
    r = subprocess.run(cmd, env={**os.environ, "RAG_REDIS_URL": redis_url}, capture_output=True, text=True)
    assert r.returncode == 0 and cache.peek(token) is MISSING and verify(store, token) is None
    other, _ = create_key(store, Scope.read)
    down = f"redis://127.0.0.1:{free_port()}/0"
    r = subprocess.run([*cmd[:-3], other.id, *cmd[-2:]], env={**os.environ, "RAG_REDIS_URL": down}, capture_output=True, text=True)
    assert r.returncode == 0 and "revoked in the database" in r.stderr and "Traceback" not in r.stderr
