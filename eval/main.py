"""`rag eval`: evaluate retrievers on a BEIR dataset, or tune fusion on a train split."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from eval import report as reports
from eval.metrics import evaluate
from eval.runner import open_searcher, run_retriever
from eval.tune import refuse_test_split, tune, write_tuned
from rag.datasets import load_dataset
from rag.errors import InputError
from rag.settings import Mode, Settings
from rag.types import AnswerMode

log = logging.getLogger(__name__)


def parse_retrievers(text: str) -> list[Mode]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    valid = ", ".join(m.value for m in Mode)
    bad = [n for n in names if n not in Mode.__members__]
    if bad or not names:
        raise InputError(f"unknown retriever(s) {bad or text!r}; choose from {valid}")
    return [Mode(n) for n in names]


def answer_cmd(settings: Settings, dataset: Path, split: str, output: Path | None, k_values: list[int],
               resume: bool = False) -> Iterator[str]:
    """Answer every question of the split with contextualization on and off, at each k. With an
    output, each configuration is journaled as it finishes (OUTPUT.partial.jsonl), so a crash late
    in a long run loses at most the configuration in progress; ``resume`` reuses what is there."""
    from eval import answers as ans
    from rag.factory import make_answerer, make_generator

    ds = load_dataset(dataset, split)
    gold = ans.load_answers(ds)
    searcher = open_searcher(ds, settings)
    answerer = make_answerer(settings, searcher=searcher, generator=make_generator(settings))
    g = settings.generator
    rep = {"task": "answer", "dataset": ds.name, "split": split, "num_queries": len(ds.queries),
           "generator": f"{g.backend.value}:{g.model or 'SmolLM2-135M-Instruct'}",
           "mode": settings.answer.mode.value,
           "generation": {"temperature": g.temperature, "max_tokens": g.max_tokens, "repetition_penalty": g.repetition_penalty},
           "retrieval": searcher.retrieval.model_dump(mode="json")}
    journal = ans.Journal(output.with_suffix(".partial.jsonl"), rep) if output is not None else None
    done = journal.load() if journal is not None and resume else {}
    if done and journal is not None:
        yield f"resuming: {len(done)} configuration(s) already finished in {journal.path}"
    elif journal is not None:
        journal.start()
    wanted = [(ctx, k) for ctx in (True, False) for k in k_values]
    if any(c not in done for c in wanted) and answerer.mode is not AnswerMode.extractive:
        answerer.generator.check()
    configs = []
    for ctx, k in wanted:
        if (ctx, k) not in done:
            done[(ctx, k)] = ans.evaluate_config(answerer, ds, gold, ctx, k, settings.progress)
            if journal is not None:
                journal.append(done[(ctx, k)])
        configs.append(done[(ctx, k)])
    rep["configs"] = configs
    yield ans.markdown(rep).rstrip()
    if output is not None and journal is not None:
        yield "wrote " + ", ".join(map(str, ans.write(rep, output)))
        journal.path.unlink(missing_ok=True)


def evaluate_cmd(settings: Settings, dataset: Path, split: str, retrievers: str, output: Path | None, do_tune: bool,
                 qrels: Path | None = None, rerank_k: list[int] | None = None, small_grid: bool = False) -> Iterator[str]:
    """Each retriever's row; with a reranker configured (rerank.model), also each one reranked, at
    every depth of ``rerank_k`` (default the reranker's own)."""
    modes = parse_retrievers(retrievers)
    ds = load_dataset(dataset, split, qrels)
    if do_tune:
        refuse_test_split(ds.split)
    searcher = open_searcher(ds, settings)
    if do_tune:
        tuned = tune(searcher, ds, settings.progress, small_grid)
        write_tuned(settings.tuned_path, tuned)
        yield (f"tuned on {ds.name}/{ds.split}: nDCG@10 {tuned['tuned_on']['ndcg@10']:.4f} with {tuned['retrieval']} "
               f"(the settings before: {tuned['current']['ndcg@10']:.4f}, p={tuned['current']['p_value_best_vs_current']:.3f})")
        yield f"written to {settings.tuned_path}"
        return
    runs: list[tuple[str, Mode, int | None]] = [(m.value, m, None) for m in modes]
    if searcher.reranker is not None:
        runs += [(f"{m.value}+rerank@{d}", m, d) for m in modes for d in rerank_k or [searcher.rerank_plan.top_k]]
    elif rerank_k:
        raise InputError("--rerank-k needs a reranker: set rerank.model (RAG_RERANK__MODEL or --reranker)")
    results = {}
    for name, mode, depth in runs:
        if searcher.reranker is not None:
            searcher.reranker.clear()  # each row's rerank latency from cold, not from the last row's scores
        rr = run_retriever(searcher, ds, mode, settings.progress, rerank_k=depth)
        m = evaluate(ds.qrels, rr.run)
        results[name] = {**{k: round(v, 4) for k, v in m.items() if k != "recall_curve"},
                               "recall_curve": {k: round(v, 4) for k, v in m["recall_curve"].items()},
                               "latency_ms": rr.latency_summary()}
    r, manifest = searcher.retrieval, searcher.reader.manifest
    rep = {
        "dataset": ds.name, "split": ds.split, "num_queries": len(ds.queries), "results": results,
        "index": {"generation": searcher.reader.generation, **asdict(manifest.counts), "encoder": manifest.encoder.model,
                  "encoder_numeric": manifest.encoder.numeric,
                  "chunking": manifest.chunking, "bm25": {"backend": manifest.bm25_backend, "k1": settings.bm25.k1, "b": settings.bm25.b},
                  "dense": asdict(manifest.dense)},
        "fusion": r.model_dump(mode="json"),
        "rerank": ({"model": settings.rerank.model, "weight": searcher.rerank_plan.weight,
                    "max_length": settings.rerank.max_length} if searcher.reranker is not None else None),
        "tuned_file": str(settings.tuned_path) if settings.tuned_path.is_file() else None,
    }
    yield reports.markdown(rep).rstrip()
    if output is not None:
        paths = reports.write(rep, output)
        yield "wrote " + ", ".join(map(str, paths))


