"""The embedded generator's numeric variants on this CPU, through the whole answer pipeline on
squad-dev (the default ``both`` mode), in one run:

    python -m eval.benchmarks.generator_dtype [--variants float32 bfloat16 bfloat16-packed] [--parts dev dev2 test]
                                              [--output docs/results/generator-dtype.json]

Variants: ``float32``; ``bfloat16`` with torch's plain matmul (``generator.pack_weights=false``);
``bfloat16-packed``, its weights prepacked for oneDNN (the default). bfloat16 is what
``generator.dtype=auto`` picks on a CPU with native bfloat16 matrix instructions (AMX or
AVX512-BF16; this machine has both); elsewhere auto stays float32. Parts:
``eval.benchmarks.answer_modes.three_parts`` (dev, dev2 where choices are made, test 300). Each
part runs every variant in turn, so the latencies compared are measured minutes apart, not hours.
The span likelihood and the copy generation both run on the generator, so both change with it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from eval.answers import evaluate_config
from eval.benchmarks.answer_modes import answer_cells, squad_parts
from eval.report import write_with_table
from rag.factory import make_answerer, make_generator

VARIANTS: dict[str, dict[str, object]] = {"float32": {"dtype": "float32"}, "bfloat16": {"dtype": "bfloat16", "pack_weights": False},
                                         "bfloat16-packed": {"dtype": "bfloat16", "pack_weights": True}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=Path("../shared/data/squad-dev"))
    ap.add_argument("--test-sample", type=int, default=300)
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--parts", nargs="+", choices=("dev", "dev2", "test"), default=["dev", "dev2", "test"])
    ap.add_argument("--output", type=Path, default=Path("docs/results/generator-dtype.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sp = squad_parts(args.dataset, args.test_sample)
    settings, ds, gold, searcher, split = sp.settings, sp.ds, sp.gold, sp.searcher, sp.split
    answerers = {}
    for name in args.variants:
        s = settings.model_copy(update={"generator": settings.generator.model_copy(update=VARIANTS[name])})
        answerers[name] = make_answerer(s, searcher=searcher, generator=make_generator(s))
        answerers[name].answer("warm-up: who wrote the first answer?", k=settings.answer.max_passages)
    configs = []
    for part in args.parts:
        for name, answerer in answerers.items():
            logging.info("%s / %s (%d questions)", name, part, len(split[part]))
            c = evaluate_config(answerer, replace(ds, queries=split[part]), gold, True, settings.answer.max_passages)
            configs.append({"variant": name, "part": part, **c})
    report = {"dataset": str(args.dataset), "parts": {p: len(split[p]) for p in args.parts}, "configs": configs}
    write_with_table(report, args.output, markdown(report))
    sys.stdout.write(markdown(report))


def markdown(report: dict) -> str:
    lines = [f"squad-dev, default `both` answers, SmolLM2-135M on this CPU (1 thread) by generator variant; parts {report['parts']}",
             "", "| variant | part | EM | F1 | contains gold | p50 ms | p95 ms |", "|---|---|---:|---:|---:|---:|---:|"]
    for c in report["configs"]:
        lines.append(f"| {c['variant']} | {c['part']} | {answer_cells(c)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
