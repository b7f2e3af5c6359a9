"""API schemas (pydantic at the edge)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from rag.settings import Mode
from rag.types import AnswerMode
from rag.validation import (
    filters_problem,
    id_problem,
    metadata_problem,
    unicode_problem,
)


def _check(problem) -> Any:
    """An AfterValidator from a rag.validation rule: the reason becomes a 422 naming the field."""

    def validate(value):
        if (reason := problem(value)) is not None:
            raise ValueError(reason)
        return value

    return AfterValidator(validate)


#: every string a client sends must be valid Unicode (a lone surrogate cannot be stored or echoed back)
Str = Annotated[str, _check(unicode_problem)]
FilterValue = str | int | float | bool
Filters = Annotated[dict[str, FilterValue], _check(filters_problem)]


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Str = Field(..., min_length=1, max_length=2000)
    top_k: int | None = Field(None, ge=1, le=100)
    mode: Mode | None = None
    filters: Filters | None = Field(None, description="equality on metadata keys, source or document_id")


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

    question: Str = Field(..., min_length=1, max_length=2000)
    top_k: int | None = Field(None, ge=1, le=20, description="passages given to the generator")
    filters: Filters | None = None
    stream: bool = False
    mode: AnswerMode | None = Field(None, description="extractive | generative | both (default: the answer.mode setting)")
    contextualize: bool | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=2048)
    repetition_penalty: float | None = Field(None, ge=1, le=2)
    stop: list[Str] | None = Field(None, max_length=4)


class ChatMessage(BaseModel):
    role: str = Field(..., pattern="^(system|user|assistant)$")
    content: Str = Field(..., max_length=32_000)


class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's chat-completions request that the local generator honours."""

    model: Str = "default"
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=64)
    stream: bool = False
    temperature: float = Field(0.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(256, ge=1, le=2048)
    stop: list[Str] | Str | None = None
    repetition_penalty: float = Field(1.0, ge=1, le=2)
    stream_options: dict[str, Any] | None = None


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Str = Field(..., min_length=1, max_length=2000)
    passage_id: Str = Field(..., min_length=1, max_length=544)
    signal: Literal["click", "useful", "not_useful"]


class FeedbackResponse(BaseModel):
    id: int


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, _check(id_problem)] = Field(
        ..., description="1-512 characters, no control characters (any other character, '/' included, is fine)")
    title: Str = Field("", max_length=2000)
    text: Str = Field(..., min_length=1, description="at most limits.max_document_chars characters")
    metadata: Annotated[dict[str, Any], _check(metadata_problem)] = Field(
        default_factory=dict, description="finite numbers, strings, booleans, null, lists, objects; at most 64 KB")


class DocumentsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[DocumentIn] = Field(..., min_length=1, max_length=1000)


class JobAccepted(BaseModel):
    job_id: str
    status_url: str


class UploadedFile(BaseModel):
    name: str
    accepted: bool
    reason: str | None = Field(None, description="why a file was refused")
    sections: int = Field(0, description="pages (PDF) or headed sections (Word) read")
    characters: int = 0


class UploadAccepted(JobAccepted):
    files: list[UploadedFile]


class JobStatus(BaseModel):
    id: str
    kind: str
    status: str
    submitted: int
    progress: dict[str, Any]
    error: str | None
    created_at: str
    updated_at: str
