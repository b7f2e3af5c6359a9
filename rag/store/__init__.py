"""The SQL document store (SQLAlchemy 2): documents, passages and their cached vectors."""

from rag.store.sql import DocumentStore, StoredPassage

__all__ = ["DocumentStore", "StoredPassage"]
