"""API schemas (pydantic at the edge)."""

from __future__ import annotations

from typing import Any, Literal

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


class AnswerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(..., min_length=1, max_length=2000)
    top_k: int | None = Field(None, ge=1, le=20, description="passages given to the generator")
    filters: dict[str, FilterValue] | None = None
    stream: bool = False
    contextualize: bool | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=2048)
    repetition_penalty: float | None = Field(None, ge=1, le=2)
    stop: list[str] | None = Field(None, max_length=4)


class ChatMessage(BaseModel):
    role: str = Field(..., pattern="^(system|user|assistant)$")
    content: str = Field(..., max_length=32_000)


class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's chat-completions request that the local generator honours."""

    model: str = "default"
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=64)
    stream: bool = False
    temperature: float = Field(0.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(256, ge=1, le=2048)
    stop: list[str] | str | None = None
    repetition_penalty: float = Field(1.0, ge=1, le=2)
    stream_options: dict[str, Any] | None = None


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(..., min_length=1, max_length=2000)
    passage_id: str = Field(..., min_length=1, max_length=544)
    signal: Literal["click", "useful", "not_useful"]


class FeedbackResponse(BaseModel):
    id: int


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(..., min_length=1, max_length=512)
    title: str = Field("", max_length=2000)
    text: str = Field(..., min_length=1, max_length=1_000_000)
    metadata: dict[str, Any] = Field(default_factory=dict)


class DocumentsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[DocumentIn] = Field(..., min_length=1, max_length=1000)


class JobAccepted(BaseModel):
    job_id: str
    status_url: str


class JobStatus(BaseModel):
    id: str
    kind: str
    status: str
    submitted: int
    progress: dict[str, Any]
    error: str | None
    created_at: str
    updated_at: str
