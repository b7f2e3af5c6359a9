"""The Encoder interface: token spans (for chunking) and unit-length vectors for queries and passages."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EncoderSpec:
    """What makes one sentence-transformers encoder: the factory keeps one encoder per spec."""

    model: str | None = None  # a local folder; None: the packaged all-MiniLM-L6-v2
    query_prefix: str = ""
    passage_prefix: str = ""
    device: str = "auto"
    max_seq_length: int | None = None
    torch_threads: int | None = None


class Encoder(ABC):
    """Turns text into unit-length float32 vectors; inner product is cosine similarity."""

    #: identifies everything that changes passage vectors (weights, passage prefix, max length)
    model_key: str
    #: identifies the tokenizer, which decides how documents are chunked
    tokenizer_key: str
    dim: int
    #: most tokens one input may have, special tokens included
    max_length: int
    #: special tokens the tokenizer adds around every input ([CLS] and [SEP] for BERT)
    num_special_tokens: int = 2
    query_prefix: str = ""
    passage_prefix: str = ""

    @abstractmethod
    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character (start, end) of each token of ``text``, special tokens excluded."""

    def count_tokens(self, text: str) -> int:
        return len(self.token_spans(text))

    @abstractmethod
    def _encode(self, texts: Sequence[str], batch_size: int, progress: bool) -> np.ndarray:
        """Unit-length float32 vectors, one row per text (prefixes already applied)."""

    def encode_passages(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        return self._encode([self.passage_prefix + t for t in texts], batch_size, progress)

    def encode_queries(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self._encode([self.query_prefix + t for t in texts], batch_size, False)
