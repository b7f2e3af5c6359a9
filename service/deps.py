"""Dependencies: the searcher is built once, lazily, and follows newly published generations."""

from __future__ import annotations

import threading
import time
from typing import Annotated

from fastapi import Depends, Request

from rag.search import Searcher

REFRESH_EVERY_S = 1.0


class SearcherHolder:
    def __init__(self, factory) -> None:
        self._factory = factory
        self._searcher: Searcher | None = None
        self._lock = threading.Lock()
        self._checked = 0.0

    def get(self) -> Searcher:
        with self._lock:
            if self._searcher is None:
                self._searcher = self._factory()
                self._checked = time.monotonic()
            elif time.monotonic() - self._checked > REFRESH_EVERY_S:
                self._checked = time.monotonic()
                self._searcher.refresh()
            return self._searcher

    @property
    def loaded(self) -> bool:
        return self._searcher is not None


def get_searcher(request: Request) -> Searcher:
    return request.app.state.searchers.get()


SearcherDep = Annotated[Searcher, Depends(get_searcher)]
