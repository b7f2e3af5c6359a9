"""One pydantic-settings tree. Precedence: CLI flag > environment (RAG_, nested with __) > .env > default.

Components never read settings themselves: they take plain constructor arguments, and the factories
in :mod:`rag.factory` translate settings into components.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class BM25Backend(str, Enum):
    lucene = "lucene"
    rank_bm25 = "rank_bm25"


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
    torch_threads: int | None = Field(None, ge=1, description="intra-op threads; None keeps torch's default")


class BM25Settings(BaseModel):
    backend: BM25Backend = BM25Backend.lucene
    k1: float = Field(0.9, gt=0)
    b: float = Field(0.4, ge=0, le=1)
    threads: int = Field(2, ge=1, description="Lucene indexing threads")


class DenseSettings(BaseModel):
    hnsw_m: int = Field(32, ge=4)
    ef_construction: int = Field(200, ge=8)
    ef_search: int = Field(128, ge=1)
    exact_threshold: int = Field(100_000, ge=0, description="below this many vectors, search exactly")
    faiss_threads: int | None = Field(1, ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAG_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    index_dir: Path = Path("data/index")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite file in index_dir")
    keep_generations: int = Field(2, ge=1, description="published index generations kept on disk")
    progress: bool = True
    log_level: str = "INFO"
    chunking: ChunkingSettings = ChunkingSettings()
    encoder: EncoderSettings = EncoderSettings()
    bm25: BM25Settings = BM25Settings()
    dense: DenseSettings = DenseSettings()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.index_dir / 'rag.db').resolve()}"


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Settings from env/.env/defaults, with CLI overrides (nested dicts, None values dropped) on top."""
    return Settings(**_drop_none(overrides or {}))


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
