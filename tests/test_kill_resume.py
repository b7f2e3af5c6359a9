"""SIGKILL the indexing job at many moments; the finished index must equal a clean run's."""

import sqlite3
import time
from pathlib import Path

from rag import generations as gens
from rag.reader import IndexReader
from tests.conftest import SAMPLE
from tests.index_slowly import kill_then_resume, run_slowly


def snapshot(index_dir: Path):
    with sqlite3.connect(index_dir / "rag.db") as c:
        docs = c.execute("SELECT id, content_hash FROM documents ORDER BY id").fetchall()
        passages = c.execute("SELECT id, text, embedding FROM passages ORDER BY id").fetchall()
    return docs, passages


def test_sigkill_at_any_moment_then_resume_equals_clean_run(tmp_path):
    clean = tmp_path / "clean"
    assert run_slowly(SAMPLE, clean).returncode == 0
    t0 = time.perf_counter()
    assert run_slowly(SAMPLE, tmp_path / "timing").returncode == 0
    full = time.perf_counter() - t0

    killed = tmp_path / "killed"
    kills, out = kill_then_resume(SAMPLE, killed, full, (0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 0.97))
    assert kills >= 3
    assert out.returncode == 0, out.stderr[-4000:]  # what the resumed job said, should it fail

    assert snapshot(killed) == snapshot(clean)  # same documents, passage ids, texts and vectors
    gen = gens.require_current(killed)
    assert gens.verify(gen) == []
    assert not [p for p in (killed / gens.GENERATIONS).iterdir() if p.name.startswith(gens.STAGING_PREFIX)]
    a, b = IndexReader(clean), IndexReader(killed)
    assert a.passages.ids == b.passages.ids
    assert a.manifest.counts == b.manifest.counts and str(b.manifest.counts.passages) in out.stdout
    q = "how often should I water a snake plant"
    assert [h.passage_id for h in a.bm25.search(q, 10)] == [h.passage_id for h in b.bm25.search(q, 10)]
