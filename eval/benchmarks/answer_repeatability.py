"""Whether a question gets the same default answer whatever the generator answered before it: the
squad-dev test sample (300) answered by a fresh generator, then by another that first answered the
dev part (172), both in one run; reports how many answers differ, and each pass's figures.

    python -m eval.benchmarks.answer_repeatability [--dtype bfloat16] [--output docs/results/answer-repeatability.json]

In float32 the answers never depended on history. In bfloat16 they did (6 of 300) while the
generator's prefix cache cropped its cached start out of a longer pass, whose rounding followed that
pass's length; it now rebuilds the start on its own.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

from eval.answers import evaluate_config
from eval.benchmarks.answer_modes import squad_parts
from eval.report import write_atomic
from rag.factory import make_answerer
from rag.generators.local import LocalGenerator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=Path("../shared/data/squad-dev"))
    ap.add_argument("--test-sample", type=int, default=300)
    ap.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"))
    ap.add_argument("--output", type=Path, default=Path("docs/results/answer-repeatability.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sp = squad_parts(args.dataset, args.test_sample)
    settings, ds, gold, searcher, split = sp.settings, sp.ds, sp.gold, sp.searcher, sp.split
    test = split["test"]
    k = settings.answer.max_passages
    answers, passes = {}, {}
    for name, before in (("fresh", None), ("after the dev part", split["dev"])):
        gen = LocalGenerator(threads=1, dtype=args.dtype)
        answerer = make_answerer(settings, searcher=searcher, generator=gen)
        try:
            if before:
                evaluate_config(answerer, replace(ds, queries=before), gold, True, k, progress=False)
            c = evaluate_config(answerer, replace(ds, queries=test), gold, True, k, progress=False)
        finally:
            gen.close()
        answers[name] = [r["answer"] for r in c["answers"]]
        passes[name] = {key: c[key] for key in ("exact_match", "f1", "contains_gold", "latency_ms")}
    a, b = answers.values()
    differ = [{"question": r["question"], **dict(zip(answers, pair, strict=True))}
              for r, *pair in zip(c["answers"], a, b, strict=True) if pair[0] != pair[1]]
    report = {"dtype": args.dtype, "questions": len(a), "differ": len(differ), "passes": passes, "examples": differ[:10]}
    write_atomic(args.output, json.dumps(report, indent=2) + "\n")
    sys.stdout.write(json.dumps({k: report[k] for k in ("dtype", "questions", "differ", "passes")}, indent=2) + "\n")  # the report


if __name__ == "__main__":
    main()
