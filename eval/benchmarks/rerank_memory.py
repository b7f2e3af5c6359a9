"""Peak memory of the reranker's training step on this CPU: the plain listwise loss (all of a step's
pairs in one forward pass) vs the cached one (``RerankTrainSettings.mini_batch_size`` pairs a pass,
same loss and gradients), each in a fresh process, on the training run's shape: 16 SciFact train
queries a step, each with its positive and 3 other abstracts, 256 tokens, AdamW.

    python -m eval.benchmarks.rerank_memory [--steps 3] [--chunks none,16] [--output docs/benchmarks/rerank-memory.json]

Peak RSS is the process's maximum resident set (``ru_maxrss``) after the steps, the model load
included; seconds are per step.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

from eval.report import write_atomic

log = logging.getLogger(__name__)
SCIFACT = Path("../shared/data/scifact")


def one(steps: int, chunk: int | None, queries: int = 16, negatives: int = 3) -> dict:
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    from rag.datasets import load_dataset
    from rag.encoders.folder import default_model_path
    from training.reranker import RerankTrainSettings, _Listwise

    s = RerankTrainSettings()
    ds = load_dataset(SCIFACT, "train")
    texts = [d["text"] for d in map(json.loads, ds.corpus.open())]
    rng = random.Random(13)
    qids = sorted(ds.queries)
    model = CrossEncoder(default_model_path(), num_labels=1, max_length=s.max_length, device="cpu", local_files_only=True)
    model.train()
    loss_fn = _Listwise(model, chunk)
    opt = torch.optim.AdamW(model.parameters(), lr=s.learning_rate)
    seconds = []
    for _ in range(steps):
        batch = rng.sample(qids, queries)
        inputs = [[ds.queries[q] for q in batch]] + [[rng.choice(texts) for _ in batch] for _ in range(1 + negatives)]
        t = time.perf_counter()
        opt.zero_grad()
        loss_fn(inputs, None).backward()
        opt.step()
        seconds.append(time.perf_counter() - t)
    return {"mini_batch_size": chunk, "steps": steps, "pairs_a_step": queries * (1 + negatives),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "seconds_a_step": round(sum(seconds[1:]) / max(1, len(seconds) - 1), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--chunks", default="none,16", help="mini_batch_size values; none = the plain loss")
    ap.add_argument("--output", type=Path, default=Path("docs/benchmarks/rerank-memory.json"))
    ap.add_argument("--one", help=argparse.SUPPRESS)  # run one configuration in this process (a child)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.one is not None:
        sys.stdout.write(json.dumps(one(args.steps, None if args.one == "none" else int(args.one))) + "\n")
        return
    rows = []
    for chunk in args.chunks.split(","):
        out = subprocess.run([sys.executable, "-m", "eval.benchmarks.rerank_memory", "--steps", str(args.steps), "--one", chunk],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        log.info("%s", rows[-1])
    write_atomic(args.output, json.dumps({"rows": rows}, indent=2) + "\n")
    log.info("wrote %s", args.output)


if __name__ == "__main__":
    main()
