"""The local generator's prefix cache on the prompt the default answer uses (the best sentence and
the copy instruction after two fixed examples), off vs on, alternating, in one run:

    python -m eval.benchmarks.prefix_cache [--data ../shared/data/squad-dev] [--rounds 2] [--output docs/benchmarks/prefix-cache.json]

Prompts: squad-dev dev-part questions (every 10th), each with the first sentence of its gold paragraph
that holds a gold answer (else its first sentence), built by the answer path's own PromptBuilder;
greedy, at most 16 tokens, stop at a line end (the answer path's settings). Per setting and round:
1. one request at a time: request seconds p50 / p95 over the prompts;
2. the prompts four at a time (batched by the backend): total wall seconds, and the ratio of one at a
   time's total to it;
3. whether every output equals the cache-off output.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from eval.answers import contains, load_answers
from eval.benchmarks.evidence import is_dev
from eval.report import write_atomic
from indexer.datasets import corpus_documents
from rag.datasets import load_dataset
from rag.evidence import sentence_spans
from rag.generators.base import GenerationParams
from rag.generators.local import LocalGenerator
from rag.prompts import Context, PromptBuilder
from rag.types import Passage


def items(data: Path, n: int) -> list[tuple[str, Passage]]:
    ds = load_dataset(data, "dev")
    answers, corpus = load_answers(ds), {d.id: d for d in corpus_documents(data)}
    out = []
    for qid in [q for q in ds.queries if is_dev(next(iter(ds.qrels[q])))][::10][:n]:
        d = corpus[next(iter(ds.qrels[qid]))]
        sentences = [d.text[a:b] for a, b in sentence_spans(d.text)]
        best = next((s for s in sentences if contains(s, answers[qid])), sentences[0])
        out.append((ds.queries[qid], Passage(d.id, d.id, 0, d.title, best)))
    return out


def measure(on: bool, prompts: list, p: GenerationParams) -> dict:
    gen = LocalGenerator(prefix_cache=on, max_batch=4, max_wait_ms=20)
    gen.load()
    gen.generate(prompts[0], p)  # warm-up (and, with the cache, its first fill)
    one, texts = [], []
    t0 = time.perf_counter()
    for m in prompts:
        g = gen.generate(m, p)
        one.append(g.seconds)
        texts.append(g.text)
    sequential = time.perf_counter() - t0
    t0 = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        batched = [g.text for g in pool.map(lambda m: gen.generate(m, p), prompts)]
    four = time.perf_counter() - t0
    gen.close()
    q = statistics.quantiles(one, n=20)
    return {"request_s": {"p50": round(statistics.median(one), 3), "p95": round(q[18], 3)},
            "one_at_a_time_total_s": round(sequential, 2), "four_at_a_time_total_s": round(four, 2),
            "four_over_one_at_a_time": round(sequential / four, 2), "texts": texts, "batched_texts": batched}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/squad-dev"))
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--output", type=Path, default=Path("docs/benchmarks/prefix-cache.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    probe = LocalGenerator()
    probe.load()
    builder = PromptBuilder(probe.count_tokens, probe.render, context=Context.sentence)
    prompts = [builder.build(q, [passage]).messages for q, passage in items(args.data, args.prompts)]
    probe.close()
    p = GenerationParams(max_tokens=16, stop=("\n",), repetition_penalty=1.1)
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    for _ in range(args.rounds):
        for name in ("off", "on"):
            runs[name].append(measure(name == "on", prompts, p))
    reference = runs["off"][0]["texts"]
    out = {"prompts": len(prompts), "rounds": args.rounds,
           "same_outputs": all(r["texts"] == reference and r["batched_texts"] == reference for rs in runs.values() for r in rs),
           "runs": {name: [{k: v for k, v in r.items() if not k.endswith("texts")} for r in rs] for name, rs in runs.items()}}
    write_atomic(args.output, json.dumps(out, indent=2) + "\n")
    sys.stdout.write(json.dumps(out, indent=2) + "\n")  # the script's report


if __name__ == "__main__":
    main()
