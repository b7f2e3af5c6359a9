"""Shared fixtures. Real models load once per session; PostgreSQL runs from Debian's binaries."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# apps and `rag serve` processes start ready at once; tests/test_service.py tests the warm-up itself
os.environ.setdefault("RAG_WARMUP_QUERIES", "0")

import rag  # noqa: E402
from rag.chunking import Chunker  # noqa: E402
from rag.encoders.hashing import HashEncoder  # noqa: E402
from rag.settings import BM25Backend  # noqa: E402
from rag.store.sql import DocumentStore  # noqa: E402

SAMPLE = Path(rag.__file__).parent / "sample_data" / "garden"
SAMPLE_CORPUS = SAMPLE / "corpus.jsonl"
PG_BIN = Path(os.environ.get("RAG_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


@pytest.fixture(scope="session")
def real_encoder():
    from rag.encoders.sentence import SentenceTransformerEncoder

    enc = SentenceTransformerEncoder(index_threads=1)
    enc.count_tokens("load")
    return enc


@pytest.fixture(scope="session")
def onnx_encoders(tmp_path_factory):
    """The packaged model on ONNX Runtime, fp32 and int8, exported once into a session cache."""
    from rag.encoders.onnx import OnnxEncoder

    cache = tmp_path_factory.mktemp("onnx-cache")
    return {p: OnnxEncoder(precision=p, index_threads=1, cache_dir=cache) for p in ("fp32", "int8")}


@pytest.fixture
def hash_encoder() -> HashEncoder:
    return HashEncoder(dim=64, max_length=64)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(app):
    """Serve an ASGI app with uvicorn in a thread on a loopback port; yields the base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(5)


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL 15 server on a loopback port; yields its base URL."""
    if not (PG_BIN / "initdb").exists():
        msg = f"PostgreSQL server binaries not found in {PG_BIN} (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    tmp = Path(tempfile.mkdtemp(prefix="rag-pg-"))
    os.chmod(tmp, 0o777)
    data = tmp / "data"
    port = free_port()
    subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]),
                   check=True, capture_output=True)
    opts = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-w", "-l", str(tmp / "log"), "start"]),
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server():
    """A throwaway redis-server (Debian's) on a loopback port, no persistence; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        msg = "redis-server not found (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.fixture
def redis_url(redis_server):
    """The session's Redis, emptied."""
    import redis

    redis.Redis.from_url(redis_server).flushdb()
    return redis_server


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty database on the session's server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = postgres_server.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{postgres_server}/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(db_url):
    s = DocumentStore(db_url)
    yield s
    s.close()


def make_job(index_dir: Path, encoder, store=None, backend: BM25Backend = BM25Backend.rank_bm25, **kw):
    from indexer.job import IndexJob

    store = store or DocumentStore(f"sqlite:///{index_dir / 'rag.db'}")
    chunk = kw.pop("chunk", {})
    return IndexJob(
        index_dir=index_dir, store=store, encoder=encoder,
        chunker=Chunker(encoder, chunk.get("size", 24), chunk.get("overlap", 4), chunk.get("enabled", True)),
        bm25_backend=backend, progress=False, **kw,
    )


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
