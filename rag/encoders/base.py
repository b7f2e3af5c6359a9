"""The Encoder interface: token spans (for chunking) and unit-length vectors for queries and passages."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag.encoders.batcher import QueryBatcher


@dataclass(frozen=True)
class EncoderSpec:
    """What makes one sentence-transformers encoder: the factory keeps one encoder per spec."""

    model: str | None = None  # a local folder; None: the packaged all-MiniLM-L6-v2
    query_prefix: str = ""
    passage_prefix: str = ""
    device: str = "auto"
    max_seq_length: int | None = None
    backend: str = "onnx"  # torch | onnx
    precision: str = "int8"  # fp32 | int8 (onnx); torch runs fp32 (fp16 on CUDA)
    query_threads: int = 1
    index_threads: int | None = None  # None: every core the process may use

#: more queries than this in one call are encoded as a bulk job, not on the query path
BULK = 64


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
    #: the runtime and precision of the forward pass ("torch-fp32", "onnx-int8", ...)
    numeric: str = "torch-fp32"
    #: set by :meth:`batch_queries`: concurrent query encodes then share forward passes
    batcher: QueryBatcher | None = None

    @abstractmethod
    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character (start, end) of each token of ``text``, special tokens excluded."""

    @property
    def weights_key(self) -> str:
        """The model key without the numeric path (equal: the same model, perhaps on another runtime)."""
        return self.model_key

    def count_tokens(self, text: str) -> int:
        return len(self.token_spans(text))

    @abstractmethod
    def _encode(self, texts: Sequence[str], batch_size: int, progress: bool) -> np.ndarray:
        """Unit-length float32 vectors, one row per text (prefixes already applied)."""

    def encode_passages(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        return self._encode([self.passage_prefix + t for t in texts], batch_size, progress)

    def _encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """The query path (one forward pass; backends give it its own threads)."""
        return self._encode(texts, max(1, len(texts)), False)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        texts = [self.query_prefix + t for t in texts]
        if len(texts) > BULK:  # a bulk job (mining, evaluation): batches on the indexing path
            return self._encode(texts, BULK, False)
        batcher = self.batcher
        return batcher.encode(texts) if batcher is not None else self._encode_queries(texts)

    def close(self) -> None:
        """Stop the query worker, if any (the encoder still encodes, one call at a time)."""
        if self.batcher is not None:
            self.batcher.close()
            self.batcher = None

    def batch_queries(self, max_batch: int, max_wait_ms: float) -> None:
        """Run query encodes on one worker thread that batches concurrent ones (max_batch > 1)."""
        if max_batch > 1 and self.batcher is None:
            self.batcher = QueryBatcher(self._encode_queries, max_batch, max_wait_ms)
