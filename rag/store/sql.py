"""DocumentStore: the system of record for documents, passages and cached passage vectors, and (through
``keys`` and ``jobs``) API keys and indexing jobs. Every SQL session the project opens is opened in rag.store."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import (
    ArgumentError,
    DisconnectionError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from rag.errors import ConfigError, IndexUnavailableError
from rag.store.jobs import JobTable
from rag.store.keys import KeyTable
from rag.store.models import DocumentRow, FeedbackRow, PassageRow, rowcount, utcnow
from rag.types import Chunk, SourceDocument, passage_id

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class StoredPassage:
    """A passage row joined with its document, as the index builder reads it."""

    id: str
    document_id: str
    ordinal: int
    title: str
    text: str
    source: str
    metadata: dict[str, Any]
    token_count: int
    embedding: bytes | None
    location: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DocumentWrite:
    """A document to upsert together with its freshly cut chunks."""

    document: SourceDocument
    source: str
    content_hash: str
    chunks: Sequence[Chunk]
    text_hashes: Sequence[str]


class DocumentStore:
    """Documents and passages in SQL: a SQLite file by default, PostgreSQL by URL."""

    def __init__(self, url: str, migrate: bool = True) -> None:
        """``migrate``: bring the schema to the newest revision now (jobs and the CLI do; the service
        migrates once at start-up instead, so a read-only or full disk still serves reads)."""
        self.url = url
        if migrate and url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            sqlite_file = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
            self._sqlite = _SQLiteConnector(sqlite_file) if sqlite_file and sqlite_file != ":memory:" else None
            extra = {"creator": self._sqlite} if self._sqlite else {}
            self.engine: Engine = create_engine(url, pool_pre_ping=True, **extra)
        except (ArgumentError, ImportError) as exc:
            raise ConfigError(f"database_url {url!r} is not usable: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "checkout", _SQLiteConnector.retire_fallback)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self.keys = KeyTable(self._session)  # API keys
        self.jobs = JobTable(self._session)  # indexing jobs submitted through the API
        if migrate:
            self.migrate()

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision, all of it in one transaction: a job killed
        half-way through leaves the schema as it was, never some tables without their revision."""
        engine = self.engine
        if self._sqlite is not None:
            # pysqlite opens a transaction only before INSERT/UPDATE/DELETE, so CREATE TABLE would
            # commit on its own; this engine hands transactions to SQLite (BEGIN IMMEDIATE: one migrator)
            engine = create_engine(self.url, creator=self._sqlite, poolclass=NullPool)
            event.listen(engine, "connect", lambda dbapi_conn, _record: setattr(dbapi_conn, "isolation_level", None))
            event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        try:
            with engine.begin() as conn:
                cfg = _alembic_config()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except OperationalError as exc:
            raise ConfigError(f"cannot open database {self.engine.url!r}: {exc.orig}") from exc
        finally:
            if engine is not self.engine:
                engine.dispose()

    def check(self) -> None:
        """Raise :class:`IndexUnavailableError` unless the store can be read and its schema is current."""
        head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
        try:
            with self.engine.connect() as conn:
                version = MigrationContext.configure(conn).get_current_revision()
        except SQLAlchemyError as exc:
            raise IndexUnavailableError(f"the database cannot be read: {getattr(exc, 'orig', exc)}") from exc
        if version != head:
            raise IndexUnavailableError(f"the database schema is at revision {version}, not {head}: run `rag migrate`")

    def session(self) -> Session:
        return self._session()

    def close(self) -> None:
        self.engine.dispose()

    # -- documents -----------------------------------------------------------------------------

    def document_hashes(self) -> dict[str, tuple[str, str]]:
        """id -> (source, content_hash) for every stored document."""
        with self.session() as s:
            rows = s.execute(select(DocumentRow.id, DocumentRow.source, DocumentRow.content_hash))
            return {r.id: (r.source, r.content_hash) for r in rows}

    def write_documents(self, writes: Sequence[DocumentWrite]) -> None:
        """Insert or replace documents and their passages in one transaction.

        Vectors of passages whose text did not change are carried over, so an edit re-encodes only
        the passages it touched.
        """
        if not writes:
            return
        ids = [w.document.id for w in writes]
        with self.session() as s, s.begin():
            old = s.execute(
                select(PassageRow.document_id, PassageRow.text_hash, PassageRow.embedding, PassageRow.embedding_model)
                .where(PassageRow.document_id.in_(ids), PassageRow.embedding.is_not(None))
            ).all()
            reuse = {(r.document_id, r.text_hash): (r.embedding, r.embedding_model) for r in old}
            existing = set(s.scalars(select(DocumentRow.id).where(DocumentRow.id.in_(ids))))
            s.execute(delete(PassageRow).where(PassageRow.document_id.in_(ids)))
            now = utcnow()
            for w in writes:
                values = dict(
                    source=w.source, title=w.document.title, meta=w.document.metadata,
                    content_hash=w.content_hash, updated_at=now,
                )
                if w.document.id in existing:
                    s.execute(update(DocumentRow).where(DocumentRow.id == w.document.id).values(**values))
                else:
                    s.add(DocumentRow(id=w.document.id, created_at=now, **values))
            s.flush()
            rows = []
            for w in writes:
                for chunk, th in zip(w.chunks, w.text_hashes, strict=True):
                    emb, model = reuse.get((w.document.id, th), (None, None))
                    rows.append(dict(
                        id=passage_id(w.document.id, chunk.ordinal), document_id=w.document.id,
                        ordinal=chunk.ordinal, text=chunk.text, token_count=chunk.token_count,
                        text_hash=th, embedding=emb, embedding_model=model, location=chunk.location or None,
                    ))
            if rows:
                s.execute(insert(PassageRow), rows)

    def delete_documents(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        deleted = 0
        with self.session() as s, s.begin():
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                s.execute(delete(PassageRow).where(PassageRow.document_id.in_(part)))
                deleted += rowcount(s.execute(delete(DocumentRow).where(DocumentRow.id.in_(part))))
        return deleted

    def counts(self) -> tuple[int, int]:
        """(documents, passages)."""
        with self.session() as s:
            docs = s.scalar(select(func.count()).select_from(DocumentRow)) or 0
            passages = s.scalar(select(func.count()).select_from(PassageRow)) or 0
            return docs, passages

    # -- feedback ------------------------------------------------------------------------------

    def add_feedback(self, query: str, passage_id: str, signal: str) -> int:
        with self.session() as s, s.begin():
            row = FeedbackRow(query=query, passage_id=passage_id, signal=signal, created_at=utcnow())
            s.add(row)
            s.flush()
            return int(row.id)

    def positive_feedback(self) -> list[tuple[str, str, str, str]]:
        """(query, passage id, document title, passage text) for every click or useful signal on a
        passage that still exists."""
        with self.session() as s:
            rows = s.execute(
                select(FeedbackRow.query, PassageRow.id, DocumentRow.title, PassageRow.text)
                .join(PassageRow, PassageRow.id == FeedbackRow.passage_id)
                .join(DocumentRow, DocumentRow.id == PassageRow.document_id)
                .where(FeedbackRow.signal.in_(("click", "useful")))
                .order_by(FeedbackRow.id)
            )
            return [(r[0], r[1], r[2], r[3]) for r in rows]

    # -- vectors -------------------------------------------------------------------------------

    def _missing_vectors(self, model_key: str):
        return or_(PassageRow.embedding.is_(None), PassageRow.embedding_model != model_key)

    def missing_vector_ids(self, model_key: str) -> list[str]:
        """Ids of passages whose vector is absent or was written by another model, in id order."""
        with self.session() as s:
            return list(s.scalars(select(PassageRow.id).where(self._missing_vectors(model_key)).order_by(PassageRow.id)))

    def passage_texts(self, ids: Sequence[str]) -> list[tuple[str, str, str]]:
        """(passage id, document title, passage text) for the given ids, in the given order."""
        with self.session() as s:
            rows = s.execute(
                select(PassageRow.id, DocumentRow.title, PassageRow.text)
                .join(DocumentRow, DocumentRow.id == PassageRow.document_id)
                .where(PassageRow.id.in_(list(ids)))
            )
            found = {r.id: (r.id, r.title, r.text) for r in rows}
        return [found[i] for i in ids if i in found]

    def state(self) -> Iterator[tuple[str, str, str]]:
        """(passage id, passage text hash, document content hash) in id order: what an index holds."""
        with self.session() as s:
            yield from s.execute(
                select(PassageRow.id, PassageRow.text_hash, DocumentRow.content_hash)
                .join(DocumentRow, DocumentRow.id == PassageRow.document_id)
                .order_by(PassageRow.id)
                .execution_options(yield_per=5000)
            ).tuples()

    def set_vectors(self, model_key: str, vectors: Sequence[tuple[str, bytes]]) -> None:
        with self.session() as s, s.begin():
            s.connection().execute(
                update(cast(Table, PassageRow.__table__))
                .where(PassageRow.id == bindparam("pid"))
                .values(embedding=bindparam("emb"), embedding_model=model_key),
                [{"pid": pid, "emb": emb} for pid, emb in vectors],
            )

    def iter_passages(self, batch: int = 2000) -> Iterator[StoredPassage]:
        """Every passage with its document's title, source and metadata, in passage-id order."""
        with self.session() as s:
            result = s.execute(
                select(
                    PassageRow.id, PassageRow.document_id, PassageRow.ordinal, DocumentRow.title,
                    PassageRow.text, DocumentRow.source, DocumentRow.meta, PassageRow.token_count,
                    PassageRow.embedding, PassageRow.location,
                )
                .join(DocumentRow, DocumentRow.id == PassageRow.document_id)
                .order_by(PassageRow.id)
                .execution_options(yield_per=batch)
            )
            for r in result:
                yield StoredPassage(
                    r.id, r.document_id, r.ordinal, r.title, r.text, r.source, r.meta or {}, r.token_count, r.embedding,
                    r.location or {},
                )


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


class _SQLiteConnector:
    """Opens the SQLite store in WAL mode. When the disk is full (or read-only) a WAL database cannot
    be opened at all, since its shared-memory file must be created first; then the store falls back
    to an immutable read-only connection, so API keys and job status can still be read. Such a
    connection is retired after FALLBACK_S and the normal one tried again."""

    FALLBACK_S = 10.0

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        try:
            for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL", "busy_timeout=30000"):
                conn.execute(f"PRAGMA {pragma}")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            if not Path(self.path).is_file() or not any(w in str(exc) for w in ("disk I/O", "full", "readonly", "read-only")):
                raise
            log.warning("the database %s cannot be opened for writing (%s): reading it read-only", self.path, exc)
            ro = sqlite3.connect(f"file:{Path(self.path).resolve()}?mode=ro&immutable=1", uri=True, check_same_thread=False)
            _fallback_since[id(ro)] = time.monotonic()
            return ro

    @staticmethod
    def retire_fallback(dbapi_conn, _record, _proxy) -> None:
        since = _fallback_since.get(id(dbapi_conn))
        if since is not None and time.monotonic() - since > _SQLiteConnector.FALLBACK_S:
            _fallback_since.pop(id(dbapi_conn), None)
            raise DisconnectionError("retiring a read-only fallback connection")  # the pool opens a new one


_fallback_since: dict[int, float] = {}
