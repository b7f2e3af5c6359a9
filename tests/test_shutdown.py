"""Processes end cleanly: the answer evaluation, `rag ask` and `rag serve` (SIGTERM) exit 0 with
the real local generator, Lucene's JVM and the encoder loaded, and no native abort ("terminate
called without an active exception") on the way out; a long answer evaluation keeps what it
finished when it dies, and `--resume` reuses it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import SAMPLE, free_port

RAG = [sys.executable, "-m", "service"]
ABORT = "terminate called"


def run(*args, env=None, timeout=900):
    return subprocess.run([*RAG, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})


def test_answer_eval_journals_configurations_and_resumes(tmp_path, monkeypatch):
    """A run that dies in its second configuration keeps the first; --resume answers only the rest."""
    import eval.answers as ans
    import eval.main as main
    import rag.factory as factory
    from indexer.sources import open_source
    from rag.encoders.hashing import HashEncoder
    from rag.generators.echo import EchoGenerator
    from rag.reader import IndexReader
    from rag.search import Searcher
    from rag.settings import Settings
    from tests.conftest import make_job

    enc = HashEncoder(dim=64)
    make_job(tmp_path / "idx", enc).run(open_source(SAMPLE))
    monkeypatch.setattr(main, "open_searcher", lambda ds, s: Searcher(IndexReader(tmp_path / "idx"), enc))
    monkeypatch.setattr(factory, "make_generator", lambda s: EchoGenerator())
    real, calls = ans.evaluate_config, []

    def dies_on_the_second(*a, **kw):
        calls.append(a[3:5])
        if len(calls) == 2:
            raise RuntimeError("killed")
        return real(*a, **kw)

    monkeypatch.setattr(ans, "evaluate_config", dies_on_the_second)
    out = tmp_path / "r.json"
    settings = Settings(index_dir=tmp_path / "idx", progress=False)
    with pytest.raises(RuntimeError):
        list(main.answer_cmd(settings, SAMPLE, "test", out, [3, 5]))
    assert not out.exists()
    lines = (tmp_path / "r.partial.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["config"]["k"] == 3
    calls.clear()
    monkeypatch.setattr(ans, "evaluate_config", lambda *a, **kw: calls.append(a[3:5]) or real(*a, **kw))
    printed = list(main.answer_cmd(settings, SAMPLE, "test", out, [3, 5], resume=True))
    assert calls == [(True, 5), (False, 3), (False, 5)] and "resuming: 1" in printed[0]
    report = json.loads(out.read_text())
    assert [(c["contextualize"], c["k"]) for c in report["configs"]] == [(True, 3), (True, 5), (False, 3), (False, 5)]
    assert all(c["questions"] == 19 for c in report["configs"])
    assert not (tmp_path / "r.partial.jsonl").exists()


@pytest.mark.slow
def test_answer_eval_with_the_real_generator_exits_cleanly(tmp_path):
    """38 generations through the batching worker, retrieval through Lucene's JVM, in a subprocess."""
    out = tmp_path / "answers.json"
    r = run("eval", "--task", "answer", "--dataset", SAMPLE, "--split", "test", "--k-values", "3", "--max-tokens", "16",
            "--output", out, "--no-progress", "--cache-dir", tmp_path / "cache")
    assert r.returncode == 0, r.stderr[-3000:]
    assert ABORT not in r.stderr
    report = json.loads(out.read_text())
    assert len(report["configs"]) == 2 and all(c["questions"] == 19 and len(c["answers"]) == 19 for c in report["configs"])
    assert not out.with_suffix(".partial.jsonl").exists()


@pytest.fixture(scope="module")
def real_index(tmp_path_factory):
    d = tmp_path_factory.mktemp("shutdown") / "idx"
    r = run("index", SAMPLE, "--index-dir", d, "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    return d


@pytest.mark.slow
def test_rag_ask_exits_cleanly(real_index):
    for _ in range(2):
        r = run("ask", "How often should I water a snake plant in winter?", "--index-dir", real_index, "--json")
        assert r.returncode == 0, r.stderr[-3000:]
        assert ABORT not in r.stderr and json.loads(r.stdout)["answer"]


@pytest.mark.slow
def test_rag_serve_exits_0_on_sigterm_after_answering(real_index):
    port = free_port()
    proc = subprocess.Popen([*RAG, "serve", "--index-dir", str(real_index), "--port", str(port)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "RAG_AUTH__ENABLED": "false"})
    try:
        url = f"http://127.0.0.1:{port}"
        end = time.monotonic() + 180
        while time.monotonic() < end:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        r = httpx.post(f"{url}/v1/answer", json={"question": "What causes blossom end rot?", "max_tokens": 24}, timeout=300)
        assert r.status_code == 200 and r.json()["answer"]
        job = httpx.post(f"{url}/v1/documents", json={"documents": [{"id": f"s{i}", "text": f"shutdown note {i} " * 40}
                                                                 for i in range(200)]}).json()
        time.sleep(1.0)  # the job is loading the encoder or encoding when SIGTERM arrives
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert ABORT not in err and "Traceback" not in err
    # the interrupted job is resumed by the next start
    proc = subprocess.Popen([*RAG, "serve", "--index-dir", str(real_index), "--port", str(port)], text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "RAG_AUTH__ENABLED": "false"})
    try:
        end = time.monotonic() + 300
        status = None
        while time.monotonic() < end:
            try:
                status = httpx.get(f"{url}/v1/jobs/{job['job_id']}").json()["status"]
                if status in ("done", "failed"):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        assert status == "done"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
