"""Indexes of BEIR datasets for evaluation and training, built once and cached by what they depend
on (corpus, encoder, chunking, BM25 backend, dense settings, index backend)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from indexer.job import make_index_job
from indexer.sources import open_source
from rag import generations as gens
from rag import milvus
from rag.datasets import Dataset
from rag.factory import make_chunker, make_encoder
from rag.settings import IndexBackend, Settings
from rag.types import SourceDocument

log = logging.getLogger(__name__)


def dataset_index(ds: Dataset, settings: Settings) -> Path:
    """The dataset's index in the eval cache, keyed by corpus hash, model and index settings."""
    encoder = make_encoder(settings)
    chunker = make_chunker(settings, encoder)
    key_parts: list[Any] = [ds.corpus_hash(), encoder.model_key, chunker.signature, settings.bm25.backend.value,
                 settings.dense.model_dump(exclude={"ef_search", "faiss_threads"})]
    if settings.index.backend is IndexBackend.milvus:  # (local indexes keep the keys they had)
        key_parts += ["milvus", milvus.SCHEMA, settings.milvus.model_dump(exclude={"token", "batch"}), settings.bm25.k1, settings.bm25.b]
    key = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()[:16]
    index_dir = settings.eval_cache_dir / f"{ds.name}-{key}"
    if gens.current_generation(index_dir) is not None:
        log.info("reusing cached index %s", index_dir)
        return index_dir
    log.info("indexing %s into %s", ds.corpus, index_dir)
    local = settings.model_copy(update={"index_dir": index_dir, "database_url": None})
    summary = make_index_job(local, encoder=encoder).run(open_source(ds.path))
    log.info("indexed %d documents, %d passages (%d rejected)", summary.documents_total, summary.passages_total, summary.rejected)
    return index_dir


def corpus_documents(path: Path, limit: int | None = None) -> list[SourceDocument]:
    """A BEIR folder's documents as the indexer reads them (the first ``limit``; lines it would refuse left out)."""
    docs = (r for r in open_source(path) if isinstance(r, SourceDocument))
    return [d for d, _ in zip(docs, range(limit), strict=False)] if limit is not None else list(docs)
