"""Typed results shared across the library."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple


def passage_id(document_id: str, ordinal: int) -> str:
    """Passage ids are ``<document id>#<ordinal>``: stable across runs, so a resumed job and a clean
    one produce the same ids."""
    return f"{document_id}#{ordinal}"


def indexed_text(title: str, text: str) -> str:
    """What BM25 and the encoder read: the title travels with every passage."""
    return f"{title}\n{text}" if title else text


def document_of(passage_id: str) -> str:
    """The document id inside a passage id."""
    return passage_id.rsplit("#", 1)[0]


class Mode(str, Enum):
    bm25 = "bm25"
    dense = "dense"
    hybrid = "hybrid"


class Scope(str, Enum):
    """An API key's scope; ordered: read < write < admin."""

    read = "read"
    write = "write"
    admin = "admin"

    def allows(self, needed: "Scope") -> bool:
        order = [Scope.read, Scope.write, Scope.admin]
        return order.index(self) >= order.index(needed)


class AnswerMode(str, Enum):
    """What an answer is made of: the best evidence sentence, the generator's text, or both (the
    extractive answer first, the generated one streamed after it)."""

    extractive = "extractive"
    generative = "generative"
    both = "both"


@dataclass(frozen=True)
class SourceDocument:
    """One document as read from a source, before chunking."""

    id: str
    title: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    #: (start, end, location) spans of ``text`` that passages must not cross, e.g. a PDF's pages
    #: ({"page": 3}) or a Word file's sections ({"heading": "Setup > Install"}); empty: one flow of text
    sections: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True)
class Rejection:
    """A source record that could not be used, with where it came from and why."""

    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class Chunk:
    """A passage cut from a document; ``text`` excludes the title, which travels beside it."""

    ordinal: int
    text: str
    token_count: int
    location: dict[str, Any] = field(default_factory=dict)  # where in its document: {"page": 3}, {"heading": ...}


@dataclass(frozen=True)
class Passage:
    """A passage as the retrievers see it."""

    id: str
    document_id: str
    ordinal: int
    title: str
    text: str
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    token_count: int = 0
    location: dict[str, Any] = field(default_factory=dict)  # where in its document: {"page": 3}, {"heading": ...}

    @property
    def indexed_text(self) -> str:
        return indexed_text(self.title, self.text)


class ScoredId(NamedTuple):
    """A retriever's hit before it is joined with the passage text (a tuple: hundreds are made per
    search, and a tuple is made several times faster than a frozen dataclass)."""

    passage_id: str
    score: float


@dataclass
class IndexSummary:
    """What one run of the indexing job did."""

    added: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: int = 0
    rejected: int = 0
    passages_encoded: int = 0
    passages_total: int = 0
    documents_total: int = 0
    generation: str | None = None
    published: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)
