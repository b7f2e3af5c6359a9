"""Search latency in a warm process, per stage, on a BEIR dataset's cached index.

    python -m eval.benchmarks.latency [--dataset ../shared/data/scifact] [--chunking off] [--output docs/benchmarks/latency.json]

Runs every test query through Searcher.search (hybrid, k=10, the tuned fusion when --tuned-file is
given) after a warm-up pass, once with the index as built (exact search below 100k vectors) and
once with the same vectors in an HNSW graph (M=32, efConstruction=200, default efSearch). Reports
p50/p95 of the query encoder and of the rest (BM25, dense, fusion, truncation, fetch) apart.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import faiss

from eval.runner import open_searcher
from eval.stats import pct
from rag.datasets import load_dataset
from rag.settings import load_settings


def measure(searcher, warmup: list[str], queries: list[str]) -> dict:
    for q in warmup:
        searcher.search(q)
    stages: dict[str, list[float]] = {}
    for q in queries:
        t = searcher.search(q).timings_ms
        for k, v in t.items():
            stages.setdefault(k, []).append(v)
        stages.setdefault("rest", []).append(t["total"] - t.get("encode", 0.0))
    return {k: {"p50": pct(v, 50), "p95": pct(v, 95)} for k, v in stages.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=Path("../shared/data/scifact"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--chunking", default="off", choices=["on", "off"])
    ap.add_argument("--tuned-file", type=Path, default=Path("docs/results/tuned-scifact-train.json"))
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--output", type=Path, default=Path("docs/benchmarks/latency.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = load_settings({"chunking": {"enabled": args.chunking == "on"},
                              "tuned_file": args.tuned_file if args.tuned_file.is_file() else None})
    ds = load_dataset(args.dataset, args.split)
    searcher = open_searcher(ds, settings)
    queries = list(ds.queries.values())
    warm = (queries * (1 + args.warmup // len(queries)))[: args.warmup]
    out = {"dataset": ds.name, "split": args.split, "queries": len(queries), "passages": len(searcher.reader.passages),
           "fusion": searcher.retrieval.model_dump(mode="json"), "max_k": searcher.truncation.max_k}
    out["exact"] = measure(searcher, warm, queries)
    flat = searcher.reader.dense.index
    vecs = flat.reconstruct_n(0, flat.ntotal)
    hnsw = faiss.IndexHNSWFlat(vecs.shape[1], settings.dense.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = settings.dense.ef_construction
    hnsw.add(vecs)
    hnsw.hnsw.efSearch = settings.dense.ef_search
    searcher.reader.dense.index, searcher.reader.dense.kind = hnsw, "hnsw"
    out["hnsw"] = measure(searcher, warm, queries)
    out["hnsw"]["efSearch"] = settings.dense.ef_search
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    for kind in ("exact", "hnsw"):
        r = out[kind]
        logging.getLogger("latency").warning("%s: encode p50 %.2f ms, rest p50 %.2f ms (p95 %.2f)", kind,
                                             r["encode"]["p50"], r["rest"]["p50"], r["rest"]["p95"])


if __name__ == "__main__":
    main()
