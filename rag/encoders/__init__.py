"""Encoders: one interface (:class:`Encoder`), a sentence-transformers backend and a hashing fake."""

from rag.encoders.base import Encoder
from rag.encoders.hashing import HashEncoder

__all__ = ["Encoder", "HashEncoder"]
