"""What the reranking stage costs per query on this CPU: a MiniLM-L6 cross-encoder scoring the first
20 / 50 / 100 fused SciFact hits of each query, at 1 and 2 threads.

    python -m eval.benchmarks.rerank_latency [--reranker DIR] [--queries 40] [--output docs/benchmarks/rerank-latency.json]

Without --reranker, a cross-encoder is made from the packaged MiniLM with a fresh one-logit head: its
cost does not depend on its weights. The passages are SciFact abstracts (one per document), read at
``rerank.max_length`` (256) tokens; the texts are what the searcher would give it.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from eval.report import write_atomic
from eval.runner import open_searcher
from eval.stats import pct
from rag.datasets import load_dataset
from rag.rerank import CrossEncoderReranker
from rag.settings import Mode, load_settings
from rag.timing import Timer

log = logging.getLogger(__name__)


def fresh_cross_encoder(folder: Path) -> Path:
    from sentence_transformers.cross_encoder import CrossEncoder

    from rag.encoders.folder import default_model_path

    CrossEncoder(default_model_path(), num_labels=1, local_files_only=True).save_pretrained(str(folder))
    return folder


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=Path("../shared/data/scifact"))
    ap.add_argument("--reranker", type=Path)
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--depths", default="20,50,100")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--output", type=Path, default=Path("docs/benchmarks/rerank-latency.json"))
    args = ap.parse_args()
    settings = load_settings({"progress": False, "chunking": {"enabled": False}})
    ds = load_dataset(args.dataset, "test")
    searcher = open_searcher(ds, settings)
    queries = list(ds.queries.values())[: args.queries]
    depths = [int(d) for d in args.depths.split(",")]
    texts = []
    for q in queries:
        fused = searcher.fuse(searcher.candidates(q, Mode.hybrid, None, Timer()), Mode.hybrid)[: max(depths)]
        got = searcher.reader.passages.get([h.passage_id for h in fused])
        texts.append([got[h.passage_id].indexed_text for h in fused])
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.reranker or fresh_cross_encoder(Path(tmp) / "ce")
        out: dict = {"reranker": str(args.reranker or "packaged MiniLM, fresh head"), "queries": len(queries),
                     "max_length": settings.rerank.max_length, "results": {}}
        for threads in [int(t) for t in args.threads.split(",")]:
            rr = CrossEncoderReranker(str(folder), settings.rerank.max_length, settings.rerank.batch_size, "cpu", threads)
            rr.score(queries[0], texts[0][:8])  # warm-up
            for k in depths:
                ms = []
                for q, t in zip(queries, texts, strict=True):
                    t0 = time.perf_counter()
                    rr.score(q, t[:k])
                    ms.append((time.perf_counter() - t0) * 1000)
                out["results"][f"threads={threads},k={k}"] = {"p50_ms": round(pct(ms, 50) or 0, 1),
                                                              "p95_ms": round(pct(ms, 95) or 0, 1),
                                                              "pairs_per_s": round(k * len(ms) / (sum(ms) / 1000), 1)}
                log.info("threads %d, k %d: %s", threads, k, out["results"][f"threads={threads},k={k}"])
    write_atomic(args.output, json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
