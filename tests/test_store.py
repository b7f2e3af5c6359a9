import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import inspect, text

from rag.chunking import text_hash
from rag.store.sql import DocumentStore, DocumentWrite
from rag.types import Chunk, SourceDocument

ROOT = Path(__file__).resolve().parent.parent


def write(store, doc_id, chunks, title="T", meta=None, h="h1"):
    doc = SourceDocument(doc_id, title, " ".join(chunks), meta or {})
    cs = [Chunk(i, t, len(t.split())) for i, t in enumerate(chunks)]
    store.write_documents([DocumentWrite(doc, "src", h, cs, [text_hash(title, c.text) for c in cs])])


def test_schema_is_migrated_by_alembic(store):
    tables = set(inspect(store.engine).get_table_names())
    assert {"documents", "passages", "feedback", "api_keys", "jobs", "alembic_version"} <= tables
    with store.engine.connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0007"
    DocumentStore(store.url).close()  # migrating twice is a no-op


KILLED_MIGRATION = """
import os, signal, sys
from alembic import op
op.create_index = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)  # dies after the first CREATE TABLE
from rag.store.sql import DocumentStore
DocumentStore(sys.argv[1])
"""


def test_a_migration_killed_half_way_leaves_no_tables_behind(tmp_path):
    url = f"sqlite:///{tmp_path / 'rag.db'}"
    proc = subprocess.run([sys.executable, "-c", KILLED_MIGRATION, url], cwd=ROOT, capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    probe = DocumentStore(url, migrate=False)
    assert inspect(probe.engine).get_table_names() == []  # the CREATE TABLE was rolled back with the rest
    probe.close()
    store = DocumentStore(url)  # and the next run migrates from scratch
    assert store.counts() == (0, 0)
    store.close()


def test_write_count_and_hashes(store):
    write(store, "d1", ["one two", "three four"], meta={"k": "v"})
    write(store, "d2", ["five"])
    assert store.counts() == (2, 3)
    assert store.document_hashes() == {"d1": ("src", "h1"), "d2": ("src", "h1")}
    rows = list(store.iter_passages())
    assert [p.id for p in rows] == ["d1#0", "d1#1", "d2#0"]
    assert rows[0].metadata == {"k": "v"} and rows[0].title == "T"


def test_vectors_are_kept_for_unchanged_passages(store):
    write(store, "d1", ["same text", "old text"])
    assert store.missing_vector_ids("m") == ["d1#0", "d1#1"]
    vec = np.arange(4, dtype=np.float32)
    store.set_vectors("m", [("d1#0", vec.tobytes()), ("d1#1", vec.tobytes())])
    assert store.missing_vector_ids("m") == []
    assert store.missing_vector_ids("other-model") == ["d1#0", "d1#1"]
    write(store, "d1", ["same text", "new text", "more"], h="h2")
    assert store.missing_vector_ids("m") == ["d1#1", "d1#2"]
    got = {p.id: p.embedding for p in store.iter_passages()}
    assert np.array_equal(np.frombuffer(got["d1#0"], np.float32), vec)
    assert store.passage_texts(["d1#2", "d1#1", "missing"]) == [("d1#2", "T", "more"), ("d1#1", "T", "new text")]


def test_delete_removes_passages(store):
    write(store, "d1", ["a", "b"])
    write(store, "d2", ["c"])
    assert store.delete_documents(["d1", "unknown"]) == 1
    assert store.counts() == (1, 1)
    assert [p.id for p in store.iter_passages()] == ["d2#0"]


def test_unicode_and_json_roundtrip(store):
    write(store, "d/ü", ["naïve café ☕"], title="Tïtle", meta={"tags": ["x", "ÿ"], "n": 3})
    p = next(store.iter_passages())
    assert (p.id, p.text, p.title, p.metadata) == ("d/ü#0", "naïve café ☕", "Tïtle", {"tags": ["x", "ÿ"], "n": 3})


def test_feedback_positive_signals(store):
    write(store, "d1", ["alpha text", "beta text"])
    store.add_feedback("q one", "d1#1", "useful")
    store.add_feedback("q two", "d1#0", "not_useful")
    store.add_feedback("q three", "d1#0", "click")
    store.add_feedback("q four", "gone#0", "useful")  # a passage that no longer exists
    assert store.positive_feedback() == [("q one", "d1#1", "T", "beta text"), ("q three", "d1#0", "T", "alpha text")]


def test_api_keys_table(store):
    store.keys.add("k1", "ci", "h" * 64, "read")
    store.keys.add("k2", "", "g" * 64, "admin")
    assert store.keys.get("k1").key_hash == "h" * 64 and not store.keys.get("k1").revoked
    assert store.keys.revoke("k1") and store.keys.get("k1").revoked and not store.keys.revoke("nope")
    assert [k.id for k in store.keys.all()] == ["k1", "k2"] and store.keys.get("nope") is None


def test_jobs_table_bounds_claims_and_updates(store):
    from rag.errors import JobQueueFullError

    store.jobs.add("j1", "upsert", 2, {"documents": [], "delete": []}, "key", "host:1:1", max_active=3, max_active_per_key=2)
    store.jobs.add("j2", "delete", 1, {"documents": [], "delete": ["d"]}, "key", "host:1:1", 3, 2)
    with pytest.raises(JobQueueFullError, match="per key"):
        store.jobs.add("j3", "upsert", 1, {}, "key", "host:1:1", 3, 2)
    store.jobs.add("j3", "upsert", 1, {}, None, "host:1:1", 3, 2)
    with pytest.raises(JobQueueFullError, match="the limit"):
        store.jobs.add("j4", "upsert", 1, {}, None, "host:1:1", 3, 2)
    assert [j.id for j in store.jobs.active()] == ["j1", "j2", "j3"]
    # of two processes taking over j1 from its dead owner, one wins
    assert store.jobs.claim("j1", "host:1:1", "host:2:2") and not store.jobs.claim("j1", "host:1:1", "host:3:3")
    store.jobs.update("j1", status="done", payload=None, summary={"stage": "done"})
    j = store.jobs.get("j1")
    assert (j.status, j.owner, j.payload, j.summary) == ("done", "host:2:2", None, {"stage": "done"})
    assert [j.id for j in store.jobs.active()] == ["j2", "j3"] and store.jobs.get("nope") is None
