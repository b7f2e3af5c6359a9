"""Per-passage sizes and per-core search rates: the measured inputs of docs/capacity.md.

    python -m eval.benchmarks.capacity --index data/eval-cache/scifact-... [--vectors 100000]
                                       [--output docs/benchmarks/capacity.json]

1. Bytes per passage of each part of a built local index (SQL store, passage table, BM25, dense).
2. faiss HNSW (M=32, efConstruction=200, the defaults) over --vectors random unit 384-dim vectors:
   bytes per vector, and single-thread search rate at efSearch=128, k=100 (what one core sustains).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from eval.report import write_atomic
from rag import generations as gens


def size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, required=True, help="a local index directory (rag index)")
    ap.add_argument("--vectors", type=int, default=100_000)
    ap.add_argument("--output", type=Path, default=Path("docs/benchmarks/capacity.json"))
    args = ap.parse_args()
    gen = gens.require_current(args.index)
    n = gens.read_manifest(gen).counts.passages
    parts = {"sql_store": args.index / "rag.db", "passage_table": gen / "passages.sqlite", "bm25": gen / "bm25", "dense_flat": gen / "dense"}
    per_passage = {k: round(size(p) / n) for k, p in parts.items() if p.exists()}

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.vectors, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    faiss.omp_set_num_threads(1)
    index = faiss.IndexHNSWFlat(384, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 200
    t0 = time.perf_counter()
    index.add(x)
    build_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        faiss.write_index(index, f"{tmp}/i.faiss")
        hnsw_bytes = Path(f"{tmp}/i.faiss").stat().st_size / args.vectors
    index.hnsw.efSearch = 128
    q = x[rng.choice(args.vectors, 500, replace=False)] + rng.normal(scale=0.05, size=(500, 384)).astype(np.float32)
    t0 = time.perf_counter()
    for row in q:
        index.search(row[None, :], 100)
    per_query = (time.perf_counter() - t0) / len(q)
    report = {"index": str(args.index), "passages": n, "bytes_per_passage": per_passage,
              "hnsw": {"vectors": args.vectors, "dim": 384, "M": 32, "bytes_per_vector": round(hnsw_bytes),
                       "build_s_one_thread": round(build_s, 1), "search_ms_one_thread_ef128_k100": round(per_query * 1000, 3),
                       "searches_per_s_per_core": round(1 / per_query)}}
    write_atomic(args.output, json.dumps(report, indent=2))
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
