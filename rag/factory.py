"""The only place that turns settings into components."""

from __future__ import annotations

import atexit
import logging
import weakref
from functools import lru_cache

from rag.chunking import Chunker
from rag.encoders.base import Encoder, EncoderSpec
from rag.generators.base import Generator, GeneratorSpec
from rag.manifest import Manifest
from rag.settings import Settings
from rag.store.sql import DocumentStore

log = logging.getLogger(__name__)
#: a new index's encoder precision per runtime (chosen by measurement: docs/benchmarks/encoder.json)
DEFAULT_PRECISION = {"onnx": "int8", "torch": "fp32"}


def default_backend(device: str) -> str:
    """ONNX Runtime int8 on a CPU (measured 4.9x torch for a query); torch where a GPU encodes."""
    if device.startswith("cuda"):
        return "torch"
    if device == "auto":
        import torch

        return "torch" if torch.cuda.is_available() else "onnx"
    return "onnx"


def make_encoder(settings: Settings) -> Encoder:
    """The process's encoder for these settings (no index involved)."""
    return index_encoder(settings, None)


_LOADED: weakref.WeakSet[Encoder] = weakref.WeakSet()  # what forget_encoders closes


@lru_cache(maxsize=4)
def _encoder(spec: EncoderSpec) -> Encoder:
    """Models load once per process and spec."""
    enc: Encoder
    if spec.backend == "torch":
        from rag.encoders.sentence import SentenceTransformerEncoder

        enc = SentenceTransformerEncoder(spec.model, spec.query_prefix, spec.passage_prefix, spec.device,
                                         spec.max_seq_length, spec.query_threads, spec.index_threads)
    else:
        from rag.encoders.onnx import OnnxEncoder

        enc = OnnxEncoder(spec.model, spec.query_prefix, spec.passage_prefix, spec.max_seq_length,
                          spec.query_threads, spec.index_threads, spec.precision)
    _LOADED.add(enc)
    return enc


# the service's own copy for indexing jobs: the shared one stays with searches
_private_encoder = lru_cache(maxsize=2)(_encoder.__wrapped__)


def forget_encoders() -> None:
    """Drop the process's loaded encoders, their query workers stopped (the next make_encoder loads
    afresh): `rag train --rounds` loads a new model each round, and the cache would otherwise keep
    every round's (measured: +160 MB a model)."""
    for enc in list(_LOADED):
        enc.close()
    _LOADED.clear()
    _encoder.cache_clear()
    _private_encoder.cache_clear()


def make_store(settings: Settings, migrate: bool = True) -> DocumentStore:
    return DocumentStore(settings.db_url, migrate=migrate)


def make_chunker(settings: Settings, encoder: Encoder) -> Chunker:
    c = settings.chunking
    return Chunker(encoder, c.size, c.overlap, c.enabled)


def make_reader(settings: Settings):
    from rag.reader import IndexReader

    return IndexReader(settings.index_dir, settings.bm25.k1, settings.bm25.b, settings.dense.ef_search, settings.dense.faiss_threads,
                       settings.milvus)


def make_searcher(settings: Settings, encoder: Encoder | None = None):
    """A searcher over the published generation; the query encoder follows the index's manifest
    (model folder and prefixes) unless settings name a model explicitly."""
    from rag.search import Searcher

    reader = make_reader(settings)
    encoder = encoder or index_encoder(settings, reader.manifest)
    reranker, plan = make_reranker(settings)
    return Searcher(reader, encoder, settings.retrieval, settings.truncation, reranker, plan)


def make_reranker(settings: Settings):
    """The configured cross-encoder and how it runs, or (None, None) when reranking is off."""
    from rag.rerank import plan

    r = settings.rerank
    if r.model is None:
        return None, None
    return _reranker(r.model, r.max_length, r.batch_size, r.device, r.threads), plan(r.model, r.top_k, r.weight)


@lru_cache(maxsize=2)
def _reranker(model: str, max_length: int, batch_size: int, device: str, threads: int | None):
    from rag.rerank import CrossEncoderReranker

    return CrossEncoderReranker(model, max_length, batch_size, device, threads)


def encoder_spec(settings: Settings, manifest: Manifest | None) -> EncoderSpec:
    """What builds the encoder an index was built with (model folder, prefixes, runtime and precision
    from its manifest) unless settings name them; the configured encoder when there is no index yet."""
    e = settings.encoder
    built = manifest.encoder if manifest else None
    built_backend, _, built_precision = (built.numeric if built else "").partition("-")
    backend = e.backend.value if e.backend else (built_backend if built_backend in ("onnx", "torch") else default_backend(e.device))
    precision = e.precision.value if e.precision else (
        built_precision if built_backend == backend == "onnx" else DEFAULT_PRECISION[backend])
    return EncoderSpec(e.model or (built.model if built else None), e.query_prefix or (built.query_prefix if built else ""),
                       e.passage_prefix or (built.passage_prefix if built else ""), e.device, e.max_seq_length, backend,
                       precision, e.query_threads, e.index_threads)


def build_encoder(spec: EncoderSpec) -> Encoder:
    """The encoder for ``spec``, loaded once per process (what a Ray worker calls)."""
    return _encoder(spec)


def index_encoder(settings: Settings, manifest: Manifest | None, shared: bool = True) -> Encoder:
    """The encoder of :func:`encoder_spec`. The shared one micro-batches concurrent query encodes."""
    e = settings.encoder
    spec = encoder_spec(settings, manifest)
    if not shared:
        return _private_encoder(spec)
    enc = _encoder(spec)
    enc.batch_queries(e.query_batch, e.query_wait_ms)
    return enc


def make_generator(settings: Settings):
    return _generator(settings.generator.spec())


@lru_cache(maxsize=2)
def _generator(spec: GeneratorSpec) -> Generator:
    """One generator per process and spec (the model loads lazily, once); closed at exit."""
    if spec.backend == "openai":
        from rag.generators.openai_compat import OpenAIGenerator

        gen: Generator = OpenAIGenerator(spec.base_url, spec.model or "default", spec.api_key, spec.timeout_s, retries=spec.retries,
                              tokenizer=spec.tokenizer)
    elif spec.backend == "ctranslate2":
        from rag.generators.ct2 import CT2Generator

        gen = CT2Generator(spec.model, spec.device, spec.max_batch, spec.max_wait_ms, spec.cache_dir, spec.threads, spec.compute_type,
                           spec.replicas)
    else:
        from rag.generators.local import LocalGenerator

        gen = LocalGenerator(spec.model, spec.device, spec.max_batch, spec.max_wait_ms, spec.static_cache, spec.cache_dir,
                             spec.threads, spec.prefix_cache, spec.dtype, spec.pack_weights)
    if not _open_generators:
        atexit.register(close_generators)  # before the interpreter tears down: workers must not be mid-torch then
    _open_generators.append(gen)
    return gen


_open_generators: list = []


def close_generators() -> None:
    """Stop and join every generator this process made (their worker threads included)."""
    while _open_generators:
        gen = _open_generators.pop()
        try:
            gen.close()
        except Exception as exc:  # noqa: BLE001 - closing must reach every generator
            log.warning("closing generator %s: %s", type(gen).__name__, exc)
    _generator.cache_clear()


def make_answerer(settings: Settings, searcher=None, generator=None):
    from rag.answer import Answerer, params_from
    from rag.evidence import EvidenceFinder, EvidenceWeights

    a = settings.answer
    searcher = searcher or make_searcher(settings)
    evidence = EvidenceFinder(searcher.encoder, EvidenceWeights(**a.evidence.model_dump()))
    context = a.context
    if context == "auto":  # the embedded 135M model (in-process or on CTranslate2) cannot read five passages;
        g = settings.generator  # any model the user names can
        context = "sentence" if g.backend.value in ("local", "ctranslate2") and g.model is None else "passages"
    return Answerer(searcher, generator or make_generator(settings), params_from(settings),
                    a.contextualize, a.order, a.max_passages, a.prompt_budget, evidence, a.mode, a.evidence_sentences,
                    a.extractive_span, context)
