"""Encoder runtimes side by side in one run: torch fp32 (sentence-transformers) vs ONNX Runtime fp32
and int8, the packaged all-MiniLM-L6-v2.

    python -m eval.benchmarks.encoder [--data ../shared/data/scifact] [--output docs/benchmarks/encoder.json]
                                      [--skip-quality]

1. Query encode latency, one query per call (SciFact test queries), p50/p95: idle, then with a
   CPU-bound neighbour (one busy-looping process per core) for the whole phase. Torch is measured
   with its default intra-op threads (every core: the policy before) and with one (the policy now).
2. Passage encoding throughput (passages/s) on the first --passages SciFact documents (title + text,
   as the indexer joins them), with every core.
3. Quality: `rag eval` on SciFact test, one passage per document, dense and hybrid with the fusion
   tuned on SciFact train, each runtime on its own index (int8 queries on int8 passages, ...), plus
   the time each index took to build. Torch's index is the cached one when present.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from eval.report import write_atomic
from eval.stats import pct
from indexer.datasets import corpus_documents
from rag.cpu import cores
from rag.datasets import load_dataset
from rag.types import indexed_text

log = logging.getLogger(__name__)
RUNTIMES = {"torch-fp32": ("torch", "fp32"), "onnx-fp32": ("onnx", "fp32"), "onnx-int8": ("onnx", "int8")}


def _spin() -> None:  # pragma: no cover - the neighbour
    while True:
        pass


class Neighbour:
    """One busy-looping process per core: what a shared server's other tenants look like to us."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.procs: list = []

    def __enter__(self) -> Neighbour:
        ctx = mp.get_context("spawn")
        self.procs = [ctx.Process(target=_spin, daemon=True) for _ in range(self.n)]
        for p in self.procs:
            p.start()
        time.sleep(1.0)
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            p.terminate()
            p.join()


def make(runtime: str, query_threads: int, cache: Path):
    backend, precision = RUNTIMES[runtime]
    if backend == "torch":
        from rag.encoders.sentence import SentenceTransformerEncoder

        return SentenceTransformerEncoder(device="cpu", query_threads=query_threads)
    from rag.encoders.onnx import OnnxEncoder

    return OnnxEncoder(precision=precision, query_threads=query_threads, cache_dir=cache)


def query_latency(enc, queries: list[str], budget_s: float) -> dict:
    for q in queries[:20]:
        enc.encode_queries([q])
    times, stop = [], time.monotonic() + budget_s
    for q in queries:
        t = time.perf_counter()
        enc.encode_queries([q])
        times.append((time.perf_counter() - t) * 1000)
        if time.monotonic() > stop:
            break
    return {"n": len(times), "p50_ms": pct(times, 50), "p95_ms": pct(times, 95)}


def throughput(enc, texts: list[str]) -> dict:
    enc.encode_passages(texts[:16])
    t = time.perf_counter()
    enc.encode_passages(texts, batch_size=64)
    s = time.perf_counter() - t
    return {"passages": len(texts), "seconds": round(s, 2), "passages_per_s": round(len(texts) / s, 1)}


def quality(data: Path, runtime: str, tuned: Path) -> dict:
    backend, precision = RUNTIMES[runtime]
    env = {**os.environ, "RAG_ENCODER__BACKEND": backend, "RAG_ENCODER__PRECISION": precision}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "service", "eval", "--dataset", str(data), "--split", "test", "--chunking", "off",
                        "--retrievers", "dense,hybrid", "--tuned-file", str(tuned), "--output", str(out), "--no-progress"],
                       check=True, env=env)
        wall = time.perf_counter() - t
        report = json.loads(out.read_text())
    rows = {r: {"ndcg@10": m["ndcg@10"], "recall@100": m["recall@100"], "latency_ms": m["latency_ms"]}
            for r, m in report["results"].items()}
    return {"retrievers": rows, "eval_wall_s": round(wall, 1), "index": report.get("index", {})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    ap.add_argument("--output", type=Path, default=Path("docs/benchmarks/encoder.json"))
    ap.add_argument("--tuned", type=Path, default=Path("docs/results/tuned-scifact-train.json"))
    ap.add_argument("--passages", type=int, default=600)
    ap.add_argument("--budget-s", type=float, default=60.0, help="most seconds per latency measurement")
    ap.add_argument("--skip-quality", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    ds = load_dataset(args.data, "test")
    queries = [ds.queries[q] for q in sorted(ds.queries)]
    texts = [indexed_text(d.title, d.text) for d in corpus_documents(args.data, args.passages)]
    n = cores()
    cache = Path(tempfile.mkdtemp(prefix="onnx-bench-"))
    configs = [("torch-fp32", n), ("torch-fp32", 1), ("onnx-fp32", 1), ("onnx-int8", 1)]
    encoders = {(r, t): make(r, t, cache) for r, t in configs}
    for enc in encoders.values():
        enc.encode_queries(["load"])  # models loaded and exported before anything is timed

    out: dict = {"machine": {"cores": n}, "neighbour": f"{n} Python processes each spinning `while True: pass` (one per core)",
                 "queries": len(queries), "latency": {}, "throughput": {}, "quality": {}}
    for phase in ("idle", "contended"):
        with Neighbour(n) if phase == "contended" else contextlib.nullcontext():
            for (r, t), enc in encoders.items():
                key = f"{r} query_threads={t}"
                out["latency"].setdefault(key, {})[phase] = m = query_latency(enc, queries, args.budget_s)
                log.info("%s %s: %s", phase, key, m)
    for r in RUNTIMES:
        out["throughput"][r] = m = throughput(encoders[(r, 1)], texts)
        log.info("throughput %s: %s", r, m)
    if not args.skip_quality:
        for r in RUNTIMES:
            out["quality"][r] = m = quality(args.data, r, args.tuned)
            log.info("quality %s: %s", r, m)

    lat, thr = out["latency"], out["throughput"]
    base = lat["torch-fp32 query_threads=1"]["idle"]["p50_ms"]
    out["ratios"] = {
        "query_p50_torch_over_onnx_int8_idle": round(base / lat["onnx-int8 query_threads=1"]["idle"]["p50_ms"], 2),
        "passages_per_s_onnx_int8_over_torch": round(thr["onnx-int8"]["passages_per_s"] / thr["torch-fp32"]["passages_per_s"], 2),
        **{f"contended_over_idle_p50 {k}": round(v["contended"]["p50_ms"] / v["idle"]["p50_ms"], 2) for k, v in lat.items()},
    }
    write_atomic(args.output, json.dumps(out, indent=2) + "\n")
    sys.stdout.write(json.dumps(out["ratios"], indent=2) + "\n")  # the script's report


if __name__ == "__main__":
    main()
