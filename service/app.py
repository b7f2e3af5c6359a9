"""create_app(settings): the FastAPI application. Only this layer turns errors into HTTP responses."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.errors import ConfigError, IndexNotFoundError, IndexUnavailableError, InputError, JobQueueFullError, RagError
from rag.settings import Settings, load_settings
from rag.answer import error_kind
from rag.generators.errors import GeneratorError
from rag.auth import RateLimiter
from service.deps import Lazy, ReadKey, TTLCache, WriteKey
from service.metrics import Metrics
from service.middleware import LimitsAndMetrics
from service.jobs import JobRunner
from service.routes import answer, documents, feedback, health, openai, search
from service.routes.answer import STATUS

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


def create_app(settings: Settings | None = None, searcher_factory=None, generator_factory=None,
               encoder_factory=None) -> FastAPI:
    """The app. Factories default to the configured searcher and generator (tests pass fakes)."""
    from rag import factory

    settings = settings or load_settings()
    app = FastAPI(title="rag-search", version="0.1.0", description="Hybrid retrieval-augmented search over your documents.",
                  lifespan=_lifespan)
    app.state.settings = settings
    app.state.searcher = Lazy(searcher_factory or (lambda: factory.make_searcher(settings)), refresh=True)
    app.state.generator = Lazy(generator_factory or (lambda: factory.make_generator(settings)))
    # requests never migrate: the schema is brought up to date once, at start-up (or by `rag migrate`)
    app.state.store = Lazy(lambda: factory.make_store(settings, migrate=False))
    app.state.limiter = RateLimiter(settings.auth.rate_per_s, settings.auth.burst)
    app.state.key_cache = TTLCache(ttl_s=10.0)
    app.include_router(health.router)
    for module in (search, answer, openai):
        app.include_router(module.router, dependencies=[ReadKey])
    app.include_router(feedback.router, dependencies=[WriteKey])
    app.include_router(documents.router, dependencies=[WriteKey])

    def job_encoder():
        """Resolved for every job: the encoder the published index was built with (it may have been
        re-encoded with another model since the last job)."""
        if encoder_factory is not None:
            return encoder_factory()
        from rag import generations as gens

        gen = gens.current_generation(settings.index_dir)
        manifest = gens.read_manifest(gen) if gen is not None and gen.is_dir() else None
        return factory.index_encoder(settings, manifest, shared=False)

    app.state.jobs = JobRunner(settings, app.state.store, app.state.searcher, job_encoder)

    app.state.metrics = metrics = Metrics()

    @app.get("/", include_in_schema=False)
    def _page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/metrics", include_in_schema=False)
    def _metrics() -> Response:
        if app.state.searcher.loaded:
            metrics.passages.set(len(app.state.searcher.get().reader.passages))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(LimitsAndMetrics, metrics=metrics, max_body_bytes=settings.limits.max_body_bytes)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        if isinstance(exc.detail, dict) and "field" in exc.detail:  # a route's own validation: shaped like pydantic's
            return _validation_error([exc.detail])
        kinds = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 429: "rate_limited"}
        r = _error(exc.status_code, kinds.get(exc.status_code, "http_error"), str(exc.detail))
        r.headers.update(exc.headers or {})
        return r

    @app.exception_handler(JobQueueFullError)
    async def _queue_full(_: Request, exc: JobQueueFullError):
        r = _error(429, "queue_full", str(exc))
        r.headers["Retry-After"] = str(exc.retry_after_s)
        return r

    @app.exception_handler(IndexUnavailableError)
    async def _unavailable(_: Request, exc: IndexUnavailableError):
        log.error("index unavailable: %s", exc)
        return _error(503, "index_unavailable", str(exc))

    @app.exception_handler(SQLAlchemyError)
    async def _store_down(_: Request, exc: SQLAlchemyError):
        log.error("database error: %s", exc)
        return _error(503, "store_unavailable", f"the database cannot be used: {getattr(exc, 'orig', None) or exc}")

    @app.exception_handler(GeneratorError)
    async def _generator(_: Request, exc: GeneratorError):
        kind = error_kind(exc)
        return _error(STATUS[kind], f"generator_{kind}", str(exc))

    @app.exception_handler(InputError)
    async def _input(_: Request, exc: InputError):
        return _error(400, "invalid_input", str(exc))

    @app.exception_handler(IndexNotFoundError)
    async def _no_index(_: Request, exc: IndexNotFoundError):
        return _error(503, "index_unavailable", str(exc))

    @app.exception_handler(ConfigError)
    async def _config(_: Request, exc: ConfigError):
        log.error("configuration error: %s", exc)
        return _error(503, "misconfigured", str(exc))

    @app.exception_handler(RagError)
    async def _rag(_: Request, exc: RagError):
        log.exception("request failed")
        return _error(500, "internal", "the request failed; see the server log")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        return _validation_error([{"field": ".".join(str(p) for p in e["loc"][1:]) or "body", "message": e["msg"]}
                                  for e in exc.errors()])

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception):
        log.exception("unexpected error")
        return _error(500, "internal", "internal error; see the server log")

    return app


def _validation_error(errs: list[dict]) -> JSONResponse:
    # field names and messages may hold what the client sent: escape what UTF-8 cannot carry (a lone surrogate)
    errs = [{k: str(e[k]).encode("utf-8", "backslashreplace").decode() for k in ("field", "message")} for e in errs]
    return JSONResponse({"error": {"type": "validation", "message": "; ".join(f"{e['field']}: {e['message']}" for e in errs),
                                   "fields": errs}}, status_code=422)


@asynccontextmanager
async def _lifespan(app: FastAPI):
    """Start-up: migrate the store (once, here, not inside a request), then resume the indexing jobs
    a previous process left unfinished. Shut-down: stop taking jobs."""
    settings: Settings = app.state.settings
    default_db = settings.database_url is None
    if default_db and not Path(settings.index_dir).is_dir():
        log.warning("index directory %s does not exist: nothing to serve until `rag index` builds one", settings.index_dir)
    else:
        try:
            await run_in_threadpool(lambda: app.state.store.get().migrate())
            resumed = await run_in_threadpool(app.state.jobs.recover)
            if resumed:
                log.info("resumed %d indexing job(s) left unfinished by a previous process", len(resumed))
        except Exception as exc:  # noqa: BLE001 - reads may still work; /readyz reports the store's state
            log.error("start-up: the store could not be migrated or its jobs recovered: %s", exc)
    yield
    # the indexing worker stops and is joined here; generators are closed at exit (rag.factory)
    await run_in_threadpool(app.state.jobs.close)


def app_from_env() -> FastAPI:
    """uvicorn factory for `rag serve` (settings from the environment)."""
    return create_app(load_settings())
