"""Micro-batching of query encodes: concurrent searches share one forward pass.

One worker thread (the query path's dedicated executor) runs every query forward pass. It takes
the first waiting request, then whatever else is queued, up to ``max_batch`` texts; while traffic is
concurrent (the last pass held more than one request, or more are queued) it waits up to
``max_wait_ms`` for company before running. A lone client therefore never waits, and under load the
queue fills while the previous pass runs, so batches form without a fixed delay.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class _Request:
    texts: Sequence[str]
    future: Future = field(default_factory=Future)


class QueryBatcher:
    def __init__(self, encode: Callable[[Sequence[str]], np.ndarray], max_batch: int = 32, max_wait_ms: float = 1.0,
                 name: str = "query-encoder") -> None:
        self._encode = encode
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._concurrent = False
        #: passes run and queries encoded (the average batch is their ratio)
        self.passes = 0
        self.queries = 0
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not self._thread.is_alive():
            raise RuntimeError("the query batcher is closed")
        req = _Request(texts)
        self._queue.put(req)
        return req.future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _gather(self, first: _Request) -> list[_Request]:
        batch, size = [first], len(first.texts)
        deadline = time.monotonic() + (self.max_wait if self._concurrent else 0.0)
        while size < self.max_batch:
            try:
                left = deadline - time.monotonic()
                req = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if req is None:  # closing: serve what was gathered, then stop
                self._queue.put(None)
                break
            batch.append(req)
            size += len(req.texts)
        return batch

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = self._gather(first)
            self._concurrent = len(batch) > 1 or not self._queue.empty()
            texts = [t for r in batch for t in r.texts]
            try:
                vecs = self._encode(texts)
            except BaseException as exc:  # noqa: BLE001 - every waiting caller gets the failure
                for r in batch:
                    r.future.set_exception(exc)
                continue
            self.passes += 1
            self.queries += len(texts)
            i = 0
            for r in batch:
                r.future.set_result(vecs[i:i + len(r.texts)])
                i += len(r.texts)
