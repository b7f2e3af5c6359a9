"""ORM tables. Schema changes go through an Alembic migration in ``migrations/versions``."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, cast

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched (its result is a cursor result)."""
    return cast(CursorResult[Any], result).rowcount


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class DocumentRow(Base):
    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(String(512), primary_key=True)
    source: Mapped[str] = mapped_column(String(1024), index=True)
    title: Mapped[str] = mapped_column(Text, default="")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class PassageRow(Base):
    __tablename__ = "passages"

    id: Mapped[str] = mapped_column(String(544), primary_key=True)
    document_id: Mapped[str] = mapped_column(
        String(512), ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int] = mapped_column(Integer)
    text_hash: Mapped[str] = mapped_column(String(64))
    location: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # {"page": 3}, {"heading": "A > B"}
    # Cached dense vector (float32 bytes) and the model that wrote it: unchanged passages are
    # never re-encoded, and a killed job resumes where its last committed batch ended.
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    embedding_model: Mapped[str | None] = mapped_column(String(256), nullable=True, index=True)


class FeedbackRow(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    query: Mapped[str] = mapped_column(Text)
    passage_id: Mapped[str] = mapped_column(String(544), index=True)
    signal: Mapped[str] = mapped_column(String(16))  # click | useful | not_useful
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # public part of the key
    name: Mapped[str] = mapped_column(String(200), default="")
    key_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the secret part
    scope: Mapped[str] = mapped_column(String(16))  # read | write | admin
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # upsert | delete
    status: Mapped[str] = mapped_column(String(16), index=True)  # queued | running | done | failed
    submitted: Mapped[int] = mapped_column(Integer)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # what the job does (documents to upsert, ids to delete): kept until it ends, so a restart can resume it
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)  # the API key that submitted it
    owner: Mapped[str | None] = mapped_column(String(128), nullable=True)  # host:pid of the process running it
    # "<API key id>:<Idempotency-Key>" when the client sent one: a retry finds this job instead of adding one
    request_key: Mapped[str | None] = mapped_column(String(200), nullable=True, unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
