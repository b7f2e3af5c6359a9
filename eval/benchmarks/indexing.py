"""Indexing benchmark on a BEIR corpus (default ../shared/data/scifact).

    python -m eval.benchmarks.indexing [--corpus DIR] [--workdir DIR] [--output docs/benchmarks/indexing.json]

1. a clean run of `rag index`: wall time, passages/s, the share of time outside the encoder;
2. SIGKILL during a run that extends an already published index, while a reader opened on the old
   generation keeps searching; then the job is run again: its passage ids and counts must equal
   the clean run's, and the reader must never have failed;
3. HNSW recall@10 against exact search on the clean run's passage vectors, queries from the corpus's
   queries.jsonl, at the default efSearch (and a few others).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("bench.indexing")
RAG = [sys.executable, "-m", "service"]


def run_index(source: Path, index_dir: Path, extra: list[str] | None = None) -> tuple[dict, float]:
    t = time.perf_counter()
    out = subprocess.run(
        [*RAG, "index", str(source), "--index-dir", str(index_dir), "--json", "--no-progress", *(extra or [])],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout), time.perf_counter() - t


def passage_ids(index_dir: Path) -> list[str]:
    with sqlite3.connect(index_dir / "rag.db") as c:
        return [r[0] for r in c.execute("SELECT id FROM passages ORDER BY id")]


def clean_run(corpus: Path, work: Path) -> dict:
    idx = work / "clean"
    shutil.rmtree(idx, ignore_errors=True)
    summary, wall = run_index(corpus, idx)
    enc = summary["seconds"].get("encode", 0.0)
    load = summary["seconds"].get("load model", 0.0)
    return {
        "wall_s": round(wall, 2),
        "stage_s": {k: round(v, 2) for k, v in summary["seconds"].items()},
        "documents": summary["documents_total"],
        "passages": summary["passages_total"],
        "passages_per_s_encoder": round(summary["passages_per_s"], 2),
        "passages_per_s_wall": round(summary["passages_total"] / wall, 2),
        "share_outside_encoder": round(1 - enc / wall, 4),
        "share_outside_encoder_excl_process_start_and_model_load": round(
            1 - enc / summary_total(summary, exclude=("load model",)), 4
        ),
        "model_load_s": round(load, 2),
    }


def summary_total(summary: dict, exclude: tuple[str, ...] = ()) -> float:
    return sum(v for k, v in summary["seconds"].items() if k not in exclude)


class Reader(threading.Thread):
    """Searches the generation it opened, over and over, until stopped; counts answers and failures."""

    def __init__(self, index_dir: Path) -> None:
        super().__init__(daemon=True)
        from rag.reader import IndexReader

        self.reader = IndexReader(index_dir)
        self.generation = self.reader.generation
        self.vec = self.reader.dense.vector(0).reshape(1, -1)
        self.ok = 0
        self.failed: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                hits = self.reader.bm25.search("cerebral white matter diffusion", 10)
                _, rows = self.reader.dense.search(self.vec, 10)
                got = self.reader.passages.get([h.passage_id for h in hits] + [self.reader.passages.ids[r] for r in rows[0]])
                assert hits and len(got) >= len(hits)
                self.ok += 1
            except Exception as exc:  # noqa: BLE001 - we count every failure
                self.failed.append(repr(exc))
            time.sleep(0.02)


def kill_and_resume(corpus: Path, work: Path, clean_ids: list[str], kill_fraction: float) -> dict:
    idx = work / "killed"
    shutil.rmtree(idx, ignore_errors=True)
    half = work / "half"
    half.mkdir(parents=True, exist_ok=True)
    lines = (corpus / "corpus.jsonl").read_text().splitlines(keepends=True)
    (half / "corpus.jsonl").write_text("".join(lines[: len(lines) // 4]))
    # same source key for both runs: the full corpus is copied into place after the first run
    src = work / "src"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(half, src)
    first, _ = run_index(src, idx)
    reader = Reader(idx)
    reader.start()
    shutil.copy(corpus / "corpus.jsonl", src / "corpus.jsonl")
    proc = subprocess.Popen(
        [*RAG, "index", str(src), "--index-dir", str(idx), "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    # kill once the encoder has committed about kill_fraction of the new passages
    target = int((len(clean_ids) - first["passages_total"]) * kill_fraction)
    db = idx / "rag.db"
    while proc.poll() is None:
        with sqlite3.connect(db, timeout=30) as c:
            n = c.execute("SELECT count(*) FROM passages WHERE embedding IS NOT NULL").fetchone()[0]
        if n - first["passages_total"] >= target:
            break
        time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as c:
        at_kill = c.execute("SELECT count(*), count(embedding) FROM passages").fetchone()
    gen_at_kill = json.loads((idx / "CURRENT").read_text())["generation"]
    resumed, wall = run_index(src, idx)
    time.sleep(0.5)
    reader.stop.set()
    reader.join()
    ids = passage_ids(idx)
    return {
        "passages_before_kill_run": first["passages_total"],
        "killed_at": {"passages_in_sql": at_kill[0], "passages_with_vectors": at_kill[1], "current_generation": gen_at_kill},
        "resume": {"wall_s": round(wall, 2), "encoded": resumed["passages_encoded"], "skipped_docs": resumed["skipped"],
                    "added_docs": resumed["added"], "generation": resumed["generation"]},
        "passage_ids_equal_clean_run": ids == clean_ids,
        "passages": len(ids),
        "clean_passages": len(clean_ids),
        "reader": {"generation": reader.generation, "answers": reader.ok, "failures": len(reader.failed),
                   "first_failures": reader.failed[:3]},
    }


def hnsw_recall(index_dir: Path, corpus: Path, ef_values: list[int]) -> dict:
    import faiss

    from rag.factory import make_encoder
    from rag.settings import Settings

    s = Settings()
    with sqlite3.connect(index_dir / "rag.db") as c:
        blobs = [r[0] for r in c.execute("SELECT embedding FROM passages ORDER BY id")]
    xb = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1)
    queries = [json.loads(line)["text"] for line in (corpus / "queries.jsonl").read_text().splitlines()]
    xq = make_encoder(s).encode_queries(queries)
    faiss.omp_set_num_threads(1)
    flat = faiss.IndexFlatIP(xb.shape[1])
    flat.add(xb)
    _, exact = flat.search(xq, 10)
    t = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(xb.shape[1], s.dense.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = s.dense.ef_construction
    hnsw.add(xb)
    build = time.perf_counter() - t
    out: dict[str, Any] = {"vectors": len(xb), "queries": len(xq), "M": s.dense.hnsw_m, "efConstruction": s.dense.ef_construction,
           "build_s": round(build, 2), "default_efSearch": s.dense.ef_search, "by_efSearch": {}}
    t = time.perf_counter()
    for _ in range(3):
        flat.search(xq, 10)
    flat_ms = (time.perf_counter() - t) / (3 * len(xq)) * 1000
    for ef in ef_values:
        hnsw.hnsw.efSearch = ef
        t = time.perf_counter()
        _, approx = hnsw.search(xq, 10)
        ms = (time.perf_counter() - t) / len(xq) * 1000
        recall = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)]))
        out["by_efSearch"][str(ef)] = {"recall@10": round(recall, 4), "ms_per_query": round(ms, 3)}
    out["exact_ms_per_query"] = round(flat_ms, 3)
    out["recall@10_at_default"] = out["by_efSearch"][str(s.dense.ef_search)]["recall@10"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path("../shared/data/scifact"))
    ap.add_argument("--workdir", type=Path, default=Path("data/bench-indexing"))
    ap.add_argument("--output", type=Path, default=Path("docs/benchmarks/indexing.json"))
    ap.add_argument("--kill-fraction", type=float, default=0.5)
    ap.add_argument("--skip", nargs="*", default=[], choices=["clean", "kill", "recall"])
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.workdir.mkdir(parents=True, exist_ok=True)
    result: dict = json.loads(args.output.read_text()) if args.output.exists() else {}
    result["corpus"] = str(args.corpus)
    result["machine"] = {"cpus": os.cpu_count()}

    def save() -> None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")

    if "clean" not in args.skip:
        result["clean_run"] = clean_run(args.corpus, args.workdir)
        log.info("clean run: %s", result["clean_run"])
        save()
    if "recall" not in args.skip:
        result["hnsw_recall"] = hnsw_recall(args.workdir / "clean", args.corpus, [16, 32, 64, 128, 256])
        log.info("recall: %s", result["hnsw_recall"])
        save()
    if "kill" not in args.skip:
        result["sigkill_resume"] = kill_and_resume(args.corpus, args.workdir, passage_ids(args.workdir / "clean"), args.kill_fraction)
        log.info("kill/resume: %s", result["sigkill_resume"])
        save()


if __name__ == "__main__":
    main()
