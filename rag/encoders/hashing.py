"""A deterministic hashing encoder: a fake for fast unit tests, never the main path."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from rag.encoders.base import Encoder

_TOKEN = re.compile(r"\w+|[^\w\s]")


class HashEncoder(Encoder):
    """Bag of hashed lower-cased tokens, L2-normalised. Shares words => similar vectors."""

    def __init__(self, dim: int = 64, max_length: int = 64, query_prefix: str = "", passage_prefix: str = "") -> None:
        self.dim = dim
        self.max_length = max_length
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.model_key = f"hash-{dim}-{max_length}|p={passage_prefix}"
        self.tokenizer_key = "hash-words"

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in _TOKEN.finditer(text)]

    def _encode(self, texts: Sequence[str], batch_size: int, progress: bool) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            spans = self.token_spans(text)[: self.max_length - self.num_special_tokens]
            for a, b in spans:
                h = int.from_bytes(hashlib.blake2b(text[a:b].lower().encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
            norm = np.linalg.norm(out[i])
            out[i] = out[i] / norm if norm > 0 else 1.0 / np.sqrt(self.dim)
        return out
