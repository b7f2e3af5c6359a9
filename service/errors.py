"""The one place errors become HTTP responses: every error is ``{"error": {"type", "message"}}`` with
the status its kind maps to (never a traceback)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.errors import JobQueueFullError, RagError
from rag.generators.errors import GeneratorError

log = logging.getLogger(__name__)

#: error kind (rag.errors) -> HTTP status
STATUS = {"invalid_input": 400, "queue_full": 429, "index_unavailable": 503, "misconfigured": 503, "internal": 500}
#: generator error kind -> HTTP status (also for an answer that found passages but could not generate)
GENERATOR_STATUS = {"timeout": 504, "unavailable": 503, "out_of_memory": 503, "failed": 502}
_HTTP_KINDS = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 429: "rate_limited"}


def error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


def validation_error(errs: list[dict]) -> JSONResponse:
    # field names and messages may hold what the client sent: escape what UTF-8 cannot carry (a lone surrogate)
    errs = [{k: str(e[k]).encode("utf-8", "backslashreplace").decode() for k in ("field", "message")} for e in errs]
    return JSONResponse({"error": {"type": "validation", "message": "; ".join(f"{e['field']}: {e['message']}" for e in errs),
                                   "fields": errs}}, status_code=422)


def _field_error(e: dict) -> dict:
    """A pydantic/FastAPI error as {field, message}; a body that is not JSON at all is the body's error
    (FastAPI places it at the character offset, which is no field)."""
    if e.get("type") == "json_invalid":
        return {"field": "body", "message": f"not valid JSON ({e.get('ctx', {}).get('error', e['msg'])})"}
    return {"field": ".".join(str(p) for p in e["loc"][1:]) or "body", "message": e["msg"]}


def response_for(exc: RagError) -> JSONResponse:
    if isinstance(exc, GeneratorError):
        return error(GENERATOR_STATUS[exc.kind], f"generator_{exc.kind}", str(exc))
    status = STATUS.get(exc.kind, 500)
    if exc.kind == "internal":
        log.error("request failed", exc_info=exc)
        return error(500, "internal", "the request failed; see the server log")
    if status >= 500:
        log.error("%s: %s", exc.kind, exc)
    r = error(status, exc.kind, str(exc))
    if isinstance(exc, JobQueueFullError):
        r.headers["Retry-After"] = str(exc.retry_after_s)
    return r


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        if isinstance(exc.detail, dict) and "field" in exc.detail:  # a route's own validation: shaped like pydantic's
            return validation_error([exc.detail])
        r = error(exc.status_code, _HTTP_KINDS.get(exc.status_code, "http_error"), str(exc.detail))
        r.headers.update(exc.headers or {})
        return r

    @app.exception_handler(RagError)
    async def _rag(_: Request, exc: RagError):
        return response_for(exc)

    @app.exception_handler(SQLAlchemyError)
    async def _store_down(_: Request, exc: SQLAlchemyError):
        log.error("database error: %s", exc)
        return error(503, "store_unavailable", f"the database cannot be used: {getattr(exc, 'orig', None) or exc}")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        return validation_error([_field_error(e) for e in exc.errors()])

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception):
        log.exception("unexpected error")
        return error(500, "internal", "internal error; see the server log")
