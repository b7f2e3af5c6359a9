"""`rag train`: assemble pairs, mine hard negatives, fine-tune, publish the model folder."""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict
from pathlib import Path

from indexer.datasets import dataset_index
from rag.datasets import load_dataset
from rag.errors import InputError
from rag.settings import Settings
from rag.types import document_of
from training import mining
from training.data import (
    Pair,
    bootstrap_pairs,
    dev_groups,
    feedback_pairs,
    ict_pairs,
    pseudo_pairs,
    qrels_pairs,
    split_dev,
    synthetic_pairs,
)
from training.trainer import TrainReport, TrainSettings, check_output, memory_checkpoint, train

log = logging.getLogger(__name__)
SOURCES = ("qrels", "bootstrap", "feedback", "synthetic", "ict", "pseudo")
DEV_QRELS = "dev_qrels.tsv"  # the held-out dev queries' judgments, to tune fusion for the new model


def dev_qrels(dev_queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> str:
    """BEIR qrels text for the dev queries that come from the dataset's split (`rag eval --qrels`)."""
    rows = [f"{q}\t{d}\t{g}" for q in sorted(dev_queries) if q in qrels for d, g in sorted(qrels[q].items()) if g > 0]
    return "query-id\tcorpus-id\tscore\n" + "".join(r + "\n" for r in rows)


def run_training(
    settings: Settings, dataset: Path, output: Path, split: str = "train", sources: tuple[str, ...] = ("qrels",),
    mine_settings: mining.MiningSettings | None = None, train_settings: TrainSettings | None = None,
    dev_fraction: float = 0.1, bootstrap_limit: int | None = None, synthetic_limit: int = 1000, generator=None,
    ict_limit: int = 2000, qrels_file: Path | None = None, dev_by: str = "query",
) -> TrainReport:
    ts = train_settings or TrainSettings()
    check_output(output)
    bad = [s for s in sources if s not in SOURCES]
    if bad or not sources:
        raise InputError(f"unknown pair source(s) {bad or sources}; choose from {', '.join(SOURCES)}")
    needs_labels = "qrels" in sources
    ds = load_dataset(dataset, split, qrels_file) if needs_labels else None
    if ds is None:
        from rag.datasets import Dataset

        if not (Path(dataset) / "corpus.jsonl").is_file():
            raise InputError(f"dataset {str(dataset)!r} has no corpus.jsonl")
        ds = Dataset(Path(dataset), split, {}, {})
    from rag.factory import make_encoder, make_reader

    encoder = make_encoder(settings)  # the one dataset_index builds with
    reader = make_reader(settings.model_copy(update={"index_dir": dataset_index(ds, settings)}))
    pairs = []
    if "qrels" in sources:
        pairs += qrels_pairs(ds, reader)
    if "bootstrap" in sources:
        pairs += bootstrap_pairs(reader, bootstrap_limit, seed=ts.seed)
    if "synthetic" in sources:
        from rag.factory import make_generator

        journal = output.parent / f".{output.name}.synthetic.jsonl"
        pairs += synthetic_pairs(reader, generator or make_generator(settings), synthetic_limit, seed=ts.seed,
                                 progress=settings.progress, journal=journal)
    if "pseudo" in sources:  # the split's query texts only: its judgments stay unread
        from rag.search import Searcher

        queries = load_dataset(dataset, split, qrels_file).queries
        pairs += pseudo_pairs(queries, Searcher(reader, encoder, settings.retrieval))
    if "ict" in sources:
        pairs += ict_pairs(reader, ict_limit, seed=ts.seed)
    if "feedback" in sources:
        from rag.factory import make_store

        pairs += feedback_pairs(make_store(settings))  # the serving store's feedback (settings.database_url)
    if not pairs:
        raise InputError("no training pairs could be assembled")
    memory: dict[str, float] = {}
    memory_checkpoint(memory, "index and pairs")
    train_pairs, dev_pairs = split_dev(pairs, dev_fraction, ts.seed, dev_groups(pairs, reader, dev_by))
    known: dict[str, set[str]] = {}
    for p in pairs:
        known.setdefault(p.query_id, set()).add(document_of(p.positive_id))
    for qid, rel in ds.qrels.items():
        known.setdefault(qid, set()).update(d for d, g in rel.items() if g > 0)
    rows: list[Pair] | list[mining.Triplet] = train_pairs
    dropped = {}
    mined_file = None
    if mine_settings is not None:
        triplets, counts = mining.mine(train_pairs, reader, encoder, known, mine_settings, settings.progress)
        rows, dropped = triplets, dict(counts)
        mined_file = output.parent / f".{output.name}.hard_negatives.jsonl"
        mining.save(triplets, mined_file)
        log.info("mined %d triplets from %d pairs; dropped %s", len(rows), len(train_pairs), dropped)
        memory_checkpoint(memory, "mined")
    dev_queries = {p.query_id: p.query for p in dev_pairs}
    dev_relevant: dict[str, set[str]] = {}
    for p in dev_pairs:
        dev_relevant.setdefault(p.query_id, set()).add(p.positive_id)
    corpus_ids = {p.positive_id for p in dev_pairs}
    for q in dev_queries.values():
        corpus_ids.update(h.passage_id for h in reader.bm25.search(q, ts.dev_corpus_candidates))
    dev_corpus = {pid: p.indexed_text for pid, p in reader.passages.get(sorted(corpus_ids)).items()}
    # a positive as the pair has it: for ICT the passage without the query sentence (else dev is a string search)
    dev_corpus.update({p.positive_id: p.positive for p in dev_pairs})
    card = {
        "dataset": str(dataset), "split": ds.split if needs_labels else None, "sources": list(sources), "dev_by": dev_by,
        "pairs_by_source": {s: sum(p.source == s for p in pairs) for s in sources},
        "train_pairs": len(train_pairs), "dev_pairs": len(dev_pairs),
        "hard_negatives": asdict(mine_settings) if mine_settings else None, "dropped_candidates": dropped,
        "index": reader.manifest.chunking,
    }
    base = settings.encoder.model or str(getattr(encoder, "path", encoder.model_key))
    files = {DEV_QRELS: dev_qrels(dev_queries, ds.qrels)} if needs_labels else None
    report = train(base, output, rows, dev_queries, dev_corpus, dev_relevant, ts, card, settings.progress, files, memory)
    if mined_file is not None:
        shutil.move(str(mined_file), output / "hard_negatives.jsonl")
    if "synthetic" in sources:
        shutil.move(str(journal), output / "synthetic_queries.jsonl")
    return report
