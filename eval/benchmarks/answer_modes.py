"""The answer ablation on squad-dev through the whole pipeline (retrieval over all 1,204 paragraphs,
the embedded SmolLM2-135M on this CPU): what the generator reads and how the answer is made, one row
each, on the same questions.

    python -m eval.benchmarks.answer_modes [--test-sample 300] [--output docs/results/answer-modes-squad.json]

Parts: the dev part of squad-dev (the articles ``eval.benchmarks.evidence.is_dev`` picks, on which
the defaults were chosen) and a fixed sample of the rest (the first N test questions by a hash of
their id), reported separately. Rows:

- ``passages``: today's prompt before this work: five passages, question before and after;
- ``evidence``: the best 3 evidence sentences, one-shot short-phrase prompt;
- ``sentence``: the best sentence alone, copy-the-words prompt (the model's raw words);
- ``extractive sentence`` / ``extractive span``: no generator;
- ``both`` (the default): the typed span when the question's wording gives one, else the model's
  copy matched back onto the sentence, else the sentence; abstains below the evidence threshold.

Each finished (row, part) is journaled (``OUTPUT.partial.jsonl``), so a run cut short resumes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eval.answers import Journal, evaluate_config, load_answers
from eval.benchmarks.evidence import is_dev
from eval.report import write_with_table
from eval.runner import open_searcher
from rag.datasets import load_dataset
from rag.evidence import NOT_FOUND
from rag.factory import make_answerer, make_generator
from rag.settings import load_settings

#: (row, answer settings, parts it runs on): the passages prompt takes ~6 s a question here, and is
#: the baseline, not a choice, so it runs on the test sample only
ROWS: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [  # cheapest first, so a run cut short has the default's figures
    ("extractive sentence", {"mode": "extractive", "extractive_span": False}, ("dev", "test")),
    ("extractive span", {"mode": "extractive"}, ("dev", "test")),
    ("both (default): span, else grounded copy, else sentence", {"mode": "both", "context": "sentence"}, ("dev", "test")),
    ("best sentence, copy the words", {"mode": "generative", "context": "sentence"}, ("dev", "test")),
    ("evidence sentences, one-shot short phrase", {"mode": "generative", "context": "evidence"}, ("dev", "test")),
    ("passages (today's prompt)", {"mode": "generative", "context": "passages"}, ("test",)),
]


def _first_word(row: str) -> str:
    return row.split(" ")[0]


def parts(ds, test_sample: int, dev_sample: int | None = None) -> dict[str, dict[str, str]]:
    dev = [q for q in ds.queries if is_dev(next(iter(ds.qrels[q])))]
    rest = sorted(set(ds.queries) - set(dev), key=lambda q: hashlib.sha1(q.encode()).hexdigest())
    return {"dev": {q: ds.queries[q] for q in dev[:dev_sample]}, "test": {q: ds.queries[q] for q in rest[:test_sample]}}


def three_parts(ds, test_sample: int) -> dict[str, dict[str, str]]:
    """``dev`` (where the span rules were written), ``dev2`` (the held-out questions outside the test
    sample: where later choices are made) and ``test`` (the first ``test_sample`` held-out ones, the
    sample this ablation reports)."""
    split = parts(ds, len(ds.queries))
    rest = list(split["test"].items())
    return {"dev": split["dev"], "dev2": dict(rest[test_sample:]), "test": dict(rest[:test_sample])}


@dataclass
class SquadParts:
    """What the squad-dev answer benchmarks start from (``squad_parts``)."""

    settings: Any
    ds: Any
    gold: dict[str, list[str]]
    searcher: Any
    split: dict[str, dict[str, str]]


def squad_parts(dataset: Path, test_sample: int) -> SquadParts:
    """The default settings (no progress bars), squad-dev's dev split, its gold answers, a searcher
    over its cached index, and its ``three_parts``."""
    settings = load_settings({"progress": False})
    ds = load_dataset(dataset, "dev")
    return SquadParts(settings, ds, load_answers(ds), open_searcher(ds, settings), three_parts(ds, test_sample))


def answer_cells(c: dict) -> str:
    """A config's EM, F1, contains-gold, p50 and p95 as the last cells of a markdown row."""
    return (f"{c['exact_match']:.3f} | {c['f1']:.3f} | {c['contains_gold']:.3f} | "
            f"{c['latency_ms']['p50']:.0f} | {c['latency_ms']['p95']:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=Path("../shared/data/squad-dev"))
    ap.add_argument("--test-sample", type=int, default=300)
    ap.add_argument("--dev-sample", type=int, help="at most this many dev questions (default: all; fewer for a smoke run)")
    ap.add_argument("--output", type=Path, default=Path("docs/results/answer-modes-squad.json"))
    ap.add_argument("--only", nargs="+", choices=sorted({_first_word(r[0]) for r in ROWS}),
                    help="re-run these rows (by first word); the others are kept from --output if it exists")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = load_settings({"progress": False})
    ds = load_dataset(args.dataset, "dev")
    gold = load_answers(ds)
    searcher = open_searcher(ds, settings)
    generator = make_generator(settings)
    split = parts(ds, args.test_sample, args.dev_sample)
    journal = Journal(args.output.with_suffix(".partial.jsonl"),
                      {"dataset": str(args.dataset), "test_sample": args.test_sample, "dev_sample": args.dev_sample,
                       "rows": [r[:2] for r in ROWS]}, key=lambda c: (c["row"], c["part"]))
    done = journal.load()
    if not done:
        journal.start()
        if args.only and args.output.exists():  # the rows not asked for, from the last full run
            for c in json.loads(args.output.read_text())["configs"]:
                if _first_word(c["row"]) not in args.only:
                    done[(c["row"], c["part"])] = c
                    journal.append(c)
    for name, answer, row_parts in ROWS:
        if args.only and _first_word(name) not in args.only:
            continue
        row_settings = settings.model_copy(update={"answer": type(settings.answer).model_validate({**settings.answer.model_dump(), **answer})})
        answerer = make_answerer(row_settings,
                                 searcher=searcher, generator=generator)
        for part in row_parts:
            if (name, part) in done:
                continue
            logging.info("%s / %s (%d questions)", name, part, len(split[part]))
            c = evaluate_config(answerer, replace(ds, queries=split[part]), gold, True, settings.answer.max_passages, progress=True)
            done[(name, part)] = c = {"row": name, "part": part, **c}
            journal.append(c)
    configs = [done[(name, part)] for name, _, row_parts in ROWS for part in row_parts if (name, part) in done]
    generator_name = f"{settings.generator.backend.value}:{settings.generator.model or 'SmolLM2-135M-Instruct'}"
    report = {"dataset": str(args.dataset), "generator": generator_name, "test_sample": args.test_sample,
              "parts": {p: len(q) for p, q in split.items()}, "configs": configs}
    write_with_table(report, args.output, markdown(report))
    journal.path.unlink(missing_ok=True)
    sys.stdout.write(markdown(report))


def markdown(report: dict) -> str:
    lines = [f"squad-dev answers, generator {report['generator']} on CPU; dev part {report['parts']['dev']} questions, "
             f"test sample {report['parts']['test']}", "",
             "| row | part | EM | F1 | contains gold | evidence recall | citations valid | citation precision | abstain | p50 ms | p95 ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in report["configs"]:
        abstain = sum(a["answer"] == NOT_FOUND for a in c["answers"]) / max(len(c["answers"]), 1)
        lines.append(f"| {c['row']} | {c['part']} | {c['exact_match']:.3f} | {c['f1']:.3f} | {c['contains_gold']:.3f} | "
                     f"{c['evidence_recall']:.3f} | {c['citations_valid']:.3f} | {c['citation_precision']:.3f} | {abstain:.3f} | "
                     f"{c['latency_ms']['p50']:.0f} | {c['latency_ms']['p95']:.0f} |")
    return "\n".join(lines) + "\n"

if __name__ == "__main__":
    main()
