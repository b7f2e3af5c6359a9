"""Dependencies: heavy components are built once, lazily; the searcher follows new generations."""

from __future__ import annotations

import threading
import time
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from rag.answer import Answerer
from rag.auth import ApiKey, Scope, verify
from rag.generators.base import Generator
from rag.search import Searcher
from rag.settings import Settings
from rag.shared import MISSING
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


async def get_searcher(request: Request) -> Searcher:
    # async: a sync dependency would cost a threadpool hop on every request; only the first load blocks
    lazy = request.app.state.searcher
    return lazy.get() if lazy.loaded else await run_in_threadpool(lazy.get)


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


def require(scope: Scope):
    """A dependency: the request's API key must exist, be unrevoked, allow ``scope`` and be under its
    rate limit. Auth off (an explicit setting) lets every request through."""

    async def check(request: Request, authorization: Annotated[str | None, Header()] = None,
                    x_api_key: Annotated[str | None, Header()] = None) -> ApiKey | None:
        settings: Settings = request.app.state.settings
        if not settings.auth.enabled:
            return None
        token = x_api_key or (authorization[7:].strip() if authorization and authorization.lower().startswith("bearer ") else None)
        if not token:
            raise HTTPException(401, "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                                headers={"WWW-Authenticate": "Bearer"})
        cache = request.app.state.key_cache
        key = cache.peek(token)
        if key is MISSING:  # a SQL lookup, at most once per key every ttl_s
            key = await run_in_threadpool(cache.get, token, lambda: verify(request.app.state.store.get(), token))
        if key is None:
            raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        if not key.scope.allows(scope):
            raise HTTPException(403, f"this key's scope is {key.scope.value!r}; {scope.value!r} is needed")
        allowed, wait = request.app.state.limiter.allow(key.id)
        if not allowed:
            raise HTTPException(429, f"rate limit exceeded for key {key.id}", headers={"Retry-After": str(max(1, round(wait)))})
        return key

    return Depends(check)


ReadKey = require(Scope.read)
WriteKey = require(Scope.write)
