"""Fine-tune the bi-encoder with MultipleNegativesRankingLoss (in-batch negatives, plus mined hard
negatives when given), sentence-transformers' Trainer API, and an InformationRetrievalEvaluator on
a dev split carved from the training queries. The best checkpoint is kept; the output folder is
published only when training finished."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rag.errors import InputError
from training.data import Pair
from training.mining import Triplet

log = logging.getLogger(__name__)
EVAL_NAME = "dev"


@dataclass(frozen=True)
class TrainSettings:
    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    max_seq_length: int = 256
    seed: int = 13
    #: CachedMultipleNegativesRankingLoss with this mini-batch when the batch exceeds memory
    cached_mini_batch: int | None = None
    eval_steps: int | None = None  # None: evaluate once per epoch
    dev_corpus_candidates: int = 30  # dev corpus = gold passages + BM25 top-N of each dev query
    query_prefix: str = ""
    passage_prefix: str = ""


@dataclass
class TrainReport:
    output: str
    base_model: str
    pairs: int
    triplets: int
    dev_queries: int
    dev_corpus: int
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]
    steps: int
    seconds: float
    peak_rss_mb: float
    device: str
    settings: dict[str, Any]
    data: dict[str, Any]
    #: peak RSS (MB) when each stage ended: the stage where it jumps is where the memory went
    memory_mb: dict[str, float] | None = None


def check_output(output: Path) -> None:
    if output.exists() and any(output.iterdir()):
        raise InputError(f"output folder {str(output)!r} exists and is not empty; choose another (nothing was overwritten)")


def publish(output: Path, fill: Callable[[Path], None], leftovers: Path | None = None) -> None:
    """``fill`` writes the folder into ``.OUTPUT.staging``, which then becomes ``output`` in one rename
    (``output``, if there, is the empty folder checked at the start); ``leftovers`` (checkpoints, the
    rounds' folders) go after."""
    staging = output.parent / f".{output.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    fill(staging)
    if output.exists():
        output.rmdir()
    staging.rename(output)
    if leftovers is not None:
        shutil.rmtree(leftovers, ignore_errors=True)


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_checkpoint(memory: dict[str, float], stage: str) -> None:
    memory[stage] = round(peak_rss_mb(), 1)
    log.info("peak RSS after %s: %.0f MB", stage, memory[stage])


def train(
    base_model: str, output: Path, train_rows: list[Pair] | list[Triplet], dev_queries: dict[str, str],
    dev_corpus: dict[str, str], dev_relevant: dict[str, set[str]], s: TrainSettings, data_card: dict[str, Any],
    progress: bool = True, files: dict[str, str] | None = None, memory: dict[str, float] | None = None,
) -> TrainReport:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from datasets import Dataset as HFDataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
    )
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )
    from transformers import set_seed

    check_output(output)
    if not train_rows:
        raise InputError("no training examples")
    set_seed(s.seed)
    random.seed(s.seed)
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    try:
        model = SentenceTransformer(base_model, device=device, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any load failure is the user's model path
        raise InputError(f"cannot load base model {base_model!r}: {exc}") from exc
    model.max_seq_length = s.max_seq_length
    memory = memory if memory is not None else {}
    memory_checkpoint(memory, "model loaded")

    cols: dict[str, list[str]] = {"anchor": [], "positive": []}
    n_neg = len(train_rows[0].negatives) if isinstance(train_rows[0], Triplet) else 0
    for j in range(n_neg):
        cols[f"negative_{j + 1}"] = []
    for r in train_rows:
        cols["anchor"].append(s.query_prefix + r.query)
        cols["positive"].append(s.passage_prefix + r.positive)
        if isinstance(r, Triplet):
            for j in range(n_neg):
                cols[f"negative_{j + 1}"].append(s.passage_prefix + r.negatives[j]["text"])
    train_ds = HFDataset.from_dict(cols)

    evaluator = InformationRetrievalEvaluator(
        dev_queries, dev_corpus, dev_relevant, name=EVAL_NAME, batch_size=64, write_csv=False,
        query_prompt=s.query_prefix or None, corpus_prompt=s.passage_prefix or None,
    )
    before = {k.removeprefix(f"{EVAL_NAME}_"): v for k, v in evaluator(model).items()}
    log.info("dev before: ndcg@10 %.4f", before.get("cosine_ndcg@10", float("nan")))
    memory_checkpoint(memory, "dev evaluated")

    if s.cached_mini_batch:
        loss = CachedMultipleNegativesRankingLoss(model, mini_batch_size=s.cached_mini_batch)
    else:
        loss = MultipleNegativesRankingLoss(model)
    work = output.parent / f".{output.name}.checkpoints"
    steps_per_epoch = max(1, len(train_ds) // s.batch_size)
    eval_steps = s.eval_steps or steps_per_epoch
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work), num_train_epochs=s.epochs, per_device_train_batch_size=s.batch_size,
        learning_rate=s.learning_rate, warmup_steps=s.warmup_ratio, seed=s.seed, data_seed=s.seed,  # warmup below 1: a share
        batch_sampler=BatchSamplers.NO_DUPLICATES, eval_strategy="steps", eval_steps=eval_steps,
        save_strategy="steps", save_steps=eval_steps, save_total_limit=2, load_best_model_at_end=True,
        metric_for_best_model=f"eval_{EVAL_NAME}_cosine_ndcg@10", greater_is_better=True,
        logging_steps=max(1, eval_steps // 4), report_to="none", use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(), fp16=cuda and not torch.cuda.is_bf16_supported(),
        disable_tqdm=not progress, dataloader_drop_last=False,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train_ds, loss=loss, evaluator=evaluator)
    resume = work.is_dir() and any(p.name.startswith("checkpoint-") for p in work.iterdir())
    if resume:
        log.info("resuming from the last checkpoint in %s", work)
    t = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume or None)
    seconds = time.perf_counter() - t
    memory_checkpoint(memory, "trained")
    # the trainer evaluated every checkpoint; "after" is the kept (best) one's evaluation
    evals = [e for e in trainer.state.log_history if args.metric_for_best_model in e]
    best = max(evals, key=lambda e: e[args.metric_for_best_model]) if evals else None
    after = ({k.removeprefix(f"eval_{EVAL_NAME}_"): v for k, v in best.items() if k.startswith(f"eval_{EVAL_NAME}_")}
             if best else {k.removeprefix(f"{EVAL_NAME}_"): v for k, v in evaluator(model).items()})
    log.info("dev after: ndcg@10 %.4f", after.get("cosine_ndcg@10", float("nan")))

    report = TrainReport(
        output=str(output), base_model=str(base_model), pairs=len(train_rows),
        triplets=len(train_rows) if n_neg else 0, dev_queries=len(dev_queries), dev_corpus=len(dev_corpus),
        metrics_before=_round(before), metrics_after=_round(after), steps=int(result.global_step),
        seconds=round(seconds, 1), peak_rss_mb=round(peak_rss_mb(), 1), device=device,
        settings=asdict(s), data=data_card, memory_mb=memory,
    )

    def fill(staging: Path) -> None:
        model.save(str(staging))
        (staging / "training_report.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
        (staging / "README.md").write_text(model_card(report))
        for name, text in (files or {}).items():
            (staging / name).write_text(text)

    publish(output, fill, work)
    return report


def _round(d: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in d.items()}


def model_card(r: TrainReport) -> str:
    keys = ["cosine_ndcg@10", "cosine_mrr@10", "cosine_recall@10", "cosine_map@100"]
    rows = "\n".join(f"| {k.removeprefix('cosine_')} | {r.metrics_before.get(k, float('nan')):.4f} | "
                     f"{r.metrics_after.get(k, float('nan')):.4f} |" for k in keys)
    return f"""# Fine-tuned bi-encoder

Base model: `{r.base_model}`. Trained with sentence-transformers' `SentenceTransformerTrainer`,
MultipleNegativesRankingLoss (in-batch negatives{' + mined hard negatives' if r.triplets else ''}), NO_DUPLICATES batches.

## Data
```json
{json.dumps(r.data, indent=2)}
```
Training examples: {r.pairs} ({'triplets' if r.triplets else 'pairs'}). Dev: {r.dev_queries} queries carved from the
training queries, over a corpus of {r.dev_corpus} passages (their gold passages and BM25 candidates).

## Settings
```json
{json.dumps(r.settings, indent=2)}
```

## Dev metrics (InformationRetrievalEvaluator), before and after
| metric | before | after |
|---|---:|---:|
{rows}

{r.steps} steps in {r.seconds:.0f} s on {r.device}; peak memory {r.peak_rss_mb:.0f} MB{_memory_line(r.memory_mb)}.
"""


def _memory_line(memory: dict[str, float] | None) -> str:
    return " (peak RSS as each stage ended: " + ", ".join(f"{k} {v:.0f} MB" for k, v in memory.items()) + ")" if memory else ""
