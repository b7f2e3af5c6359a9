"""create_app(settings): the FastAPI application. Only this layer turns errors into HTTP responses."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from rag import shared
from rag.auth import RateLimiter
from rag.cpu import cores
from rag.settings import Settings, load_settings
from rag.shared import TTLCache
from service import errors
from service.deps import Lazy, ReadKey, WriteKey
from service.jobs import JobRunner
from service.metrics import Metrics
from service.middleware import LimitsAndMetrics
from service.routes import answer, documents, feedback, health, openai, search
from service.warmup import WarmUp, touch_routes

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


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
    if settings.redis_url:  # replicas share one rate limit per key and one cache of verified keys
        redis = shared.connect(settings.redis_url)
        app.state.limiter = shared.RedisRateLimiter(redis, settings.auth.rate_per_s, settings.auth.burst, fallback=app.state.limiter)
        app.state.key_cache = shared.RedisKeyCache(redis)
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

    app.state.warmup = WarmUp(app.state, settings.warmup_queries)
    app.state.search_executor = ThreadPoolExecutor(settings.search_threads or min(4, cores()), thread_name_prefix="search")
    # opt-in: a lone search on the event loop (no thread hop); never when searches are slow (a reranker reads 50+ pairs)
    app.state.search_inline = settings.search_inline and not settings.rerank.model
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

    app.add_middleware(LimitsAndMetrics, metrics=metrics, max_body_bytes=settings.limits.max_body_bytes,
                       limits_by_path={"/v1/documents/files": settings.limits.max_upload_bytes})

    errors.install(app)
    return app
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
    await touch_routes(app)
    app.state.warmup.start()
    yield
    # the indexing worker stops and is joined here; generators are closed at exit (rag.factory)
    await run_in_threadpool(app.state.jobs.close)


def app_from_env() -> FastAPI:
    """uvicorn factory for `rag serve` (settings from the environment)."""
    return create_app(load_settings())
