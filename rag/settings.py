"""One pydantic-settings tree. Precedence: CLI flag > environment (RAG_, nested with __) > .env > default.

Settings flow down only: no component imports this module. A component takes plain constructor
arguments or its own frozen settings model, defined beside it (``RetrievalSettings`` in rag.search,
``TruncationSettings`` in rag.truncation, the enums beside what they choose); this tree composes
them, and the factories in :mod:`rag.factory` turn it into components.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from rag.bm25.base import BM25Backend
from rag.cache import DEFAULT_CACHE
from rag.evidence import EvidenceWeights
from rag.generators.base import GeneratorSpec
from rag.milvus import MilvusSettings
from rag.prompts import PassageOrder
from rag.search import RetrievalSettings
from rag.truncation import TruncationSettings
from rag.types import AnswerMode, Mode

__all__ = ["BM25Backend", "Mode", "RetrievalSettings", "Settings", "TruncationSettings", "load_settings"]


class ChunkingSettings(BaseModel):
    enabled: bool = True
    size: int = Field(200, ge=16, description="target passage length in encoder tokens")
    overlap: int = Field(32, ge=0, description="tokens shared by consecutive passages")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> "ChunkingSettings":
        if self.overlap >= self.size:
            raise ValueError(f"chunking.overlap ({self.overlap}) must be smaller than chunking.size ({self.size})")
        return self


class EncoderSettings(BaseModel):
    model: str | None = Field(None, description="local sentence-transformers folder; default all-MiniLM-L6-v2")
    query_prefix: str = ""
    passage_prefix: str = ""
    batch_size: int = Field(64, ge=1)
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    max_seq_length: int | None = Field(None, ge=8)
    backend: EncoderBackend | None = Field(None, description="onnx | torch; default: what the index was built with, else onnx (torch with CUDA)")
    precision: Precision | None = Field(None, description="onnx: int8 | fp32; default: the index's, else int8")
    query_threads: int = Field(1, ge=1, description="intra-op threads of one query's forward pass")
    index_threads: int | None = Field(None, ge=1, description="threads encoding passages; default every core")
    query_batch: int = Field(32, ge=1, description="most concurrent queries encoded in one forward pass (1: off)")
    query_wait_ms: float = Field(1.0, ge=0, le=100, description="how long a query batch waits for company under load")


class EncoderBackend(str, Enum):
    onnx = "onnx"
    torch = "torch"


class Precision(str, Enum):
    fp32 = "fp32"
    int8 = "int8"


class BM25Settings(BaseModel):
    backend: BM25Backend = Field(BM25Backend.bm25s, description="chosen by measurement: docs/benchmarks/bm25.json")
    k1: float = Field(0.9, gt=0)
    b: float = Field(0.4, ge=0, le=1)
    threads: int = Field(2, ge=1, description="Lucene indexing threads")


class DenseSettings(BaseModel):
    hnsw_m: int = Field(32, ge=4)
    ef_construction: int = Field(200, ge=8)
    ef_search: int = Field(128, ge=1)
    exact_threshold: int = Field(100_000, ge=0, description="below this many vectors, search exactly")
    faiss_threads: int | None = Field(1, ge=1)


class IndexBackend(str, Enum):
    local = "local"  # faiss + the BM25 backend's files in each generation folder
    milvus = "milvus"  # dense vectors and BM25 in a Milvus collection per generation (rag.milvus)


class IndexSettings(BaseModel):
    backend: IndexBackend = Field(IndexBackend.local, description="local | milvus (see README, Scaling out)")


class GeneratorBackend(str, Enum):
    local = "local"  # transformers in this process
    ctranslate2 = "ctranslate2"  # CTranslate2 in this process (int8 on CPU)
    openai = "openai"  # an OpenAI-compatible server (vLLM)


class GeneratorSettings(BaseModel):
    backend: GeneratorBackend = GeneratorBackend.local
    model: str | None = Field(None, description="local: a transformers folder (default SmolLM2-135M-Instruct); openai: the model name")
    base_url: str = Field("http://127.0.0.1:8001/v1", description="openai: the server's /v1 URL")
    api_key: str | None = None
    tokenizer: str | None = Field(None, description="openai: local tokenizer folder for exact prompt budgets")
    device: str = "auto"
    threads: int | None = Field(None, ge=1, description="local/ctranslate2: intra-op threads (default: 1 on CPU, which holds up "
                                "beside a busy neighbour; ctranslate2 runs one per replica)")
    compute_type: str = Field("auto", description="ctranslate2: int8 | int8_float16 | float16 | float32 | auto (int8 on CPU, int8_float16 on CUDA)")
    max_batch: int = Field(8, ge=1, description="local: most requests per generate call")
    max_wait_ms: float = Field(10.0, ge=0, description="local: how long a batch waits for company")
    replicas: int | None = Field(None, ge=1, description="ctranslate2: batches decoded at once (default: CPU cores up to 4; 1 on CUDA)")
    static_cache: bool = Field(False, description="local on CUDA: static KV cache + compiled decode step")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="local: the weights' and activations' type (auto: bfloat16 on CUDA and on a CPU with native "
        "bfloat16 matrix instructions (AMX or AVX512-BF16), else float32)")
    pack_weights: bool = Field(True, description="local, bfloat16 on CPU: multiply with weights prepacked for oneDNN "
                               "(decode steps 54 -> 41 ms on one thread for SmolLM2-135M); off: torch's plain matmul")
    prefix_cache: bool = Field(True, description="local: requests reuse the KV cache of the prompt start they share with "
                               "the requests before them (the copy prompt's examples: 0.9 -> 0.5 s on one CPU thread)")
    cache_dir: Path = Field(DEFAULT_CACHE, description="where the default model is converted to, once")
    timeout_s: float = Field(60.0, gt=0)
    retries: int = Field(2, ge=0)
    temperature: float = Field(0.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(256, ge=1, le=4096)
    repetition_penalty: float = Field(1.1, ge=1.0, le=2.0)
    stop: list[str] = Field(default_factory=list)

    def spec(self) -> GeneratorSpec:
        """What the generator is made from (decoding parameters go with each request)."""
        return GeneratorSpec(self.backend.value, self.model, self.base_url, self.api_key, self.tokenizer, self.device,
                             self.threads, self.max_batch, self.max_wait_ms, self.static_cache, Path(self.cache_dir),
                             self.timeout_s, self.retries, self.compute_type, self.replicas, self.prefix_cache,
                             self.dtype, self.pack_weights)


_EVIDENCE = EvidenceWeights()  # the defaults, in one place


class EvidenceSettings(BaseModel):
    """Weights of the evidence-sentence signals and the extractive answer's abstention threshold on the
    question's relevance (chosen on a dev part of squad-dev: python -m eval.benchmarks.evidence)."""

    dense: float = _EVIDENCE.dense
    bm25: float = _EVIDENCE.bm25
    overlap: float = _EVIDENCE.overlap
    rank: float = _EVIDENCE.rank
    answer_type: float = _EVIDENCE.answer_type
    title_overlap: float = _EVIDENCE.title_overlap
    span_likelihood: float = Field(_EVIDENCE.span_likelihood, ge=0,
                                   description="of two or more candidate spans, their closeness plus this times the "
                                               "generator's mean token log-probability of each as the answer (backends "
                                               "local and ctranslate2; others: closeness alone); 0: off")
    min_relevance: float = Field(_EVIDENCE.min_relevance, description="below it the extractive answer abstains")

    @model_validator(mode="before")
    @classmethod
    def _no_min_score(cls, data: Any) -> Any:
        """The old threshold was on the best sentence's ranking score, another scale: ignoring it
        silently would change a user's abstention without a word."""
        if isinstance(data, dict) and "min_score" in data:
            raise ValueError("answer.evidence.min_score was replaced by min_relevance, on another scale "
                             f"(the question's relevance; default {_EVIDENCE.min_relevance}): set that instead")
        return data


class AnswerSettings(BaseModel):
    mode: AnswerMode = Field(AnswerMode.both, description="extractive | generative | both (extractive first)")
    evidence_sentences: int = Field(3, ge=1, le=20, description="evidence sentences returned with an answer")
    extractive_span: bool = Field(True, description="the extractive answer is the short span the question asks for, when found")
    context: str = Field("auto", pattern="^(auto|passages|evidence|sentence)$",
                         description="what the generator reads: passages, evidence sentences, the best sentence (whose "
                                     "words it copies), or auto (sentence for the embedded 135M model, passages for any other)")
    evidence: EvidenceSettings = EvidenceSettings()
    contextualize: bool = Field(True, description="the question before and after the passages")
    order: PassageOrder = PassageOrder.rank
    max_passages: int = Field(5, ge=0, le=50, description="passages given to the generator (after truncation)")
    prompt_budget: int = Field(1536, ge=64, description="prompt tokens, counted by the generator's tokenizer")


class RerankSettings(BaseModel):
    """The optional cross-encoder stage after fusion (off unless a model folder is set)."""

    model: str | None = Field(None, description="a cross-encoder folder from `rag train --reranker`; unset: no reranking")
    top_k: int | None = Field(None, ge=1, le=1000, description="fused hits it reads; default the folder's reranker.json, else 50")
    weight: float | None = Field(None, ge=0, le=1, description="its scores against the fused ones (1: its order alone); "
                                                                "default the folder's reranker.json (chosen on dev), else 1")
    max_length: int = Field(256, ge=16, description="tokens of query + passage it reads")
    batch_size: int = Field(32, ge=1)
    device: str = "auto"
    threads: int | None = Field(None, ge=1, description="intra-op threads of its forward pass (default every core)")


class AuthSettings(BaseModel):
    enabled: bool = Field(True, description="off only by this explicit setting (the loopback demo)")
    rate_per_s: float = Field(20.0, gt=0, description="requests a second per key, on average")
    burst: int = Field(40, ge=1)


class LimitSettings(BaseModel):
    max_body_bytes: int = Field(1_000_000, ge=1024, description="request body, counted as read (chunked or not)")
    max_document_chars: int = Field(200_000, ge=1, description="text of one document sent to the API")
    max_upload_bytes: int = Field(50_000_000, ge=1024, description="one request to /v1/documents/files (files uploaded)")
    max_upload_files: int = Field(20, ge=1, description="files in one upload request")
    max_queued_jobs: int = Field(16, ge=1, description="indexing jobs queued or running, in total")
    max_queued_jobs_per_key: int = Field(4, ge=1, description="indexing jobs queued or running for one API key")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAG_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    index_dir: Path = Path("data/index")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite file in index_dir")
    keep_generations: int = Field(2, ge=1, description="published index generations kept on disk")
    redis_url: str | None = Field(None, description="redis://host:port/db shared by API replicas: one rate limit per key, "
                                                    "one cache of verified keys (default: each process its own)")
    progress: bool = True
    log_level: str = "INFO"
    access_log: bool = Field(False, description="uvicorn's line per request (~0.35 ms each); /metrics counts requests either way")
    search_threads: int | None = Field(None, ge=1, le=256, description="threads running /v1/search requests, more wait "
                                       "their turn (default: the cores, up to 4)")
    search_inline: bool = Field(False, description="run a /v1/search on the event loop when no other request is being "
                                "served (no thread hop: ~0.3 ms less for one client at a time, but a higher p95 under "
                                "concurrency); never with a reranker")
    warmup_queries: int = Field(60, ge=0, le=10_000, description="searches run at start-up before /readyz says ready (0: none)")
    chunking: ChunkingSettings = ChunkingSettings()
    encoder: EncoderSettings = EncoderSettings()
    index: IndexSettings = IndexSettings()
    milvus: MilvusSettings = MilvusSettings()
    bm25: BM25Settings = BM25Settings()
    dense: DenseSettings = DenseSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    rerank: RerankSettings = RerankSettings()
    truncation: TruncationSettings = TruncationSettings()
    generator: GeneratorSettings = GeneratorSettings()
    answer: AnswerSettings = AnswerSettings()
    auth: AuthSettings = AuthSettings()
    limits: LimitSettings = LimitSettings()

    tuned_file: Path | None = Field(None, description="fusion settings written by `rag eval --tune`; default INDEX_DIR/tuned.json")
    eval_cache_dir: Path = Path("data/eval-cache")

    #: set by load_settings: the tuned file to layer beneath env and .env
    _tuned_source: ClassVar[Path | None] = None

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings, dotenv_settings]
        if cls._tuned_source is not None:
            sources.append(JsonConfigSettingsSource(settings_cls, json_file=cls._tuned_source))
        return (*sources, file_secret_settings)

    @property
    def tuned_path(self) -> Path:
        return self.tuned_file or self.index_dir / "tuned.json"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.index_dir / 'rag.db').resolve()}"


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Settings from CLI overrides (nested dicts, None values dropped) > env > .env > tuned file > defaults."""
    overrides = _drop_none(overrides or {})
    Settings._tuned_source = None
    first = Settings(**overrides)
    if not first.tuned_path.is_file():
        return first
    Settings._tuned_source = first.tuned_path
    try:
        return Settings(**overrides)
    finally:
        Settings._tuned_source = None


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = _drop_none(v)
            if not v:
                continue
        if v is not None:
            out[k] = v
    return out
