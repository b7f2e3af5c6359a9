"""The `rag` command. Library errors become one-line messages and a non-zero exit, never tracebacks."""

from __future__ import annotations

import json
import logging
import signal
import sys
from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from pydantic import ValidationError

from rag.errors import ConfigError, InputError, RagError
from rag.evidence import NOT_FOUND
from rag.serialize import answer_result_dict, search_result_dict
from rag.settings import BM25Backend, Mode, Settings, load_settings
from rag.types import AnswerMode, Scope

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
log = logging.getLogger("rag")


class OnOff(str, Enum):
    on = "on"
    off = "off"


IndexDirOpt = Annotated[Optional[Path], typer.Option("--index-dir", help="index directory [env RAG_INDEX_DIR]")]
DbOpt = Annotated[Optional[str], typer.Option("--database-url", help="SQLAlchemy URL [env RAG_DATABASE_URL]")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", help="local sentence-transformers folder")]
NoProgressOpt = Annotated[bool, typer.Option("--no-progress", help="no progress bars")]


@app.callback()
def _root() -> None:
    """Hybrid retrieval-augmented search over your own documents."""


def _settings(overrides: dict[str, Any]) -> Settings:
    try:
        s = load_settings(overrides)
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid settings: {errs}") from exc
    logging.basicConfig(level=s.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("faiss.loader", "alembic.runtime.migration", "sentence_transformers", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    return s


@app.command()
def index(
    source: Annotated[Optional[Path], typer.Argument(help="BEIR folder, JSONL file, or folder of .txt/.md/.html")] = None,
    index_dir: IndexDirOpt = None,
    database_url: DbOpt = None,
    model: ModelOpt = None,
    chunking: Annotated[Optional[OnOff], typer.Option(help="off: one passage per document")] = None,
    chunk_size: Annotated[Optional[int], typer.Option(help="passage length in tokens")] = None,
    chunk_overlap: Annotated[Optional[int], typer.Option(help="tokens shared by neighbours")] = None,
    bm25_backend: Annotated[Optional[BM25Backend], typer.Option(help="BM25 backend")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="encoder batch size")] = None,
    sync: Annotated[bool, typer.Option("--sync", help="delete documents of this source that are gone from it")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="any bad record is fatal; nothing is written")] = False,
    no_progress: NoProgressOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    ray: Annotated[Optional[str], typer.Option(
        "--ray", help="encode on a Ray cluster: its address, auto (the one this machine joined) or local (start one here)")] = None,
    ray_workers: Annotated[int, typer.Option(min=1, help="--ray: encoder actors (one model load each; a GPU each where present)")] = 2,
) -> None:
    """Index a corpus: documents and passages into SQL, then BM25 and dense indexes, published atomically.

    Without SOURCE, re-encodes what the store holds (e.g. with a new --model) and publishes it.
    """
    from indexer.job import make_index_job
    from indexer.sources import open_source

    settings = _settings({
        "index_dir": index_dir, "database_url": database_url, "progress": False if no_progress else None,
        "encoder": {"model": model, "batch_size": batch_size},
        "chunking": {"enabled": None if chunking is None else chunking is OnOff.on, "size": chunk_size, "overlap": chunk_overlap},
        "bm25": {"backend": bm25_backend},
    })
    src = open_source(source) if source is not None else None
    job = make_index_job(settings, ray_address=ray, ray_workers=ray_workers)
    summary = job.run(src, sync=sync, strict=strict)
    passages_per_s = summary.passages_encoded / summary.seconds["encode"] if summary.seconds.get("encode") else 0.0
    if as_json:
        out = asdict(summary)
        out["rejections"] = [str(r) for r in summary.rejections]
        out["passages_per_s"] = passages_per_s
        typer.echo(json.dumps(out, indent=2))
        return
    for r in summary.rejections[:20]:
        typer.echo(f"rejected {r}", err=True)
    if len(summary.rejections) > 20:
        typer.echo(f"... and {len(summary.rejections) - 20} more rejected", err=True)
    state = f"published {summary.generation}" if summary.published else f"unchanged, current {summary.generation}"
    typer.echo(
        f"added {summary.added}, updated {summary.updated}, deleted {summary.deleted}, skipped {summary.skipped}, "
        f"rejected {summary.rejected}; {summary.documents_total} documents, {summary.passages_total} passages; {state}"
    )
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in summary.seconds.items())
    typer.echo(f"encoded {summary.passages_encoded} passages ({passages_per_s:.1f}/s); {stages}")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="the question or keywords")],
    index_dir: IndexDirOpt = None,
    mode: Annotated[Optional[Mode], typer.Option(help="retriever")] = None,
    k: Annotated[Optional[int], typer.Option("--k", help="most passages returned")] = None,
    filter_: Annotated[Optional[list[str]], typer.Option("--filter", help="KEY=VALUE (metadata or source); repeatable")] = None,
    fold: Annotated[bool, typer.Option("--fold-documents", help="one hit per document")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Search the published index; prints ranked passages and per-stage timings."""
    from rag.factory import make_searcher

    settings = _settings({
        "index_dir": index_dir, "truncation": {"max_k": k},
        "retrieval": {"mode": mode, "fold_documents": True if fold else None},
    })
    filters = _parse_filters(filter_ or [])
    result = make_searcher(settings).search(query, filters=filters)
    if as_json:
        typer.echo(json.dumps(search_result_dict(result), indent=2, ensure_ascii=False))
        return
    for h in result.hits:
        p = h.passage
        typer.echo(f"{h.rank:>3}. {h.score:8.4f}  {p.id}  {p.title}")
        typer.echo(f"     {p.text[:200]}{'...' if len(p.text) > 200 else ''}")
    tr = result.truncation
    typer.echo(f"kept {tr.kept} of {tr.candidates} candidates (cut by {tr.cut_by}); mode {result.mode.value}; generation {result.generation}")
    typer.echo("timings ms: " + ", ".join(f"{k_} {v:.2f}" for k_, v in result.timings_ms.items()))


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="the question")],
    index_dir: IndexDirOpt = None,
    k: Annotated[Optional[int], typer.Option("--k", help="passages given to the generator")] = None,
    filter_: Annotated[Optional[list[str]], typer.Option("--filter", help="KEY=VALUE; repeatable")] = None,
    backend: Annotated[Optional[str], typer.Option(help="generator backend: local | openai")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(help="most tokens generated")] = None,
    temperature: Annotated[Optional[float], typer.Option(help="0: greedy")] = None,
    no_contextualize: Annotated[bool, typer.Option("--no-contextualize", help="the question only after the passages")] = False,
    mode: Annotated[Optional[AnswerMode], typer.Option(help="extractive (no generator) | generative | both")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the whole result as JSON at the end")] = False,
) -> None:
    """Answer a question from the index: streams the answer, then citations, timings and token counts."""
    from rag.factory import make_answerer

    if not question.strip():  # before the models load
        raise InputError("question is empty")
    filters = _parse_filters(filter_ or [])
    settings = _settings({
        "index_dir": index_dir, "generator": {"backend": backend, "max_tokens": max_tokens, "temperature": temperature},
        "answer": {"max_passages": k, "contextualize": False if no_contextualize else None, "mode": mode},
    })
    answerer = make_answerer(settings)
    if settings.answer.mode is not AnswerMode.extractive:
        try:
            answerer.generator.check()  # load or reach it now, so the timings below are the request's own
        except RagError:
            pass  # the answer below reports it, with the passages that were found
    result, generated = None, False
    for kind, value in answerer.stream(question, filters=filters):
        if kind == "extractive" and not as_json:
            typer.echo(f"extractive: {value.answer} [{value.number}]  ({value.text})" if value else f"extractive: {NOT_FOUND}")
        elif kind == "token" and not as_json:
            if not generated and settings.answer.mode is AnswerMode.both:
                typer.echo("generated: ", nl=False)
            generated = True
            typer.echo(value, nl=False)
        elif kind == "result":
            result = value
    if result is None:
        raise RagError("the answer ended without a result")
    if as_json:
        typer.echo(json.dumps(answer_result_dict(result), indent=2, ensure_ascii=False))
    else:
        typer.echo("")
        if result.answer_evidence is not None:  # the answer in the evidence's words (the small model's copy, grounded)
            typer.echo(f"answer: {result.answer} [{result.answer_evidence.number}]")
        for c in result.citations:
            typer.echo(f"[{c.number}] {c.title} ({c.passage_id}){' (inferred)' if c.inferred else ''}")
        if result.invalid_citations:
            typer.echo(f"dropped citations of passages not given: {result.invalid_citations}")
        u = result.usage
        if u:
            typer.echo(f"tokens in {u['tokens_in']}, out {u['tokens_out']}, {u['tokens_per_s']:.1f} tokens/s")
        typer.echo("timings ms: " + ", ".join(f"{k_} {v:.1f}" for k_, v in result.timings_ms.items()))
    if result.error:
        for h in result.search.hits:
            typer.echo(f"{h.rank:>3}. {h.passage.id}  {h.passage.title}", err=True)
        typer.secho(f"error: the generator failed ({result.error_kind}): {result.error}; the passages above were found",
                    err=True, fg="red")
        raise typer.Exit(1)


@app.command("eval")
def eval_(
    dataset: Annotated[Path, typer.Option(help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv")],
    split: Annotated[str, typer.Option(help="qrels split to evaluate (or to tune on)")] = "test",
    qrels: Annotated[Optional[Path], typer.Option(
        help="judgments file used instead of qrels/SPLIT.tsv, e.g. a fine-tuned model's held-out dev_qrels.tsv")] = None,
    retrievers: Annotated[str, typer.Option(help="comma-separated: bm25,dense,hybrid")] = "bm25,dense,hybrid",
    model: ModelOpt = None,
    output: Annotated[Optional[Path], typer.Option(help="JSON report; .md and .png are written beside it")] = None,
    chunking: Annotated[Optional[OnOff], typer.Option(help="off: one passage per document (BEIR figures)")] = None,
    tune: Annotated[bool, typer.Option("--tune", help="search fusion settings on this (train/dev) split and save them")] = False,
    grid: Annotated[str, typer.Option(help="--tune: full (396 settings) or small (weight x normalisation: for few queries)")] = "full",
    tuned_file: Annotated[Optional[Path], typer.Option(help="tuned settings file to read, or to write with --tune")] = None,
    index_dir: IndexDirOpt = None,
    cache_dir: Annotated[Optional[Path], typer.Option(help="where dataset indexes are cached")] = None,
    task: Annotated[str, typer.Option(help="retrieval | answer (needs answers.jsonl)")] = "retrieval",
    k_values: Annotated[str, typer.Option(help="answer task: passages given to the generator, compared")] = "3,5",
    max_tokens: Annotated[Optional[int], typer.Option(help="answer task: most tokens generated")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="answer task: reuse the configurations an interrupted run finished")] = False,
    mode: Annotated[Optional[AnswerMode], typer.Option(help="answer task: extractive (no generator) | generative | both")] = None,
    reranker: Annotated[Optional[Path], typer.Option(
        help="a cross-encoder folder (`rag train --reranker`): each retriever is also reported reranked")] = None,
    rerank_k: Annotated[Optional[str], typer.Option(help="fused hits the reranker reads, e.g. 20,50,100 (a row each)")] = None,
    no_progress: NoProgressOpt = False,
) -> None:
    """Evaluate retrievers on a BEIR dataset (nDCG@10, Recall@10/100, MRR@10, MAP@100, latency), or
    answers (--task answer: EM, F1, contains-gold, citation precision, with contextualization on/off)."""
    from eval.main import answer_cmd, evaluate_cmd

    settings = _settings({
        "index_dir": index_dir, "tuned_file": tuned_file, "eval_cache_dir": cache_dir,
        "progress": False if no_progress else None, "encoder": {"model": model},
        "chunking": {"enabled": None if chunking is None else chunking is OnOff.on},
        "generator": {"max_tokens": max_tokens}, "answer": {"mode": mode},
        "rerank": {"model": str(reranker) if reranker else None},
    })
    if task == "answer":
        if qrels is not None:
            raise InputError("--qrels is for --task retrieval; the answer task reads answers.jsonl")
        lines = answer_cmd(settings, dataset, split, output, _ints("--k-values", k_values) or [], resume)
    elif task == "retrieval":
        if grid not in ("full", "small"):
            raise InputError(f"--grid {grid!r}: choose full or small")
        lines = evaluate_cmd(settings, dataset, split, retrievers, output, tune, qrels, _ints("--rerank-k", rerank_k),
                             grid == "small")
    else:
        raise InputError(f"--task {task!r}: choose retrieval or answer")
    for line in lines:
        typer.echo(line)


def _ints(option: str, text: str | None) -> list[int] | None:
    """``"3,5"`` -> [3, 5]; None -> None; anything else is the user's error."""
    if text is None:
        return None
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise InputError(f"{option} {text!r}: expected positive integers like 3,5")
    return values


@app.command()
def train(
    dataset: Annotated[Path, typer.Option(help="BEIR folder with the corpus and (for qrels) a train split")],
    output: Annotated[Path, typer.Option(help="new folder for the fine-tuned model (must not exist)")],
    split: Annotated[str, typer.Option(help="qrels split giving the training pairs")] = "train",
    sources: Annotated[str, typer.Option(
        help="pair sources: qrels, bootstrap, feedback, synthetic, ict (label-free: a sentence for the rest of its passage), "
             "pseudo (label-free: the split's queries alone, the hybrid's first passage when BM25 and dense agree)")] = "qrels",
    negatives: Annotated[Optional[int], typer.Option(
        help="hard negatives per pair (0: in-batch negatives only); default 1, --reranker 3")] = None,
    skip_top: Annotated[int, typer.Option(help="BM25 ranks skipped before sampling negatives")] = 0,
    window: Annotated[int, typer.Option(help="ranks sampled from, after the skipped ones")] = 30,
    dense_negatives: Annotated[bool, typer.Option("--dense-negatives", help="also mine with the current encoder")] = False,
    no_filter: Annotated[bool, typer.Option("--no-filter", help="keep false-negative candidates")] = False,
    max_ratio: Annotated[float, typer.Option(help="drop a negative scoring above this share of the positive")] = 0.95,
    epochs: Annotated[Optional[float], typer.Option(help="training epochs; default 1, --reranker 3")] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        help="pairs per batch (in-batch negatives); default 32, --reranker 16 queries")] = None,
    learning_rate: Annotated[Optional[float], typer.Option(
        help="peak learning rate; default 2e-5, --reranker 2e-4 (its new head 10x)")] = None,
    max_seq_length: Annotated[int, typer.Option(help="tokens per text while training")] = 256,
    cached_mini_batch: Annotated[int, typer.Option(
        min=0, help="CachedMNRL computes the loss in mini-batches of this many (the same results; peak memory 3.4 GB "
                    "instead of 9.0 GB for SciFact at batch 32 x 256 tokens); 0: plain MNRL, ~20% faster")] = 16,
    dev_fraction: Annotated[float, typer.Option(help="share of training queries carved out as dev")] = 0.1,
    dev_by: Annotated[str, typer.Option(
        help="carve dev by query, or by title (each article wholly in train or in dev: Wikipedia-like corpora)")] = "query",
    qrels: Annotated[Optional[Path], typer.Option(help="judgments file used instead of qrels/SPLIT.tsv")] = None,
    bootstrap_limit: Annotated[Optional[int], typer.Option(help="most bootstrap pairs")] = None,
    synthetic_limit: Annotated[int, typer.Option(help="passages the generator writes questions for")] = 1000,
    ict_limit: Annotated[int, typer.Option(help="ict: most pairs (one per passage)")] = 2000,
    seed: Annotated[int, typer.Option(help="random seed")] = 13,
    rounds: Annotated[Optional[str], typer.Option(
        help="N or auto: rounds, each from the last one's model with negatives re-mined by it (default: one training)")] = None,
    max_rounds: Annotated[int, typer.Option(help="--rounds auto: the most rounds")] = 5,
    min_gain: Annotated[float, typer.Option(help="--rounds auto: stop when a round adds less dev nDCG@10 than this")] = 0.002,
    reindex: Annotated[bool, typer.Option("--reindex", help=(
        "then re-encode the serving index (INDEX_DIR) with the new model and re-tune fusion on the held-out dev "
        "queries (small grid), into the tuned-settings file"))] = False,
    index_dir: IndexDirOpt = None,
    tuned_file: Annotated[Optional[Path], typer.Option(help="--reindex: the tuned-settings file written")] = None,
    reranker: Annotated[bool, typer.Option("--reranker", help=(
        "train a cross-encoder reranker (from the packaged MiniLM) on the same pairs and dev carve, with mined "
        "negatives; its depth and weight are chosen on dev. Use it with RAG_RERANK__MODEL=OUTPUT"))] = False,
    model: ModelOpt = None,
    chunking: Annotated[Optional[OnOff], typer.Option(help="index the dataset with or without chunking")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(help="where dataset indexes are cached")] = None,
    no_progress: NoProgressOpt = False,
) -> None:
    """Fine-tune the bi-encoder (MultipleNegativesRankingLoss, BM25 hard negatives) on a dataset."""
    from training.job import run_training
    from training.mining import MiningSettings
    from training.trainer import TrainSettings

    settings = _settings({
        "eval_cache_dir": cache_dir, "progress": False if no_progress else None, "encoder": {"model": model},
        "chunking": {"enabled": None if chunking is None else chunking is OnOff.on},
        "index_dir": index_dir, "tuned_file": tuned_file,
    })
    if reindex and (reranker or sources != "qrels"):
        raise InputError("--reindex re-tunes fusion on held-out qrels: it goes with qrels training, not --reranker or other sources")
    if reranker:
        from dataclasses import replace

        from eval.rerank_dev import choose_plan
        from training.reranker import RerankTrainSettings, train_reranker

        if rounds is not None or sources != "qrels":
            raise InputError("--reranker trains from qrels pairs in one run: drop --rounds and --sources")
        d = RerankTrainSettings()
        rs = replace(d, negatives=d.negatives if negatives is None else negatives, epochs=epochs or d.epochs,
                     learning_rate=learning_rate or d.learning_rate, batch_size=batch_size or d.batch_size, max_length=max_seq_length, seed=seed)
        rr = train_reranker(settings, dataset, output, split, dev_fraction, rs, qrels_file=qrels, dev_by=dev_by,
                            choose=choose_plan)
        typer.echo(f"trained {rr.steps} steps on {rr.rows} rows in {rr.seconds:.0f}s ({rr.device}); dev nDCG@10 hybrid "
                   f"{rr.dev_ndcg_hybrid} -> reranked {rr.dev_ndcg_reranked} (top_k {rr.top_k}, weight {rr.weight}); "
                   f"peak memory {rr.peak_rss_mb:.0f} MB; reranker in {rr.output}")
        return
    negatives = 1 if negatives is None else negatives
    mine = MiningSettings(count=negatives, skip_top=skip_top, window=window, dense=dense_negatives,
                          filter=not no_filter, max_ratio=max_ratio, seed=seed) if negatives > 0 else None
    t = TrainSettings()
    ts = TrainSettings(epochs=epochs or t.epochs, batch_size=batch_size or t.batch_size, learning_rate=learning_rate or t.learning_rate,
                       max_seq_length=max_seq_length, seed=seed, cached_mini_batch=cached_mini_batch or None,
                       query_prefix=settings.encoder.query_prefix, passage_prefix=settings.encoder.passage_prefix)
    source_list = tuple(s.strip() for s in sources.split(",") if s.strip())
    if rounds is not None:
        from training.rounds import parse_rounds, run_rounds

        result = run_rounds(settings, dataset, output, parse_rounds(rounds), max_rounds, min_gain, mine, split=split,
                            sources=source_list, train_settings=ts, dev_fraction=dev_fraction,
                            bootstrap_limit=bootstrap_limit, synthetic_limit=synthetic_limit, ict_limit=ict_limit,
                            qrels_file=qrels, dev_by=dev_by)
        for r in result.rounds:
            typer.echo(f"round {r['round']}: dev nDCG@10 {r['dev_ndcg@10_before']} -> {r['dev_ndcg@10_after']} "
                       f"({r['steps']} steps, {r['seconds']:.0f}s, peak {r['peak_rss_mb']:.0f} MB)")
        typer.echo(f"{result.stopped_because}; kept round {result.best_round}; model in {result.output}")
    else:
        report = run_training(settings, dataset, output, split, source_list, mine, ts, dev_fraction, bootstrap_limit,
                              synthetic_limit, ict_limit=ict_limit, qrels_file=qrels, dev_by=dev_by)
        b, a = report.metrics_before.get("cosine_ndcg@10"), report.metrics_after.get("cosine_ndcg@10")
        typer.echo(f"trained {report.steps} steps on {report.pairs} examples in {report.seconds:.0f}s ({report.device}); "
                   f"dev nDCG@10 {b} -> {a}; peak memory {report.peak_rss_mb:.0f} MB; model in {report.output}")
    if reindex:
        from eval.reindex import reindex_and_tune

        for line in reindex_and_tune(settings, dataset, output):
            typer.echo(line)


def _store(index_dir: Path | None, database_url: str | None):
    from rag.factory import make_store

    return make_store(_settings({"index_dir": index_dir, "database_url": database_url}))


keys_app = typer.Typer(no_args_is_help=True, help="API keys for the HTTP service (stored hashed in SQL).")
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    scope: Annotated[Scope, typer.Option(help="read: search, answer; write: + feedback, documents; admin: all")],
    name: Annotated[str, typer.Option(help="a label for the key")] = "",
    index_dir: IndexDirOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Create a key; it is printed once and only its hash is stored."""
    from rag.auth import create_key
    key, token = create_key(_store(index_dir, database_url), scope, name)
    typer.echo(token)
    typer.echo(f"created key {key.id} with scope {key.scope.value}; store it now, it cannot be shown again", err=True)


@keys_app.command("list")
def keys_list(index_dir: IndexDirOpt = None, database_url: DbOpt = None) -> None:
    """List keys (ids, names, scopes; never the secrets)."""
    from rag.auth import list_keys
    for k in list_keys(_store(index_dir, database_url)):
        typer.echo(f"{k['id']}  {k['scope']:<5}  {'revoked' if k['revoked'] else 'active '}  {k['created_at']}  {k['name']}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key's id")], index_dir: IndexDirOpt = None,
                database_url: DbOpt = None) -> None:
    """Revoke a key: requests with it get 401 from then on."""
    from rag.auth import revoke
    from rag.factory import make_store

    settings = _settings({"index_dir": index_dir, "database_url": database_url})
    revoke(make_store(settings), key_id)
    if settings.redis_url:  # replicas sharing Redis refuse the key now, not when their cache expires
        from rag.shared import RedisKeyCache, connect

        try:
            RedisKeyCache(connect(settings.redis_url)).forget(key_id)
        except ConfigError as exc:
            typer.echo(f"revoked in the database; {exc}: replicas may accept the key until their cache expires (60 s)", err=True)
    typer.echo(f"revoked {key_id}")


@app.command()
def migrate(index_dir: IndexDirOpt = None, database_url: DbOpt = None) -> None:
    """Bring the database schema to the newest revision (`rag serve` also does this at start-up)."""
    store = _store(index_dir, database_url)
    store.check()
    typer.echo(f"database schema is current ({store.engine.url.render_as_string(hide_password=True)})")


@app.command()
def serve(
    index_dir: IndexDirOpt = None,
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(help="worker processes")] = 1,
    create: Annotated[bool, typer.Option("--create", help="create the index directory if it is missing")] = False,
) -> None:
    """Serve the HTTP API (uvicorn)."""
    import os

    import uvicorn

    settings = _settings({"index_dir": index_dir})
    if not settings.index_dir.is_dir():
        if not create:
            raise InputError(f"index directory {str(settings.index_dir)!r} does not exist: build one with "
                             f"`rag index SOURCE --index-dir {settings.index_dir}`, or pass --create to serve an empty one")
        settings.index_dir.mkdir(parents=True)
    os.environ["RAG_INDEX_DIR"] = str(settings.index_dir)  # workers rebuild settings from the environment
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it to the handler it found: exit 0 then
    signal.signal(signal.SIGTERM, _exit_0)
    uvicorn.run("service.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=settings.log_level.lower(), access_log=settings.access_log)


def _exit_0(_signum, _frame) -> None:
    raise SystemExit(0)


def _parse_filters(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--filter {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def main() -> None:
    try:
        app()  # standalone: click reports usage errors itself, with exit code 2
    except RagError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        sys.exit(2 if isinstance(exc, (InputError, ConfigError)) else 1)


if __name__ == "__main__":
    main()
