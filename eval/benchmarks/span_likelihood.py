"""The generator's likelihood as a chooser among typed answer spans, on and off, on squad-dev through
the whole pipeline (the embedded SmolLM2-135M on this CPU).

    python -m eval.benchmarks.span_likelihood [--output docs/results/span-likelihood.json]

When the best sentence holds two or more candidates of the type a question asks for (names for
"who", quantities for "how many", ...), the extractive answer is the candidate with the best
closeness to the question's words, plus ``answer.evidence.span_likelihood`` times the generator's
mean token log-probability of the candidate as its answer on the copy prompt (0: closeness alone).

Parts: ``dev`` (the articles the span rules were written on), ``dev2`` (the held-out questions
outside the test sample: the part the weight was chosen on, since the rules fit dev) and ``test``
(the fixed sample of 300 the answer ablation reports). Rows: the default ``both`` mode with the
weight 0 and the default, on the same questions (``--mode extractive`` uses no generator, so
closeness alone).
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
from rag.evidence import EvidenceWeights
from rag.factory import make_answerer, make_generator

MODES = {"both (default)": {"mode": "both", "context": "sentence"}}  # extractive mode needs no generator: closeness alone


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=Path("../shared/data/squad-dev"))
    ap.add_argument("--test-sample", type=int, default=300)
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, EvidenceWeights().span_likelihood])
    ap.add_argument("--parts", nargs="+", choices=("dev", "dev2", "test"), default=["dev", "dev2", "test"])
    ap.add_argument("--output", type=Path, default=Path("docs/results/span-likelihood.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sp = squad_parts(args.dataset, args.test_sample)
    settings, ds, gold, searcher = sp.settings, sp.ds, sp.gold, sp.searcher
    generator = make_generator(settings)
    split = {p: sp.split[p] for p in args.parts}
    configs = []
    for row, answer in MODES.items():
        for w in args.weights:
            evidence = {**settings.answer.evidence.model_dump(), "span_likelihood": w}
            s = settings.model_copy(update={"answer": settings.answer.model_validate(
                {**settings.answer.model_dump(), **answer, "evidence": evidence})})
            answerer = make_answerer(s, searcher=searcher, generator=generator)
            for part, queries in split.items():
                logging.info("%s, weight %s / %s (%d questions)", row, w, part, len(queries))
                c = evaluate_config(answerer, replace(ds, queries=queries), gold, True, settings.answer.max_passages)
                configs.append({"row": row, "weight": w, "part": part, **c})
    report = {"dataset": str(args.dataset), "parts": {p: len(q) for p, q in split.items()}, "configs": configs}
    write_with_table(report, args.output, markdown(report))
    sys.stdout.write(markdown(report))


def markdown(report: dict) -> str:
    lines = [f"squad-dev, SmolLM2-135M on CPU: typed spans chosen by closeness (weight 0) or closeness + weight x the "
             f"generator's likelihood; parts {report['parts']}", "",
             "| row | weight | part | EM | F1 | contains gold | p50 ms | p95 ms |", "|---|---:|---|---:|---:|---:|---:|---:|"]
    for c in report["configs"]:
        lines.append(f"| {c['row']} | {c['weight']} | {c['part']} | {answer_cells(c)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
