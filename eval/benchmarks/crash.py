"""Crash test of the service's indexing jobs: SIGKILL `rag serve` at random moments while ingestion
jobs run, restart it each time, and check that nothing was lost or doubled.

    python -m eval.benchmarks.crash [--jobs 10] [--docs 40] [--seed 7] [--output docs/benchmarks/crash.json]
    python -m eval.benchmarks.crash --fake ...   # the hashing encoder and rank-bm25: seconds, for the test suite

Each round starts the server on the index (which first resumes what earlier rounds left), submits
one job of ``--docs`` new documents, waits until some job reaches the round's target stage (right
after the 202, ingesting, encoding, publishing, or the newest job done; the targets cycle in a
seeded order), waits a little more at random, and kills the server with SIGKILL. At the end the
server is started once more and runs whatever the killed processes left; then every job must be
`done` or `failed`, every document of a `done` job must be searchable by its id, no document or
passage may appear twice, and SQL, the passage table, BM25 and the dense index must agree.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from eval.benchmarks import free_port

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "rag" / "sample_data" / "garden"


def _start(index_dir: Path, port: int, fake: bool) -> subprocess.Popen:
    env = {**os.environ, "RAG_INDEX_DIR": str(index_dir), "RAG_AUTH__ENABLED": "false", "RAG_LOG_LEVEL": "WARNING",
           "RAG_LIMITS__MAX_QUEUED_JOBS": "64", "HF_HUB_OFFLINE": "1"}
    if fake:
        cmd = [sys.executable, "-m", "service.fake_server", str(index_dir), "--port", str(port), "--slow-encoder"]
    else:
        cmd = [sys.executable, "-m", "service", "serve", "--index-dir", str(index_dir), "--port", str(port)]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_up(client: httpx.Client, proc: subprocess.Popen, timeout: float = 180) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stderr.read()[-2000:] if proc.stderr else ''}")
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not start")


def _stages(c: httpx.Client, job_ids: list[str]) -> dict[str, int]:
    """What every job is doing now (its stage, or its outcome)."""
    out: dict[str, int] = {}
    try:
        for job_id in job_ids:
            job = c.get(f"/v1/jobs/{job_id}").json()
            stage = job["status"] if job["status"] in ("done", "failed") else job["progress"].get("stage", "?")
            out[stage] = out.get(stage, 0) + 1
    except httpx.HTTPError:
        pass
    return out


def _wait_for_stage(c: httpx.Client, job_ids: list[str], target: str, timeout: float) -> bool:
    """Until some job is in ``target`` (``done``: the newest job is done); False on timeout."""
    if target == "submitted":
        return True
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if target == "done":
            if job_ids and _stages(c, job_ids[-1:]).get("done"):
                return True
        elif _stages(c, job_ids).get(target):
            return True
        time.sleep(0.02)
    return False


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def build_index(index_dir: Path, fake: bool) -> None:
    if fake:
        from indexer.job import IndexJob
        from indexer.sources import open_source
        from rag.chunking import Chunker
        from rag.encoders.hashing import HashEncoder
        from rag.settings import BM25Backend
        from rag.store.sql import DocumentStore

        enc = HashEncoder(dim=256)
        store = DocumentStore(f"sqlite:///{index_dir / 'rag.db'}")
        IndexJob(index_dir, store, enc, Chunker(enc, 200, 32, True), BM25Backend.rank_bm25, progress=False).run(open_source(SAMPLE))
        store.close()
    else:
        subprocess.run([sys.executable, "-m", "service", "index", str(SAMPLE), "--index-dir", str(index_dir), "--no-progress"],
                       check=True, capture_output=True, cwd=ROOT)


def run(index_dir: Path, jobs: int = 10, docs: int = 40, seed: int = 7, fake: bool = False, max_wait_s: float | None = None) -> dict:
    rng = random.Random(seed)
    index_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    build_index(index_dir, fake)
    max_wait_s = max_wait_s if max_wait_s is not None else (0.3 if fake else 1.0)
    # where the kill lands: right after the 202, or once some job is in that stage
    targets = ["submitted", "ingest", "encode", "publish", "done"]
    rng.shuffle(targets)
    submitted: dict[str, list[str]] = {}  # job id -> document ids
    kills, lost_submissions, start_s = [], 0, []
    for j in range(jobs):
        port = free_port()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            t = time.monotonic()
            proc = _start(index_dir, port, fake)
            _wait_up(c, proc)
            start_s.append(time.monotonic() - t)
            batch = [{"id": f"crash-{j}-{i}", "title": f"Crash note {j}.{i}",
                      "text": f"crashtoken{j}x{i} a note about resilient gardening tools, number {i} of round {j}. " * 3}
                     for i in range(docs)]
            target = targets[j % len(targets)]
            try:
                r = c.post("/v1/documents", json={"documents": batch})
                r.raise_for_status()
                submitted[r.json()["job_id"]] = [d["id"] for d in batch]
            except httpx.HTTPError:
                lost_submissions += 1
            t_sub = time.monotonic()
            reached = _wait_for_stage(c, list(submitted), target, timeout=10 if fake else 300)
            time.sleep(rng.uniform(0, max_wait_s))  # somewhere inside that stage
            stages = _stages(c, list(submitted))
            _kill(proc)
            kills.append({"target": target, "reached": reached, "after_s": round(time.monotonic() - t_sub, 2), "jobs_by_stage": stages})
            log.info("round %d: killed in %s (reached: %s); jobs by stage: %s", j, target, reached, stages)
    # the last start: it resumes what the killed ones left
    port = free_port()
    report: dict = {"jobs": jobs, "docs_per_job": docs, "seed": seed, "fake": fake, "kills": kills,
                    "submissions_cut_by_the_kill": lost_submissions}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
        proc = _start(index_dir, port, fake)
        try:
            _wait_up(c, proc)
            statuses = {}
            end = time.monotonic() + (120 if fake else 1200)
            for job_id in submitted:
                while True:
                    job = c.get(f"/v1/jobs/{job_id}").json()
                    if job["status"] in ("done", "failed") or time.monotonic() > end:
                        break
                    time.sleep(0.2)
                statuses[job_id] = job["status"]
            done_docs = [d for job_id, ids in submitted.items() if statuses[job_id] == "done" for d in ids]
            missing, doubled = [], []
            for doc_id in done_docs:
                hits = c.post("/v1/search", json={"query": "resilient gardening tools", "mode": "bm25", "top_k": 100,
                                                  "filters": {"document_id": doc_id}}).json()["hits"]
                if not hits:
                    missing.append(doc_id)
                ids = [h["passage_id"] for h in hits]
                if len(ids) != len(set(ids)):
                    doubled.append(doc_id)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    counts = _counts(index_dir)
    report |= {
        "job_status": {s: list(statuses.values()).count(s) for s in sorted(set(statuses.values()))},
        "jobs_not_ended": [j for j, s in statuses.items() if s not in ("done", "failed")],
        "documents_of_done_jobs": len(done_docs), "not_searchable": missing, "passages_twice": doubled,
        "counts": counts, "server_start_s_p50": sorted(start_s)[len(start_s) // 2] if start_s else None,
        "wall_s": round(time.monotonic() - t0, 1),
    }
    return report


def _counts(index_dir: Path) -> dict:
    from rag.reader import IndexReader
    from rag.store.sql import DocumentStore

    store = DocumentStore(f"sqlite:///{index_dir / 'rag.db'}")
    reader = IndexReader(index_dir)
    try:
        docs, passages = store.counts()
        return {"sql_documents": docs, "sql_passages": passages, "passage_table": len(reader.passages),
                "passage_ids_unique": len(set(reader.passages.ids)), "bm25": len(reader.bm25), "dense": len(reader.dense)}
    finally:
        store.close()
        reader.view.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index-dir", type=Path, default=Path("data/bench/crash-index"))
    ap.add_argument("--jobs", type=int, default=10)
    ap.add_argument("--docs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--fake", action="store_true", help="hashing encoder and rank-bm25 (fast; what the tests run)")
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.index_dir.exists():
        import shutil

        shutil.rmtree(args.index_dir)
    report = run(args.index_dir, args.jobs, args.docs, args.seed, args.fake)
    text = json.dumps(report, indent=2)
    sys.stdout.write(text + "\n")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
