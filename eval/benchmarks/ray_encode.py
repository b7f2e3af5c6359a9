"""`rag index --ray` on a local Ray cluster against in-process encoding, in one run.

    python -m eval.benchmarks.ray_encode [--data ../shared/data/scifact] [--docs 1000] [--workers 2]
                                         [--output docs/benchmarks/ray-encode.json]

Starts a local Ray cluster (`ray start --head --num-cpus WORKERS`), indexes the first --docs SciFact
documents (one passage each) twice with the default encoder: in this process, then with
`--ray auto --ray-workers WORKERS`, and compares every passage vector (max absolute difference)
and the wall-time split (start-up, encode, write-back). The cluster is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from eval.report import write_atomic
from indexer.datasets import corpus_documents
from indexer.job import make_index_job
from indexer.sources import RecordsSource
from rag.settings import load_settings

log = logging.getLogger(__name__)


def vectors(index_dir: Path) -> dict[str, np.ndarray]:
    with sqlite3.connect(index_dir / "rag.db") as c:
        return {pid: np.frombuffer(v, np.float32) for pid, v in c.execute("SELECT id, embedding FROM passages")}


def run(index_dir: Path, docs, ray: str | None, workers: int) -> dict:
    settings = load_settings({"index_dir": index_dir, "progress": False, "chunking": {"enabled": False}})
    t0 = time.perf_counter()
    s = make_index_job(settings, ray_address=ray, ray_workers=workers).run(RecordsSource("bench", docs))
    return {"wall_s": round(time.perf_counter() - t0, 2), "passages": s.passages_encoded,
            "passages_per_s_encode": round(s.passages_encoded / s.seconds["encode"], 1), "seconds": s.seconds}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--output", type=Path, default=Path("docs/benchmarks/ray-encode.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    docs = corpus_documents(args.data, args.docs)
    ray_bin = str(Path(sys.executable).with_name("ray"))
    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    try:
        local = run(work / "local", docs, None, args.workers)
        t0 = time.perf_counter()
        subprocess.run([ray_bin, "start", "--head", f"--num-cpus={args.workers}", "--disable-usage-stats", "--include-dashboard=false"],
                       check=True, capture_output=True)
        cluster_start = time.perf_counter() - t0
        try:
            on_ray = run(work / "ray", docs, "auto", args.workers)
        finally:
            import ray

            ray.shutdown()  # leave the cluster before stopping it
            subprocess.run([ray_bin, "stop", "--force"], capture_output=True)
        a, b = vectors(work / "local"), vectors(work / "ray")
        assert a.keys() == b.keys(), "the two runs hold different passages"
        diff = max(float(np.abs(a[k] - b[k]).max()) for k in a)
        report = {"docs": len(docs), "workers": args.workers, "cluster_start_s": round(cluster_start, 2),
                  "in_process": local, "ray": on_ray, "max_abs_difference": diff,
                  "note": "one machine (2 cores): the Ray workers share the cores the in-process run had to itself"}
        write_atomic(args.output, json.dumps(report, indent=2))
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
