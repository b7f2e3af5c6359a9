"""The `rag` command as a user runs it: a subprocess, its exit code and its messages."""

import json
import subprocess
import sys

import pytest

from rag.reader import IndexReader
from tests.conftest import SAMPLE

RAG = [sys.executable, "-m", "service"]


def rag(*args, env=None):
    return subprocess.run([*RAG, *map(str, args)], capture_output=True, text=True, env=env)


def test_missing_source_is_a_clear_error(tmp_path):
    r = rag("index", tmp_path / "nowhere", "--index-dir", tmp_path / "idx")
    assert r.returncode == 2
    assert "nowhere" in r.stderr and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_invalid_setting_is_named(tmp_path):
    r = rag("index", SAMPLE, "--index-dir", tmp_path, "--chunk-size", "40", "--chunk-overlap", "50")
    assert r.returncode == 2 and "overlap" in r.stderr and "Traceback" not in r.stderr


def test_strict_bad_record_exits_nonzero_naming_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "ok"}\n{"id": "b", "text": "x"\n')
    r = rag("index", bad, "--index-dir", tmp_path / "idx", "--strict", "--bm25-backend", "rank_bm25")
    assert r.returncode == 2
    assert f"{bad}:2: malformed JSON" in r.stderr and "nothing was indexed" in r.stderr
    assert not (tmp_path / "idx" / "CURRENT").exists()


def test_blank_question_and_bad_filter_fail_before_anything_loads(tmp_path):
    # no index exists there: the input is checked before the index and the models are opened
    r = rag("ask", "   ", "--index-dir", tmp_path)
    assert r.returncode == 2 and "question is empty" in r.stderr and "Traceback" not in r.stderr
    r = rag("ask", "why?", "--filter", "nokeyvalue", "--index-dir", tmp_path)
    assert r.returncode == 2 and "nokeyvalue" in r.stderr and "no published index" not in r.stderr


def test_usage_error_for_unknown_option(tmp_path):
    r = rag("index", SAMPLE, "--no-such-flag")
    assert r.returncode == 2 and "No such option" in r.stderr


def test_env_settings_apply_and_cli_wins(tmp_path):
    import os

    env = {**os.environ, "RAG_INDEX_DIR": str(tmp_path / "from-env"), "RAG_BM25__BACKEND": "nonsense"}
    r = rag("index", SAMPLE, env=env)
    assert r.returncode == 2 and "bm25.backend" in r.stderr  # env was read and validated
    env["RAG_BM25__BACKEND"] = "rank_bm25"
    r = rag("index", "--index-dir", tmp_path / "from-cli", env={**env, "RAG_ENCODER__MODEL": str(tmp_path / "missing-model")})
    assert r.returncode == 2 and "missing-model" in r.stderr


@pytest.mark.slow
def test_index_sample_corpus_with_the_default_real_parts(tmp_path):
    """Integration: the real MiniLM encoder (ONNX int8), bm25s, the real SQLite store; the vectors
    answer queries encoded by torch too (the same model on another runtime)."""
    r = rag("index", SAMPLE, "--index-dir", tmp_path, "--json", "--no-progress")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["added"] == 113 and s["published"] and s["rejected"] == 0
    assert s["passages_encoded"] == s["passages_total"] >= 113
    reader = IndexReader(tmp_path)
    assert reader.manifest.bm25_backend == "bm25s" and reader.manifest.encoder.numeric == "onnx-int8"  # the defaults
    assert reader.manifest.encoder.dim == 384 and reader.dense.kind == "flat"
    hit = reader.bm25.search("blossom end rot calcium", 1)[0]
    assert reader.passages.get([hit.passage_id])[hit.passage_id].title == "Tomato blossom end rot"
    from rag.encoders.sentence import SentenceTransformerEncoder

    q = SentenceTransformerEncoder(index_threads=1).encode_queries(["why do my tomatoes get black bottoms"])
    _, rows = reader.dense.search(q, 3)
    titles = [reader.passages.get([reader.passages.ids[i]])[reader.passages.ids[i]].title for i in rows[0]]
    assert "Tomato blossom end rot" in titles
    again = json.loads(rag("index", SAMPLE, "--index-dir", tmp_path, "--json", "--no-progress").stdout)
    assert again["skipped"] == 113 and not again["published"]
