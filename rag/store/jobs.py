"""Indexing job rows: status, progress, the request a job carries until it ends, and its owner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from rag.errors import JobQueueFullError
from rag.store.models import JobRow, rowcount, utcnow

ACTIVE = ("queued", "running")


@dataclass(frozen=True)
class StoredJob:
    id: str
    kind: str
    status: str
    submitted: int
    summary: dict[str, Any]
    error: str | None
    payload: dict[str, Any] | None
    key_id: str | None
    owner: str | None
    created_at: datetime
    updated_at: datetime


class JobTable:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def add(self, job_id: str, kind: str, submitted: int, payload: dict[str, Any], key_id: str | None, owner: str,
            max_active: int, max_active_per_key: int, request_key: str | None = None) -> str:
        """Store a queued job and return its id, or raise :class:`JobQueueFullError` when that many are
        already active (in all, or for ``key_id``); the count and the insert are one transaction. A
        ``request_key`` already stored returns that job's id instead (whichever process stored it)."""
        if request_key is not None and (existing := self._by_request(request_key)) is not None:
            return existing
        try:
            with self._sessions() as s, s.begin():
                active = s.scalar(select(func.count()).select_from(JobRow).where(JobRow.status.in_(ACTIVE))) or 0
                if active >= max_active:
                    raise JobQueueFullError(f"{active} indexing jobs are queued or running (the limit); retry later")
                if key_id is not None:
                    mine = s.scalar(select(func.count()).select_from(JobRow)
                                    .where(JobRow.status.in_(ACTIVE), JobRow.key_id == key_id)) or 0
                    if mine >= max_active_per_key:
                        raise JobQueueFullError(f"key {key_id} has {mine} indexing jobs queued or running (the limit "
                                                "per key); wait for one to finish")
                now = utcnow()
                s.add(JobRow(id=job_id, kind=kind, status="queued", submitted=submitted, summary={"stage": "queued"},
                             payload=payload, key_id=key_id, owner=owner, created_at=now, updated_at=now,
                             request_key=request_key))
        except IntegrityError:  # another process stored the same request_key between our check and insert
            existing = self._by_request(request_key) if request_key is not None else None
            if existing is None:
                raise
            return existing
        return job_id

    def _by_request(self, request_key: str) -> str | None:
        with self._sessions() as s:
            return s.scalar(select(JobRow.id).where(JobRow.request_key == request_key))

    def get(self, job_id: str) -> StoredJob | None:
        with self._sessions() as s:
            row = s.get(JobRow, job_id)
            return None if row is None else _job(row)

    def active(self) -> list[StoredJob]:
        """Jobs queued or running, oldest first."""
        with self._sessions() as s:
            return [_job(r) for r in s.scalars(select(JobRow).where(JobRow.status.in_(ACTIVE)).order_by(JobRow.created_at))]

    def claim(self, job_id: str, previous_owner: str | None, owner: str) -> bool:
        """Take an active job over from ``previous_owner``: of several processes claiming it, one wins."""
        same = JobRow.owner.is_(None) if previous_owner is None else JobRow.owner == previous_owner
        with self._sessions() as s, s.begin():
            return rowcount(s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status.in_(ACTIVE), same)
                                      .values(owner=owner, updated_at=utcnow()))) > 0

    def update(self, job_id: str, **values: Any) -> None:
        with self._sessions() as s, s.begin():
            s.execute(update(JobRow).where(JobRow.id == job_id).values(updated_at=utcnow(), **values))


def _job(row: JobRow) -> StoredJob:
    return StoredJob(row.id, row.kind, row.status, row.submitted, row.summary or {}, row.error, row.payload, row.key_id,
                     row.owner, row.created_at, row.updated_at)
