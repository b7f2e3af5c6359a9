import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from indexer.sources import open_source
from rag.auth import RateLimiter, Scope, create_key, revoke, verify
from rag.encoders.hashing import HashEncoder
from rag.generators.echo import EchoGenerator
from rag.reader import IndexReader
from rag.search import Searcher
from rag.settings import Settings
from rag.store.sql import DocumentStore
from service import create_app
from tests.conftest import SAMPLE, make_job


def test_keys_are_stored_hashed_and_checked(store):
    key, token = create_key(store, Scope.write, "ci")
    assert token.startswith(f"rag_{key.id}_") and verify(store, token) == key
    with store.engine.connect() as c:
        stored = c.exec_driver_sql("SELECT key_hash FROM api_keys").scalar()
    assert token.split("_", 2)[2] not in stored and len(stored) == 64
    assert verify(store, token[:-1] + ("x" if token[-1] != "x" else "y")) is None
    assert verify(store, "garbage") is None
    revoke(store, key.id)
    assert verify(store, token) is None


def test_scopes_are_ordered():
    assert Scope.admin.allows(Scope.write) and Scope.write.allows(Scope.read) and not Scope.read.allows(Scope.write)


def test_rate_limiter_bucket():
    rl = RateLimiter(rate=1.0, burst=3)
    assert [rl.allow("k")[0] for _ in range(4)] == [True, True, True, False]
    assert rl.allow("other")[0]
    ok, wait = rl.allow("k")
    assert not ok and 0 < wait <= 1.0


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    d = tmp_path_factory.mktemp("idx")
    enc = HashEncoder(dim=256)
    make_job(d, enc).run(open_source(SAMPLE))
    store = DocumentStore(f"sqlite:///{d / 'rag.db'}")
    tokens = {s: create_key(store, s)[1] for s in Scope}
    settings = Settings(index_dir=d, auth={"enabled": True, "rate_per_s": 1.0, "burst": 5}, limits={"max_body_bytes": 2048})
    app = create_app(settings, searcher_factory=lambda: Searcher(IndexReader(d), enc), generator_factory=EchoGenerator)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c, tokens


def test_missing_and_wrong_keys_are_401(secured):
    c, _ = secured
    r = c.post("/v1/search", json={"query": "compost"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized" and "WWW-Authenticate" in r.headers
    r = c.post("/v1/search", json={"query": "compost"}, headers={"Authorization": "Bearer rag_abc_def"})
    assert r.status_code == 401 and "invalid" in r.json()["error"]["message"]
    assert c.get("/healthz").status_code == 200  # health stays open


def test_scopes_over_http(secured):
    c, tokens = secured
    read = {"X-API-Key": tokens[Scope.read]}
    assert c.post("/v1/search", json={"query": "compost"}, headers=read).status_code == 200
    fb = {"query": "q", "passage_id": "garden-001#0", "signal": "click"}
    r = c.post("/v1/feedback", json=fb, headers=read)
    assert r.status_code == 403 and "'write' is needed" in r.json()["error"]["message"]
    assert c.post("/v1/feedback", json=fb, headers={"Authorization": f"Bearer {tokens[Scope.write]}"}).status_code == 201


def test_rate_limit_is_per_key_with_retry_after(secured):
    c, tokens = secured
    h = {"X-API-Key": tokens[Scope.admin]}
    codes = [c.post("/v1/search", json={"query": "soil"}, headers=h).status_code for _ in range(8)]
    assert codes[:5] == [200] * 5 and 429 in codes[5:]
    r = c.post("/v1/search", json={"query": "soil"}, headers=h)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1


def test_body_size_limit(secured):
    c, tokens = secured
    r = c.post("/v1/search", content=b'{"query": "' + b"x" * 5000 + b'"}',
               headers={"X-API-Key": tokens[Scope.read], "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["type"] == "too_large"


def test_keys_cli(tmp_path):
    rag = [sys.executable, "-m", "service", "keys"]
    r = subprocess.run([*rag, "create", "--scope", "read", "--name", "ci", "--index-dir", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("rag_") and "cannot be shown again" in r.stderr
    key_id = r.stdout.split("_")[1]
    listed = subprocess.run([*rag, "list", "--index-dir", str(tmp_path)], capture_output=True, text=True).stdout
    assert key_id in listed and "read" in listed and r.stdout.strip() not in listed
    assert subprocess.run([*rag, "revoke", key_id, "--index-dir", str(tmp_path)], capture_output=True).returncode == 0
    r = subprocess.run([*rag, "revoke", "nope", "--index-dir", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "no API key" in r.stderr
    r = subprocess.run([*rag, "create", "--scope", "root", "--index-dir", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2


def test_verified_keys_are_cached_for_a_short_time():
    import time

    from rag.shared import TTLCache

    calls = []
    cache = TTLCache(ttl_s=0.05)
    assert cache.get("t", lambda: calls.append(1) or "key") == "key"
    assert cache.get("t", lambda: calls.append(1) or "changed") == "key" and len(calls) == 1
    time.sleep(0.06)
    assert cache.get("t", lambda: calls.append(1) or None) is None and len(calls) == 2  # e.g. revoked meanwhile
