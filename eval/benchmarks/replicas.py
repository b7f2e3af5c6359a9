"""Two `rag serve` replicas and one API key limited to R requests/s: with a shared Redis the key gets
about R in total; with per-process limits (no redis_url) it gets about 2R. Both measured in one run.

    python -m eval.benchmarks.replicas [--rate 10] [--seconds 10] [--output docs/benchmarks/replicas.json]

Indexes the sample corpus, starts Debian's redis-server on a loopback port, then for each setting
starts two `rag serve` processes on the same index and database (auth on, burst = rate), waits for
/readyz, and sends BM25 searches from 4 client threads alternating between the replicas for
--seconds. Accepted requests per second are counted after the first second (the burst). Then one
upload is sent through each replica with the same Idempotency-Key: one job id, one job stored and run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from eval.benchmarks import free_port
from eval.report import write_atomic

log = logging.getLogger(__name__)
RAG = str(Path(sys.executable).with_name("rag"))
SAMPLE = Path(__file__).resolve().parents[2] / "rag" / "sample_data" / "garden"


def wait_ready(url: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not become ready")


def submit_twice(urls: list[str], token: str, index_dir: Path) -> dict:
    """The same upload with one Idempotency-Key through each replica: one job id, one job, one run."""
    import sqlite3

    doc = {"documents": [{"id": "replicated-1", "title": "Mulch", "text": "Mulch keeps soil moist in summer."}]}
    headers = {"X-API-Key": token, "Idempotency-Key": f"bench-{time.time_ns()}"}
    ids = [httpx.post(f"{u}/v1/documents", json=doc, headers=headers, timeout=30).json()["job_id"] for u in urls]
    status = {}
    for _ in range(600):
        status = httpx.get(f"{urls[0]}/v1/jobs/{ids[0]}", headers={"X-API-Key": token}, timeout=10).json()
        if status["status"] in ("done", "failed"):
            break
        time.sleep(0.1)
    with sqlite3.connect(index_dir / "rag.db") as c:
        jobs = c.execute("SELECT count(*) FROM jobs WHERE request_key LIKE ?", (f"%:{headers['Idempotency-Key']}",)).fetchone()[0]
    return {"job_ids_returned": ids, "same_job": len(set(ids)) == 1, "jobs_stored": jobs, "final_status": status.get("status")}


def measure(index_dir: Path, token: str, env: dict[str, str], seconds: float, write_token: str | None = None) -> dict:
    ports = [free_port(), free_port()]
    procs = [subprocess.Popen([RAG, "serve", "--index-dir", str(index_dir), "--port", str(p)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in ports]
    try:
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        for u in urls:
            wait_ready(u)
        counts = {u: {"ok": 0, "limited": 0, "ok_after_1s": 0} for u in urls}
        lock = threading.Lock()
        t0 = time.monotonic()

        def client(i: int) -> None:
            with httpx.Client(timeout=10) as c:
                n = i
                while (now := time.monotonic()) - t0 < seconds:
                    u = urls[n % 2]
                    n += 1
                    r = c.post(f"{u}/v1/search", json={"query": "compost worms", "mode": "bm25", "top_k": 3},
                               headers={"X-API-Key": token})
                    with lock:
                        if r.status_code == 200:
                            counts[u]["ok"] += 1
                            counts[u]["ok_after_1s"] += now - t0 >= 1.0
                        elif r.status_code == 429:
                            counts[u]["limited"] += 1
                        else:
                            raise RuntimeError(f"{u}: HTTP {r.status_code} {r.text[:200]}")

        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ok = sum(c["ok"] for c in counts.values())
        steady = sum(c["ok_after_1s"] for c in counts.values()) / (seconds - 1.0)
        out = {"accepted": ok, "refused": sum(c["limited"] for c in counts.values()),
               "accepted_per_s_after_burst": round(steady, 2), "per_replica": list(counts.values())}
        if write_token:
            out["job_submitted_through_both"] = submit_twice(urls, write_token, index_dir)
        return out
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--output", type=Path, default=Path("docs/benchmarks/replicas.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    work = Path(tempfile.mkdtemp(prefix="replicas-"))
    redis_port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL)
    try:
        index_dir = work / "index"
        subprocess.run([RAG, "index", str(SAMPLE), "--index-dir", str(index_dir), "--no-progress"], check=True, capture_output=True)
        out = subprocess.run([RAG, "keys", "create", "--index-dir", str(index_dir), "--scope", "read"],
                             check=True, capture_output=True, text=True).stdout
        token = next(w for w in out.split() if w.startswith("rag_"))
        out = subprocess.run([RAG, "keys", "create", "--index-dir", str(index_dir), "--scope", "write"],
                             check=True, capture_output=True, text=True).stdout
        write_token = next(w for w in out.split() if w.startswith("rag_"))
        base = {**os.environ, "RAG_AUTH__RATE_PER_S": str(args.rate), "RAG_AUTH__BURST": str(int(args.rate)),
                "RAG_WARMUP_QUERIES": "0", "RAG_LOG_LEVEL": "WARNING"}
        report = {"rate_per_s": args.rate, "burst": int(args.rate), "seconds": args.seconds, "replicas": 2,
                  "shared_redis": measure(index_dir, token, {**base, "RAG_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}, args.seconds,
                                          write_token),
                  "per_process": measure(index_dir, token, base, args.seconds)}
        write_atomic(args.output, json.dumps(report, indent=2))
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    finally:
        redis.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
