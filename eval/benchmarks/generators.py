"""The embedded generator (SmolLM2-135M-Instruct) on its two in-process runtimes, in one run:
transformers (`local`) in float32 and in bfloat16 (what ``generator.dtype=auto`` picks on a CPU
with native bfloat16 matrix instructions; its weights prepacked for oneDNN, the default, and with
torch's plain matmul, ``generator.pack_weights=false``) vs CTranslate2 int8 (`ctranslate2`), at the
same thread counts.

    python -m eval.benchmarks.generators [--data ../shared/data/squad-dev] [--prompts 50] [--threads 1,2]
                                         [--output docs/benchmarks/generators.json]

Prompts: squad-dev questions (every 15th, so they span articles), each with its gold paragraph as
the only passage, in the project's prompt (question before and after the passage).
1. One request at a time, each decoding exactly --max-tokens tokens, for every --threads count:
   decode tokens/s (tokens after the first over the time after the first), first-token latency,
   whole-request seconds, over the first --speed prompts, greedy;
2. four concurrent requests (batched by the backend's workers: CTranslate2 runs its default
   replicas, the CPU cores up to 4) vs the same four one after another, the same fixed length;
3. greedy agreement with transformers float32 over --prompts prompts: the share of identical outputs, and EM / token F1 /
   contains-gold (SQuAD normalisation) of each runtime's answers.
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
from typing import Any

from eval.answers import contains, exact_match, load_answers, token_f1
from eval.report import write_atomic
from indexer.datasets import corpus_documents
from rag.datasets import load_dataset
from rag.generators.base import GenerationParams
from rag.generators.ct2 import CT2Generator
from rag.generators.local import LocalGenerator
from rag.prompts import PromptBuilder
from rag.types import Passage

log = logging.getLogger(__name__)


def load_prompts(data: Path, n: int) -> list[tuple[str, Passage, list[str]]]:
    """Every 15th dev question (so they span articles), its first judged paragraph and its answers."""
    ds = load_dataset(data, "dev")
    answers = load_answers(ds)
    corpus = {d.id: d for d in corpus_documents(data)}
    out = []
    for qid in list(ds.qrels)[::15][:n]:
        d = corpus[next(iter(ds.qrels[qid]))]
        out.append((ds.queries[qid], Passage(d.id, d.id, 0, d.title, d.text), answers[qid]))
    return out


def speed(gen, prompts: list, p: GenerationParams) -> dict:
    decode, first, whole = [], [], []
    for m in prompts:
        g = gen.generate(m, p)
        decode.append(g.tokens_per_s)
        first.append(g.first_token_s or 0.0)
        whole.append(g.seconds)
    med = statistics.median
    return {"decode_tok_s": round(med(decode), 2), "first_token_s": round(med(first), 3), "request_s": round(med(whole), 3)}


def concurrency(gen, prompts: list, p: GenerationParams) -> dict:
    """Total tokens/s of ``prompts`` one after another, then all at once (the backend batches them)."""
    t, n = time.perf_counter(), 0
    for m in prompts:
        n += gen.generate(m, p).tokens_out
    seq = n / (time.perf_counter() - t)
    t = time.perf_counter()
    with ThreadPoolExecutor(len(prompts)) as pool:
        n = sum(g.tokens_out for g in pool.map(lambda m: gen.generate(m, p), prompts))
    conc = n / (time.perf_counter() - t)
    return {"sequential_tok_s": round(seq, 2), "concurrent_tok_s": round(conc, 2), "ratio": round(conc / seq, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/squad-dev"))
    ap.add_argument("--prompts", type=int, default=50)
    ap.add_argument("--speed", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--threads", default="1,2", help="thread counts to measure speed with (the answers use the first)")
    ap.add_argument("--output", type=Path, default=Path("docs/benchmarks/generators.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runtimes = {"transformers-fp32": lambda t: LocalGenerator(threads=t, max_batch=8, max_wait_ms=20, dtype="float32"),
                "transformers-bf16": lambda t: LocalGenerator(threads=t, max_batch=8, max_wait_ms=20, dtype="bfloat16"),
                "transformers-bf16-plain-matmul": lambda t: LocalGenerator(threads=t, max_batch=8, max_wait_ms=20, dtype="bfloat16",
                                                                           pack_weights=False),
                "ctranslate2-int8": lambda t: CT2Generator(threads=t, max_batch=8, max_wait_ms=20, compute_type="int8")}
    threads = [int(t) for t in args.threads.split(",")]
    items = load_prompts(args.data, args.prompts)
    # speed: every request decodes exactly max_tokens (no early end), so rates compare
    fixed = GenerationParams(max_tokens=args.max_tokens, min_tokens=args.max_tokens, repetition_penalty=1.1)
    p = GenerationParams(max_tokens=args.max_tokens, repetition_penalty=1.1)
    out: dict = {"threads": threads, "max_tokens": args.max_tokens, "prompts": len(items), "runtimes": {}}
    texts: dict[str, list[str]] = {}
    golds = [a for _, _, a in items]
    for name, make in runtimes.items():
        row: dict[str, Any] = {}
        out["runtimes"][name] = row
        for t in threads:
            gen = make(t)
            gen.load()
            builder = PromptBuilder(gen.count_tokens, gen.render)
            prompts = [builder.build(q, [passage]).messages for q, passage, _ in items]
            gen.generate(prompts[0], fixed)  # warm-up
            row[f"threads={t}"] = {"single": speed(gen, prompts[: args.speed], fixed),
                                   "four_concurrent": concurrency(gen, prompts[:4], fixed), "workers": gen.workers}
            if t == threads[0]:
                texts[name] = [gen.generate(m, p).text.strip() for m in prompts]
                row["answers"] = {metric.__name__: round(statistics.mean(metric(x, g) for x, g in zip(texts[name], golds, strict=True)), 3)
                                  for metric in (exact_match, token_f1, contains)}
            log.info("%s threads=%d: %s", name, t, row)
            gen.close()
    base = texts.pop("transformers-fp32")
    out["greedy_identical_to_transformers_fp32"] = {
        n: round(sum(x == y for x, y in zip(base, t, strict=True)) / len(base), 3) for n, t in texts.items()}
    out["examples"] = [{"question": q, "transformers-fp32": x, **{n: t[i] for n, t in texts.items()}}
                       for i, ((q, _, _), x) in enumerate(list(zip(items, base, strict=True))[:5])]
    r = out["runtimes"]

    def best(name: str, key: str, part: str = "single") -> float:
        return max(v[part][key] for k, v in r[name].items() if k.startswith("threads="))

    ratios: dict[str, Any] = {
        "decode_tok_s_over_transformers_fp32_same_threads": {n: {
            k: round(r[n][k]["single"]["decode_tok_s"] / r["transformers-fp32"][k]["single"]["decode_tok_s"], 2)
            for k in r["transformers-fp32"] if k.startswith("threads=")} for n in texts},
        "decode_tok_s_each_at_its_best_over_transformers_fp32": {
            n: round(best(n, "decode_tok_s") / best("transformers-fp32", "decode_tok_s"), 2) for n in texts},
        "four_concurrent_over_sequential": {n: {k: v["four_concurrent"]["ratio"] for k, v in rr.items() if k.startswith("threads=")}
                                            for n, rr in r.items()},
    }
    out["ratios"] = ratios
    write_atomic(args.output, json.dumps(out, indent=2) + "\n")
    sys.stdout.write(json.dumps({k: out[k] for k in ("ratios", "greedy_identical_to_transformers_fp32")}, indent=2) + "\n")  # the script's report


if __name__ == "__main__":
    main()
