"""API schemas (pydantic at the edge)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rag.settings import Mode

FilterValue = str | int | float | bool


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(..., min_length=1, max_length=2000)
    top_k: int | None = Field(None, ge=1, le=100)
    mode: Mode | None = None
    filters: dict[str, FilterValue] | None = Field(None, description="equality on metadata keys, source or document_id")


class HitOut(BaseModel):
    rank: int
    score: float
    passage_id: str
    document_id: str
    title: str
    text: str
    source: str
    metadata: dict[str, Any]


class TruncationOut(BaseModel):
    candidates: int
    kept: int
    cut_by: str


class SearchResponse(BaseModel):
    query: str
    mode: Mode
    generation: str
    hits: list[HitOut]
    truncation: TruncationOut
    timings_ms: dict[str, float]


class ErrorBody(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
