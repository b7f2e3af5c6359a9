"""Local generator throughput on CPU (default SmolLM2-135M-Instruct).

    python -m eval.benchmarks.generation [--max-tokens 64] [--output docs/benchmarks/generation.json]

1. tokens/s of the `local` backend (one request) against a bare ``model.generate`` on the same
   prompt, same greedy settings, interleaved runs (goal: >= 0.9x);
2. total tokens/s with 4 concurrent requests (batched by the backend's queue) against the same 4
   requests one after another (goal: >= 2x).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import torch

from eval.benchmarks.generators import concurrency
from rag.generators.base import GenerationParams
from rag.generators.local import LocalGenerator
from rag.prompts import PromptBuilder
from rag.types import Passage

QUESTIONS = ["How often should a snake plant be watered in winter?", "What causes blossom end rot in tomatoes?",
             "Which nematode controls vine weevil larvae?", "What soil pH do blueberries need?"]
PASSAGE = Passage("p#0", "p", 0, "Notes", "Water succulents only when the soil is dry. " * 12)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--output", type=Path, default=Path("docs/benchmarks/generation.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    gen = LocalGenerator(threads=args.threads, max_batch=8, max_wait_ms=20)
    gen.load()
    # min_new_tokens = max_tokens: every run decodes the same number of tokens, so rates compare
    p = GenerationParams(max_tokens=args.max_tokens, repetition_penalty=1.0)
    gen.model.generation_config.min_new_tokens = args.max_tokens
    builder = PromptBuilder(gen.count_tokens, gen.render)
    prompts = [builder.build(q, [PASSAGE]).messages for q in QUESTIONS]
    text = gen.render(prompts[0])
    enc = gen.tokenizer(text, return_tensors="pt", add_special_tokens=False)

    def bare() -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            out = gen.model.generate(**enc, max_new_tokens=args.max_tokens, min_new_tokens=args.max_tokens,
                                     do_sample=False, pad_token_id=gen.tokenizer.pad_token_id)
        return (out.shape[1] - enc["input_ids"].shape[1]) / (time.perf_counter() - t)

    def ours() -> float:
        t = time.perf_counter()
        g = gen.generate(prompts[0], p)
        return g.tokens_out / (time.perf_counter() - t)

    bare(), ours()  # warm-up
    bare_rates, our_rates = [], []
    for _ in range(args.repeats):
        bare_rates.append(bare())
        our_rates.append(ours())

    runs = [concurrency(gen, prompts, p) for _ in range(args.repeats)]
    seq, conc = [r["sequential_tok_s"] for r in runs], [r["concurrent_tok_s"] for r in runs]
    med = statistics.median
    out = {
        "model": str(gen.path), "device": gen.device, "threads": torch.get_num_threads(),
        "prompt_tokens": int(enc["input_ids"].shape[1]), "new_tokens": args.max_tokens, "repeats": args.repeats,
        "single_request": {"bare_generate_tok_s": round(med(bare_rates), 2), "local_backend_tok_s": round(med(our_rates), 2),
                           "ratio": round(med(our_rates) / med(bare_rates), 3)},
        "four_requests": {"sequential_tok_s": round(med(seq), 2), "concurrent_tok_s": round(med(conc), 2),
                          "ratio": round(med(conc) / med(seq), 3)},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    sys.stdout.write(json.dumps(out, indent=2) + "\n")  # the script's report


if __name__ == "__main__":
    main()
