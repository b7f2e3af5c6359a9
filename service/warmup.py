"""Warm-up at start-up: load and exercise the store's key lookup, the encoder, BM25 (Lucene's JIT
warms over a few hundred queries), the dense index and the generator before /readyz says ready, so
the first user's request costs what the hundredth does. The generator answers once through the
answer path (two tokens), so the start of the prompt the answers use is in its prefix cache before
anyone asks. Runs on its own thread; /readyz answers 503 "warming up" meanwhile."""

from __future__ import annotations

import logging
import threading
import time

from starlette.exceptions import HTTPException

from rag.generators.base import GenerationParams
from rag.types import Mode

log = logging.getLogger(__name__)


async def touch_routes(app) -> None:
    """Build what Starlette and FastAPI build on an app's first requests, so the first user's search
    costs nearly what the hundredth does (measured over HTTP: 12.9 -> 9.5 ms; warm 6.5): the middleware stack, each
    included router's route table (walked by a request for a path no route has, straight to the
    router: no middleware, no metrics) and each endpoint's source location, which FastAPI reads from
    its file on an endpoint's first request (an internal: without it that first request is just slower)."""
    import fastapi.routing

    if app.middleware_stack is None:
        app.middleware_stack = app.build_middleware_stack()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": "/v1/_warm-up", "raw_path": b"/v1/_warm-up", "root_path": "", "query_string": b"", "headers": [],
             "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 0), "app": app}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        pass

    try:
        await app.router(scope, receive, send)
    except HTTPException:  # the 404 the app's exception handler would have turned into a response
        pass
    extract = getattr(fastapi.routing, "_extract_endpoint_context", None)
    routes = list(app.routes)
    while routes and extract is not None:
        route = routes.pop()
        if isinstance(route, fastapi.routing.APIRoute) and route.dependant.call is not None:
            extract(route.dependant.call)
        routes.extend(getattr(getattr(route, "original_router", None), "routes", []))


class WarmUp:
    def __init__(self, state, queries: int) -> None:
        self._state = state
        self.queries = queries
        self.done = threading.Event()
        self.report: dict = {}
        self._thread: threading.Thread | None = None
        self._question = ""  # words of the index, asked of the answer path

    def start(self) -> None:
        if self.queries <= 0:
            self.done.set()
            return
        self._thread = threading.Thread(target=self._run, name="warm-up", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t0 = time.perf_counter()
        try:  # the key lookup a request's first use of a key makes (SQLAlchemy compiles it, and its row loading, once)
            keys = self._state.store.get().keys
            keys.get(next((k.id for k in keys.all()), "warm-up"))
        except Exception as exc:  # noqa: BLE001 - /readyz reports the store's state
            log.warning("warm-up: store skipped: %s", exc)
        try:
            self.report["searches"] = self._search()
        except Exception as exc:  # noqa: BLE001 - nothing to warm (no index yet): /readyz says why
            log.warning("warm-up: search skipped: %s", exc)
        try:
            self._generate(self._state.generator.get())
            self.report["generator"] = True
        except Exception as exc:  # noqa: BLE001 - search still works without a generator
            log.warning("warm-up: generator skipped: %s", exc)
        self.report["seconds"] = round(time.perf_counter() - t0, 2)
        log.info("warm-up done in %.1f s: %s", self.report["seconds"], self.report)
        self.done.set()

    def _generate(self, gen) -> None:
        """Once through the answer path, or one bare request when there is no index to answer from."""
        if self._question:
            from rag.factory import make_answerer

            answerer = make_answerer(self._state.settings, searcher=self._state.searcher.get(), generator=gen)
            r = answerer.answer(self._question, mode="generative", params=GenerationParams(max_tokens=2))
            if r.error:
                raise RuntimeError(r.error)
        else:
            gen.generate([{"role": "user", "content": "Say OK."}], GenerationParams(max_tokens=2))

    def _search(self) -> int:
        """Queries made of the index's own words (each passage's first words), every retriever."""
        searcher = self._state.searcher.get()
        passages = searcher.reader.passages
        step = max(1, len(passages) // self.queries)
        sample = passages.get(passages.ids[::step][: self.queries])
        texts = [" ".join(p.text.split()[:8]) for p in sample.values() if p.text.strip()]
        self._question = texts[0] if texts else ""
        for i, text in enumerate(texts):  # on the executor requests use, whose threads start on first use
            self._state.search_executor.submit(searcher.search, text, (Mode.hybrid, Mode.bm25, Mode.dense)[i % 3], k=10).result()
        return len(texts)
