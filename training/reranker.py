"""`rag train --reranker`: a cross-encoder reranker trained from the bi-encoder's data.

The same positives (qrels pairs) and the same dev carve (seeded, by query) as `rag train`; hard
negatives mined the same way, from BM25 and dense candidates with the false-negative filter, several
per pair. The cross-encoder starts from the packaged MiniLM weights (a new one-logit head) and learns
listwise: a softmax cross-entropy over each query's positive and its mined negatives, with a high
learning rate (2e-4; 2e-3 for the new head). Measured on SciFact (40 steps of 16 queries, 128
tokens, dev = the hybrid's top 30 of 80 held-out queries): binary cross-entropy at 5e-5 reranked to
nDCG@10 0.39, with the head at 2e-3 0.42, listwise 0.46, listwise at 2e-4 0.69; the model starts at
0.13. Bi-encoder weights give its [CLS] head little to work with: it needs the larger steps.

After training, the stage's depth (fused hits read) and the weight of its scores against the fused
ones are chosen on the dev queries, over the hybrid ranking it will rerank, from a small grid
(eval.rerank_dev: 3 depths x 5 weights; the 396-setting fusion grid over 80 dev queries was shown to overfit).
The choice is written to ``reranker.json`` in the model folder, which the service reads.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from indexer.datasets import dataset_index
from rag.datasets import load_dataset
from rag.encoders.folder import default_model_path
from rag.errors import InputError
from rag.rerank import CARD
from rag.settings import Mode, Settings
from rag.timing import Timer
from rag.types import ScoredId, document_of
from training import mining
from training.data import dev_groups, qrels_pairs, split_dev
from training.job import DEV_QRELS, dev_qrels
from training.trainer import check_output, peak_rss_mb, publish

log = logging.getLogger(__name__)
DEV_DEPTH = 100  # hybrid hits per dev query the cross-encoder scores once; the plan is chosen within them
#: (gold, dev hits, the cross-encoder's scores of them) -> (hybrid nDCG@10, the grid, the best of it), from eval
Chooser = Callable[[dict[str, dict[str, int]], dict[str, list[ScoredId]], dict[str, np.ndarray]],
                   tuple[float, list[dict[str, float]], dict[str, float]]]


@dataclass(frozen=True)
class RerankTrainSettings:
    negatives: int = 3  # mined per pair
    epochs: float = 3.0
    batch_size: int = 16  # queries a step, each with its positive and negatives
    #: (query, passage) pairs a forward pass: the step's gradients are the same, its memory bounded (None: all at once)
    mini_batch_size: int | None = 16
    learning_rate: float = 2e-4
    head_lr_factor: float = 10.0  # the new head's (and its pooler's) learning rate over the body's
    warmup_ratio: float = 0.1
    max_length: int = 256
    seed: int = 13
    dev_depth: int = 30  # hybrid hits per dev query the trainer's evaluator reranks (checkpoint choice)


@dataclass
class RerankReport:
    output: str
    base_model: str
    train_pairs: int
    rows: int
    dev_queries: int
    dev_ndcg_hybrid: float
    dev_ndcg_reranked: float
    top_k: int
    weight: float
    grid: list[dict[str, float]]
    steps: int
    seconds: float
    peak_rss_mb: float
    device: str
    settings: dict[str, Any]


def train_reranker(settings: Settings, dataset: Path, output: Path, split: str = "train", dev_fraction: float = 0.1,
                   s: RerankTrainSettings | None = None, base: str | None = None, qrels_file: Path | None = None,
                   dev_by: str = "query", *, choose: Chooser) -> RerankReport:
    """``choose`` picks the stage's depth and weight on dev (eval.rerank_dev.choose_plan: evaluation
    lives above training)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    s = s or RerankTrainSettings()
    base = base or default_model_path()
    check_output(output)
    if s.negatives < 1:
        raise InputError("--negatives: a reranker needs at least one mined negative per pair")
    from rag.factory import make_encoder, make_searcher

    ds = load_dataset(dataset, split, qrels_file)
    encoder = make_encoder(settings)
    searcher = make_searcher(settings.model_copy(update={"index_dir": dataset_index(ds, settings)}), encoder=encoder)
    searcher.reranker = None  # the ranking it will rerank is the plain hybrid one
    reader = searcher.reader
    pairs = qrels_pairs(ds, reader)
    train_pairs, dev_pairs = split_dev(pairs, dev_fraction, s.seed, dev_groups(pairs, reader, dev_by))  # `rag train`'s carve
    if not dev_pairs or not train_pairs:
        raise InputError(f"--dev-fraction {dev_fraction}: no dev or no training queries are left")
    known: dict[str, set[str]] = {}
    for qid, rel in ds.qrels.items():
        known.setdefault(qid, set()).update(d for d, g in rel.items() if g > 0)
    mine = mining.MiningSettings(count=s.negatives, dense=True, filter=True, seed=s.seed)
    triplets, dropped = mining.mine(train_pairs, reader, encoder, known, mine, settings.progress)
    log.info("mined %d triplets with %d negatives each; dropped %s", len(triplets), s.negatives, dict(dropped))
    if not triplets:
        raise InputError("no training pair kept enough mined negatives; lower --negatives")
    dev_queries = {p.query_id: p.query for p in dev_pairs}
    dev_hits = _hybrid(searcher, dev_queries, DEV_DEPTH, settings.progress)
    texts = _texts(reader, {h.passage_id for hits in dev_hits.values() for h in hits})

    t0 = time.perf_counter()
    model, steps, device = _fit(base, output, triplets, dev_queries, dev_hits, texts, known, s, settings.progress)
    seconds = time.perf_counter() - t0

    # depth and weight on dev: the cross-encoder scores each dev query's top hits once
    scores = {q: model.predict([(dev_queries[q], texts[h.passage_id]) for h in hits], batch_size=64,
                               activation_fn=_identity(), show_progress_bar=False)
              for q, hits in tqdm(dev_hits.items(), desc="dev rerank", unit="query", disable=not settings.progress)}
    gold = {q: {d: g for d, g in ds.qrels[q].items() if g > 0} for q in dev_queries}
    base_ndcg, grid, best = choose(gold, dev_hits, {q: np.asarray(v) for q, v in scores.items()})
    log.info("dev nDCG@10: hybrid %.4f, reranked %.4f at top_k %d, weight %.1f", base_ndcg, best["ndcg@10"],
             best["top_k"], best["weight"])

    report = RerankReport(
        str(output), base, len(train_pairs), len(triplets) * (1 + s.negatives), len(dev_queries),
        round(float(base_ndcg), 4), best["ndcg@10"], int(best["top_k"]), float(best["weight"]), grid, steps,
        round(seconds, 1), round(peak_rss_mb(), 1), device, asdict(s) | {"mining": asdict(mine), "dropped": dict(dropped)})

    def fill(staging: Path) -> None:
        model.save_pretrained(str(staging))
        (staging / CARD).write_text(json.dumps({"top_k": report.top_k, "weight": report.weight}, indent=2) + "\n")
        (staging / "training_report.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
        (staging / "README.md").write_text(_card(report, dataset, ds.split))
        (staging / DEV_QRELS).write_text(dev_qrels(dev_queries, ds.qrels))

    publish(output, fill, output.parent / f".{output.name}.checkpoints")
    return report


def _Listwise(model, mini_batch_size: int | None = None):
    """Softmax cross-entropy over each query's candidates (its positive first, then its mined negatives):
    sentence-transformers' MultipleNegativesRankingLoss on raw scores, without in-batch negatives. With
    ``mini_batch_size`` the cached variant: the same loss and gradients, with the forward pass in
    chunks of that many pairs, so activation memory stops growing with the batch (GradCache)."""
    from sentence_transformers.cross_encoder.losses import CachedMultipleNegativesRankingLoss, MultipleNegativesRankingLoss

    base = MultipleNegativesRankingLoss if mini_batch_size is None else CachedMultipleNegativesRankingLoss

    class Listwise(base):  # type: ignore[valid-type, misc]
        def get_in_batch_negatives(self, anchors, candidates):
            return iter(())

    extra = {} if mini_batch_size is None else {"mini_batch_size": mini_batch_size}
    return Listwise(model, num_negatives=None, scale=1.0, activation_fn=None, **extra)


def _identity():
    import torch

    return torch.nn.Identity()


def _hybrid(searcher, queries: dict[str, str], depth: int, progress: bool) -> dict[str, list[ScoredId]]:
    """Each query's hybrid ranking, one passage per document (as `rag eval` ranks), its first ``depth``."""
    retrieval = searcher.retrieval.model_copy(update={"fold_documents": True})
    db, dd = searcher.candidate_depth(retrieval.depth_bm25), searcher.candidate_depth(retrieval.depth_dense)
    out = {}
    for qid, text in tqdm(queries.items(), desc="dev hybrid", unit="query", disable=not progress):
        c = searcher.candidates(text, Mode.hybrid, None, Timer(), db, dd)
        out[qid] = searcher.fuse(c, Mode.hybrid, retrieval)[:depth]
    return out


def _texts(reader, ids: set[str]) -> dict[str, str]:
    return {pid: p.indexed_text for pid, p in reader.passages.get(sorted(ids)).items()}


def _fit(base: str, output: Path, triplets: list[mining.Triplet], dev_queries: dict[str, str],
         dev_hits: dict[str, list[ScoredId]], texts: dict[str, str], known: dict[str, set[str]],
         s: RerankTrainSettings, progress: bool):
    """Train with checkpoints in ``.OUTPUT.checkpoints`` (a killed run resumes there); the best
    checkpoint on dev (the trainer's evaluator over each dev query's hybrid top ``dev_depth``) is kept."""
    import torch
    from datasets import Dataset as HFDataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator
    from transformers import set_seed

    set_seed(s.seed)
    cuda = torch.cuda.is_available()
    try:
        model = CrossEncoder(base, num_labels=1, max_length=s.max_length, device="cuda" if cuda else "cpu",
                             local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any load failure is the base model path
        raise InputError(f"cannot load base model {base!r}: {exc}") from exc
    # columns: query, its positive, then its negatives (no label: the first candidate is the right one)
    rows: dict[str, list] = {"query": [t.query for t in triplets], "positive": [t.positive for t in triplets]}
    for i in range(s.negatives):
        rows[f"negative_{i + 1}"] = [t.negatives[i]["text"] for t in triplets]
    samples = []
    for qid, hits in dev_hits.items():
        docs = [texts[h.passage_id] for h in hits[: s.dev_depth]]
        positives = [texts[h.passage_id] for h in hits[: s.dev_depth] if document_of(h.passage_id) in known.get(qid, ())]
        samples.append({"query": dev_queries[qid], "positive": positives, "documents": docs})
    evaluator = CrossEncoderRerankingEvaluator(samples, at_k=10, always_rerank_positives=False, name="dev",
                                               batch_size=64, write_csv=False)
    loss = _Listwise(model, s.mini_batch_size)
    work = output.parent / f".{output.name}.checkpoints"
    eval_steps = max(1, math.ceil(len(rows["query"]) / s.batch_size))  # once an epoch
    args = CrossEncoderTrainingArguments(
        output_dir=str(work), num_train_epochs=s.epochs, per_device_train_batch_size=s.batch_size,
        learning_rate=s.learning_rate, warmup_steps=s.warmup_ratio, seed=s.seed, data_seed=s.seed,
        eval_strategy="steps", eval_steps=eval_steps, save_strategy="steps", save_steps=eval_steps, save_total_limit=2,
        load_best_model_at_end=True, metric_for_best_model="eval_dev_ndcg@10", greater_is_better=True,
        logging_steps=max(1, eval_steps // 4), report_to="none", use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(), disable_tqdm=not progress,
    )
    head = [p for n, p in model.named_parameters() if "classifier" in n or "pooler" in n]
    body = [p for n, p in model.named_parameters() if not ("classifier" in n or "pooler" in n)]
    optimizer = torch.optim.AdamW([{"params": body, "lr": s.learning_rate}, {"params": head, "lr": s.learning_rate * s.head_lr_factor}],
                                  weight_decay=0.01)
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=HFDataset.from_dict(rows), loss=loss,
                                  evaluator=evaluator, optimizers=(optimizer, None))
    resume = work.is_dir() and any(p.name.startswith("checkpoint-") for p in work.iterdir())
    if resume:
        log.info("resuming from the last checkpoint in %s", work)
    result = trainer.train(resume_from_checkpoint=resume or None)
    return model, int(result.global_step), "cuda" if cuda else "cpu"


def _card(r: RerankReport, dataset: Path, split: str) -> str:
    grid = "\n".join(f"| {g['top_k']} | {g['weight']:.1f} | {g['ndcg@10']:.4f} |" for g in r.grid)
    return f"""# Cross-encoder reranker

Base: `{r.base_model}` (a new one-logit head). Trained by `rag train --reranker` on `{dataset}` split
`{split}`: {r.train_pairs} training pairs, {r.rows} (query, passage) pairs with mined hard negatives;
listwise softmax cross-entropy over each query's positive and negatives; {r.steps} steps in
{r.seconds:.0f} s on {r.device}; peak memory {r.peak_rss_mb:.0f} MB.

Use it: `RAG_RERANK__MODEL={r.output}` (or `rag eval --reranker {r.output}`).

## Dev ({r.dev_queries} queries carved from the training queries, as `rag train` carves them)
Hybrid nDCG@10 {r.dev_ndcg_hybrid:.4f}; reranked {r.dev_ndcg_reranked:.4f} with top_k {r.top_k}, weight {r.weight:.1f}
(kept in `{CARD}`). The grid:

| top_k | weight | dev nDCG@10 |
|---:|---:|---:|
{grid}

## Settings
```json
{json.dumps(r.settings, indent=2)}
```
"""
