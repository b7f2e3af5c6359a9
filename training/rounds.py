"""`rag train --rounds N|auto`: rounds of fine-tuning in one command.

Round 1 trains the base model (hard negatives as asked: BM25, and the base model's own with
--dense-negatives). Every later round starts from the previous round's model and re-mines its hard
negatives with BM25 and that model (the false-negative filter on), so the negatives stay hard for
the model being trained. Every round is scored on the same held-out dev queries (carved from the
training queries with the same seed), and the best round is published.

``auto`` goes on while a round raises dev nDCG@10 by at least ``min_gain`` over the best so far, up
to ``max_rounds``. Each finished round is kept in ``.OUTPUT.rounds/round-K`` until the whole run
ends, so a run killed between (or during) rounds resumes at the first unfinished round. The
published folder is the best round's model with ``rounds.json`` and a model card listing every round.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rag.errors import InputError
from rag.settings import Settings
from training import mining
from training.trainer import check_output, publish

log = logging.getLogger(__name__)
METRIC = "cosine_ndcg@10"
MIN_DEV_QUERIES = 20  # fewer, and one query moves dev nDCG@10 by 0.05 or more: too coarse to decide


@dataclass
class RoundsResult:
    output: str
    best_round: int
    rounds: list[dict[str, Any]]
    stopped_because: str


def parse_rounds(value: str) -> int | None:
    """``auto`` -> None; a positive integer -> itself; anything else is the user's error."""
    if value.strip().lower() == "auto":
        return None
    try:
        n = int(value)
    except ValueError:
        raise InputError(f"--rounds {value!r}: give a number of rounds (1 or more) or auto") from None
    if n < 1:
        raise InputError(f"--rounds {n}: at least one round is needed (or auto)")
    return n


def run_rounds(
    settings: Settings, dataset: Path, output: Path, rounds: int | None, max_rounds: int = 5, min_gain: float = 0.002,
    mine_settings: mining.MiningSettings | None = None, train: Any = None, **training: Any,
) -> RoundsResult:
    """``rounds`` None means auto. ``training`` goes to each round's run_training (split, sources, ...);
    ``train`` replaces run_training (tests)."""
    from rag.factory import forget_encoders
    from training.job import run_training

    train = train or run_training
    check_output(output)
    if rounds is None and set(training.get("sources", ("qrels",))) == {"qrels"} and training.get("dev_by", "query") == "query":
        from rag.datasets import load_dataset  # known before any training

        queries = len(load_dataset(dataset, training.get("split", "train"), training.get("qrels_file")).qrels)
        _check_dev_size(max(1, int(queries * training.get("dev_fraction", 0.1))))
    limit = rounds if rounds is not None else max_rounds
    if limit < 1:
        raise InputError("--max-rounds must be at least 1")
    work = output.parent / f".{output.name}.rounds"
    work.mkdir(parents=True, exist_ok=True)
    model = settings.encoder.model
    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    stopped = f"ran the {limit} round(s) asked for" if rounds is not None else f"reached --max-rounds {limit}"
    for k in range(1, limit + 1):
        out_k = work / f"round-{k}"
        report_file = out_k / "training_report.json"
        if report_file.is_file():
            log.info("round %d finished in an earlier run: reusing %s", k, out_k)
        else:
            # later rounds mine with BM25 and the model being trained, whatever round 1 used
            mine = mine_settings if k == 1 or mine_settings is None else replace(mine_settings, dense=True, filter=True)
            s_k = settings.model_copy(update={"encoder": settings.encoder.model_copy(update={"model": model})})
            log.info("round %d of %s: from %s", k, rounds or f"auto (at most {limit})", model or "the packaged base model")
            train(s_k, dataset, out_k, mine_settings=mine, **training)
            forget_encoders()  # this round's model is not needed again in this process
        report = json.loads(report_file.read_text())
        if rounds is None:
            _check_dev_size(int(report["dev_queries"]))
        entry = {"round": k, "from": model or "base", "dev_ndcg@10_before": report["metrics_before"].get(METRIC),
                 "dev_ndcg@10_after": report["metrics_after"].get(METRIC), "steps": report["steps"],
                 "seconds": report["seconds"], "peak_rss_mb": report["peak_rss_mb"], "path": str(out_k)}
        history.append(entry)
        gain = entry["dev_ndcg@10_after"] - (best["dev_ndcg@10_after"] if best else entry["dev_ndcg@10_before"])
        if best is None or entry["dev_ndcg@10_after"] > best["dev_ndcg@10_after"]:
            best = entry
        log.info("round %d: dev nDCG@10 %.4f -> %.4f (gain %+.4f over the best before it)", k,
                 entry["dev_ndcg@10_before"], entry["dev_ndcg@10_after"], gain)
        if rounds is None and k > 1 and gain < min_gain:
            stopped = f"round {k} raised dev nDCG@10 by {gain:+.4f}, under --min-gain {min_gain}"
            break
        model = str(out_k)
    assert best is not None
    return _publish(output, work, history, best, stopped)


def _check_dev_size(dev_queries: int) -> None:
    if dev_queries < MIN_DEV_QUERIES:
        raise InputError(f"the dev split has {dev_queries} queries; --rounds auto needs at least {MIN_DEV_QUERIES} to "
                         "decide whether a round helped: raise --dev-fraction or give a number of rounds")


def _publish(output: Path, work: Path, history: list[dict[str, Any]], best: dict[str, Any], stopped: str) -> RoundsResult:
    """The best round's model, with every round's figures, as ``output``; the rounds' folders go."""
    result = RoundsResult(str(output), best["round"], [{k: v for k, v in h.items() if k != "path"} for h in history], stopped)

    def fill(staging: Path) -> None:
        shutil.copytree(best["path"], staging)
        (staging / "rounds.json").write_text(json.dumps(result.__dict__, indent=2) + "\n")
        card = (staging / "README.md").read_text() if (staging / "README.md").is_file() else ""
        (staging / "README.md").write_text(card + _rounds_card(result))

    publish(output, fill, work)
    return result


def _rounds_card(r: RoundsResult) -> str:
    table = "\n".join(f"| {x['round']} | {x['dev_ndcg@10_before']:.4f} | {x['dev_ndcg@10_after']:.4f} | {x['steps']} | "
                      f"{x['seconds']:.0f} | {x['peak_rss_mb']:.0f} |{' kept' if x['round'] == r.best_round else ''}"
                      for x in r.rounds)
    return f"""
## Rounds (`rag train --rounds`)

Each round starts from the previous round's model and re-mines hard negatives with BM25 and that
model; all are scored on the same held-out dev queries. Stopped: {r.stopped_because}. This folder is round {r.best_round}.

| round | dev nDCG@10 before | after | steps | seconds | peak RSS MB |
|---:|---:|---:|---:|---:|---:|
{table}
"""
