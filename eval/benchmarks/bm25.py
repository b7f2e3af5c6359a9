"""BM25 backends side by side in one run: Lucene (pyserini's jar), bm25s and rank-bm25, on the
same analysed text (title + text, one passage per document) of SciFact, Cranfield, CISI (test) and
squad-dev (dev).

    python -m eval.benchmarks.bm25 [--data ../shared/data] [--output docs/benchmarks/bm25.json]

Per backend and dataset: nDCG@10 and Recall@100 (pytrec_eval), index build seconds, index size on
disk, a fresh process's time to its first result and its resident memory (the JVM included for
Lucene), and search latency p50/p95 for k=100 (one thread, after a warm-up pass over the queries;
the passage fetch is not included).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from eval.metrics import evaluate
from eval.report import write_atomic
from eval.stats import pct
from indexer.datasets import corpus_documents
from rag.bm25 import BM25Backend, build_bm25, open_bm25
from rag.datasets import load_dataset
from rag.types import indexed_text

log = logging.getLogger(__name__)
DATASETS = {"scifact": "test", "cranfield": "test", "cisi": "test", "squad-dev": "dev"}


# a new process: seconds from start to the first result (imports, a JVM for Lucene, the open), and its
# resident memory then, against the same process without the index
FRESH = """
import json, resource, sys, time
t = time.perf_counter()
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * resource.getpagesize() / 2**20
from rag.bm25 import BM25Backend, open_bm25
base = rss()
index = open_bm25(BM25Backend(sys.argv[1]), sys.argv[2])
index.search('the effect of vitamin d on bone', 100)
sys.stdout.write(json.dumps({"first_result_s": round(time.perf_counter() - t, 2), "rss_mb": round(rss(), 1),
                            "rss_growth_mb": round(rss() - base, 1)}) + "\n")
"""


def size_mb(folder: Path) -> float:
    return round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20, 2)


def run(backend: BM25Backend, docs: list[tuple[str, str]], queries: dict[str, str], qrels, tmp: Path) -> dict:
    out = tmp / backend.value
    t = time.perf_counter()
    build_bm25(backend, docs, out, threads=1)
    build_s = time.perf_counter() - t
    fresh = json.loads(subprocess.run([sys.executable, "-c", FRESH, backend.value, str(out)], capture_output=True, text=True,
                                      check=True).stdout.strip().splitlines()[-1])
    index = open_bm25(backend, out)
    for q in queries.values():  # warm-up: Lucene's JIT, caches
        index.search(q, 100)
    run_, times = {}, []
    for qid, q in queries.items():
        t = time.perf_counter()
        hits = index.search(q, 100)
        times.append((time.perf_counter() - t) * 1000)
        run_[qid] = {h.passage_id: h.score for h in hits}
    m = evaluate(qrels, run_)
    return {"ndcg@10": round(m["ndcg@10"], 4), "recall@100": round(m["recall@100"], 4), "build_s": round(build_s, 2),
            "disk_mb": size_mb(out), "fresh_process": fresh,
            "search_ms": {"p50": pct(times, 50), "p95": pct(times, 95)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--output", type=Path, default=Path("docs/benchmarks/bm25.json"))
    ap.add_argument("--backends", default="lucene,bm25s,rank_bm25")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    backends = [BM25Backend(b) for b in args.backends.split(",")]
    out: dict = {"datasets": {}}
    for name, split in DATASETS.items():
        ds = load_dataset(args.data / name, split)
        docs = [(d.id, indexed_text(d.title, d.text)) for d in corpus_documents(ds.path)]
        row = out["datasets"][name] = {"documents": len(docs), "queries": len(ds.queries), "split": split}
        with tempfile.TemporaryDirectory() as tmp:
            for b in backends:
                row[b.value] = r = run(b, docs, ds.queries, ds.qrels, Path(tmp))
                log.info("%s %s: %s", name, b.value, r)
    write_atomic(args.output, json.dumps(out, indent=2) + "\n")
    for name, row in out["datasets"].items():  # the script's report
        sys.stdout.write(f"{name} " + json.dumps({b.value: [row[b.value]["ndcg@10"], row[b.value]["search_ms"]["p50"]] for b in backends}) + "\n")


if __name__ == "__main__":
    main()
