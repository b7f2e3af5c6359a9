"""Indexing jobs submitted through the API: the batch job's own code, run by a worker thread.

Jobs are durable: the request a job carries (documents, ids to delete) is stored with its status in
SQL before the client hears 202, and the worker reads it from there. A process that starts finds the
jobs left `queued` or `running` by a process that is gone and runs them again (the indexing job is
idempotent, so a job cut short is simply finished). Every job ends as exactly one of `done` or
`failed`; `done` carries the generation it published.

Jobs on one index run one at a time (the index's lock, shared with `rag index`); a job that finds the
lock taken waits its turn. Searches keep using the published generation and move to the new one when
a job publishes it. The queue is bounded in total and per API key (429 beyond).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from indexer.job import JobInterrupted
from indexer.sources import RecordsSource
from rag.errors import IndexLockedError
from rag.settings import Settings
from rag.store.jobs import ACTIVE
from rag.types import SourceDocument

log = logging.getLogger(__name__)
API_SOURCE = "api"


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (with the pid, unique on a host)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


HOST = socket.gethostname()
OWNER = f"{HOST}:{os.getpid()}:{_start_time(os.getpid())}"


def owner_alive(owner: str | None) -> bool:
    """Whether the process named by ``owner`` may still run its jobs. Processes on other hosts are
    not ours to judge (they recover their own jobs when they restart)."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid, _, started = rest.partition(":")
    if host != HOST:
        return True
    if owner == OWNER:
        return True
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        pass
    return _start_time(int(pid)) == started


class JobRunner:
    def __init__(self, settings: Settings, store, searcher, encoder_factory) -> None:
        self.settings = settings
        self._store = store  # Lazy
        self._searcher = searcher  # Lazy
        self._encoder_factory = encoder_factory
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        #: outcomes this process could not write to SQL (a full disk): reported by get() all the same
        self._unrecorded: dict[str, dict[str, Any]] = {}

    # -- submitting ----------------------------------------------------------------------------

    def submit(self, kind: str, docs: list[SourceDocument] | None = None, delete: list[str] | None = None,
               key_id: str | None = None, idempotency_key: str | None = None) -> str:
        """Store the job and queue it; :class:`JobQueueFullError` when the queue is at its bound. With an
        ``idempotency_key`` the client already used (through any replica), the earlier job's id is
        returned and nothing new runs."""
        limits = self.settings.limits
        job_id = uuid.uuid4().hex
        payload = {"documents": [asdict(d) for d in docs or []], "delete": list(delete or [])}
        request_key = f"{key_id or '-'}:{idempotency_key}" if idempotency_key else None
        with self._lock:
            stored = self._store.get().jobs.add(job_id, kind, len(docs or delete or []), payload, key_id, OWNER,
                                                limits.max_queued_jobs, limits.max_queued_jobs_per_key, request_key)
        if stored == job_id:
            self._enqueue(job_id)
        return stored

    def _enqueue(self, job_id: str) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()  # a runner started again after close() (an app served twice)
                self._thread = threading.Thread(target=self._loop, name="index-jobs", daemon=True)
                self._thread.start()
        self._queue.put(job_id)

    def recover(self) -> list[str]:
        """Take over the jobs that a process which is gone left queued or running, and run them again.
        Returns their ids. Called once at start-up."""
        jobs = self._store.get().jobs
        resumed = []
        for row in jobs.active():
            if owner_alive(row.owner):
                continue
            if not jobs.claim(row.id, row.owner, OWNER):
                continue  # another process took it first
            if row.payload is None:
                self._finish(row.id, "failed", error="interrupted by a restart, and its request was not stored; submit it again")
                continue
            log.info("resuming indexing job %s, interrupted by a restart", row.id)
            self._update(row.id, status="queued", summary={"stage": "queued", "resumed": True})
            self._enqueue(row.id)
            resumed.append(row.id)
        return resumed

    def close(self, timeout: float = 30.0) -> None:
        """Stop: a job in progress stops at its next batch boundary and stays `running` in SQL, so the
        next start resumes it; the worker is joined (no thread may be in native code at exit)."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the indexing worker did not stop within %.0f s", timeout)

    # -- status --------------------------------------------------------------------------------

    def get(self, job_id: str) -> dict[str, Any] | None:
        row = self._store.get().jobs.get(job_id)
        if row is None:
            return None
        out = {"id": row.id, "kind": row.kind, "status": row.status, "submitted": row.submitted, "progress": row.summary,
               "error": row.error, "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}
        return out | self._unrecorded.get(job_id, {})

    def _update(self, job_id: str, **values) -> None:
        self._store.get().jobs.update(job_id, **values)

    def _finish(self, job_id: str, status: str, summary: dict | None = None, error: str | None = None) -> None:
        """Record the outcome, retrying a store that cannot write (a full disk) a few times; if it
        still cannot, the outcome is reported from memory and the next start re-runs the job."""
        values: dict[str, Any] = {"status": status, "error": error, "payload": None}
        if summary is not None:
            values["summary"] = summary
        for attempt in range(5):
            try:
                self._update(job_id, **values)
                self._unrecorded.pop(job_id, None)
                return
            except Exception as exc:  # noqa: BLE001 - the job's outcome must not be lost with the thread
                log.error("could not record job %s as %s (attempt %d): %s", job_id, status, attempt + 1, exc)
                self._unrecorded[job_id] = {"status": status, "error": error, **({"progress": summary} if summary else {})}
                time.sleep(0.2 * 2**attempt)

    # -- running -------------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                self._run(job_id)
            except JobInterrupted:
                log.info("indexing job %s stopped by the shutdown; the next start resumes it", job_id)
                return
            except Exception as exc:  # noqa: BLE001 - the job's status carries the error
                log.exception("indexing job %s failed", job_id)
                self._finish(job_id, "failed", error=str(exc) or type(exc).__name__)

    def _run(self, job_id: str) -> None:
        from indexer.job import make_index_job

        row = self._store.get().jobs.get(job_id)
        if row is None or row.status not in ACTIVE or row.payload is None:
            return
        docs = [SourceDocument(**d) for d in row.payload.get("documents", [])]
        delete = list(row.payload.get("delete", []))
        job = make_index_job(self.settings.model_copy(update={"progress": False}), encoder=self._encoder_factory(),
                             store=self._store.get())
        job.commit_every = 64

        def progress(stage: str, done: int, total: int) -> None:
            self._update(job_id, summary={"stage": stage, "done": done, "total": total})

        job.on_progress = progress
        job.stop_event = self._stopping
        self._update(job_id, status="running", owner=OWNER, summary={"stage": "waiting for the index lock"})
        while True:
            try:
                summary = job.run(RecordsSource(API_SOURCE, docs) if docs else None, delete=delete)
                break
            except IndexLockedError:
                if self._stopping.wait(0.5):  # another job holds the index: wait our turn
                    raise JobInterrupted("stopped while waiting for the index lock") from None
        out = asdict(summary)
        out["rejections"] = [str(r) for r in summary.rejections]
        try:  # before "done", so a client that saw "done" searches the new generation; the job is done regardless
            if self._searcher.loaded:
                self._searcher.get().refresh()
        except Exception as exc:  # noqa: BLE001
            log.warning("after job %s: the searcher did not refresh: %s", job_id, exc)
        self._finish(job_id, "done", summary={"stage": "done", **out})
