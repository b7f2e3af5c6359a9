"""Dependencies: heavy components are built once, lazily; the searcher follows new generations."""

from __future__ import annotations

import threading
import time
from typing import Annotated

from fastapi import Depends, Request

from rag.answer import Answerer
from rag.generators.base import Generator
from rag.search import Searcher
from rag.settings import Settings
from rag.store.sql import DocumentStore

REFRESH_EVERY_S = 1.0


class Lazy:
    """Builds its value on first use; with ``refresh``, calls value.refresh() at most once a second."""

    def __init__(self, factory, refresh: bool = False) -> None:
        self._factory = factory
        self._refresh = refresh
        self._value = None
        self._lock = threading.Lock()
        self._checked = 0.0

    def get(self):
        with self._lock:
            if self._value is None:
                self._value = self._factory()
                self._checked = time.monotonic()
            elif self._refresh and time.monotonic() - self._checked > REFRESH_EVERY_S:
                self._checked = time.monotonic()
                self._value.refresh()
            return self._value

    @property
    def loaded(self) -> bool:
        return self._value is not None


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_searcher(request: Request) -> Searcher:
    return request.app.state.searcher.get()


def get_generator(request: Request) -> Generator:
    return request.app.state.generator.get()


def get_store(request: Request):
    return request.app.state.store.get()


def get_answerer(request: Request, searcher: Annotated[Searcher, Depends(get_searcher)]) -> Answerer:
    from rag.factory import make_answerer

    return make_answerer(request.app.state.settings, searcher=searcher, generator=request.app.state.generator.get())


SettingsDep = Annotated[Settings, Depends(get_settings)]
SearcherDep = Annotated[Searcher, Depends(get_searcher)]
GeneratorDep = Annotated[Generator, Depends(get_generator)]
AnswererDep = Annotated[Answerer, Depends(get_answerer)]
StoreDep = Annotated[DocumentStore, Depends(get_store)]
