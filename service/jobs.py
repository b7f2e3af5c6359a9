"""Indexing jobs submitted through the API: the batch job's own code, run by a worker thread.

Status lives in SQL (any worker process can answer GET /v1/jobs/{id}); the job itself runs in the
process that accepted it. Jobs on one index run one at a time (the index's lock, shared with `rag
index`); a job that finds the lock taken waits its turn. Searches keep using the published
generation and move to the new one when the job publishes it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import asdict
from typing import Any

from sqlalchemy import update

from indexer.sources import RecordsSource
from rag.errors import IndexLockedError
from rag.settings import Settings
from rag.store.models import JobRow, utcnow
from rag.types import SourceDocument

log = logging.getLogger(__name__)
API_SOURCE = "api"


class JobRunner:
    def __init__(self, settings: Settings, store, searcher, encoder_factory) -> None:
        self.settings = settings
        self._store = store  # Lazy
        self._searcher = searcher  # Lazy
        self._encoder_factory = encoder_factory
        self._queue: queue.Queue[tuple[str, list[SourceDocument], list[str]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, kind: str, docs: list[SourceDocument] | None = None, delete: list[str] | None = None) -> str:
        job_id = uuid.uuid4().hex
        with self._store.get().session() as s, s.begin():
            now = utcnow()
            s.add(JobRow(id=job_id, kind=kind, status="queued", submitted=len(docs or delete or []),
                         summary={"stage": "queued"}, created_at=now, updated_at=now))
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="index-jobs", daemon=True)
                self._thread.start()
        self._queue.put((job_id, docs or [], delete or []))
        return job_id

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._store.get().session() as s:
            row = s.get(JobRow, job_id)
            if row is None:
                return None
            return {"id": row.id, "kind": row.kind, "status": row.status, "submitted": row.submitted,
                    "progress": row.summary or {}, "error": row.error,
                    "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}

    def _update(self, job_id: str, **values) -> None:
        with self._store.get().session() as s, s.begin():
            s.execute(update(JobRow).where(JobRow.id == job_id).values(updated_at=utcnow(), **values))

    def _loop(self) -> None:
        while True:
            job_id, docs, delete = self._queue.get()
            try:
                self._run(job_id, docs, delete)
            except Exception as exc:  # noqa: BLE001 - the job's status carries the error
                log.exception("indexing job %s failed", job_id)
                self._update(job_id, status="failed", error=str(exc))

    def _run(self, job_id: str, docs: list[SourceDocument], delete: list[str]) -> None:
        from rag.factory import make_index_job

        job = make_index_job(self.settings.model_copy(update={"progress": False}), encoder=self._encoder_factory(),
                             store=self._store.get())
        job.commit_every = 64

        def progress(stage: str, done: int, total: int) -> None:
            self._update(job_id, summary={"stage": stage, "done": done, "total": total})

        job.on_progress = progress
        self._update(job_id, status="running", summary={"stage": "waiting for the index lock"})
        while True:
            try:
                summary = job.run(RecordsSource(API_SOURCE, docs) if docs else None, delete=delete)
                break
            except IndexLockedError:
                time.sleep(0.5)  # another job holds the index: wait our turn
        out = asdict(summary)
        out["rejections"] = [str(r) for r in summary.rejections]
        self._update(job_id, status="done", summary={"stage": "done", **out})
        if self._searcher.loaded:
            self._searcher.get().refresh()
