"""POST /v1/answer: a cited answer as JSON, or as Server-Sent Events (token events, then one final event)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from rag.answer import params_from
from rag.serialize import answer_result_dict, extractive_dict
from service.deps import AnswererDep, SettingsDep
from service.errors import GENERATOR_STATUS
from service.responses import FastJSONResponse
from service.schemas import AnswerRequest, ErrorResponse

router = APIRouter(prefix="/v1", tags=["answer"])


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@router.post("/answer", responses={503: {"model": ErrorResponse}, 504: {"model": ErrorResponse}})
async def answer(req: AnswerRequest, answerer: AnswererDep, settings: SettingsDep, request: Request):
    """Search, truncate, find evidence sentences and the extractive answer, prompt (question before
    and after the passages), generate, cite. ``mode``: extractive (no generation), generative, both.
    With ``stream``, Server-Sent Events: search, evidence, extractive, token..., final.

    When the generator fails, the status is 503 (down, out of memory) or 504 (timeout) and the body
    still carries the passages retrieval found."""
    params = params_from(settings, temperature=req.temperature, top_p=req.top_p, max_tokens=req.max_tokens,
                         repetition_penalty=req.repetition_penalty, stop=tuple(req.stop) if req.stop else None)
    kw: dict[str, Any] = dict(k=req.top_k, filters=req.filters, params=params, contextualize=req.contextualize, mode=req.mode)
    metrics = request.app.state.metrics

    def observe(result) -> None:
        metrics.observe_stages(result.timings_ms)
        if result.usage:
            metrics.tokens.inc(result.usage["tokens_out"])
            if result.usage["tokens_per_s"]:
                metrics.tokens_per_s.observe(result.usage["tokens_per_s"])

    if not req.stream:
        result = await run_in_threadpool(answerer.answer, req.question, **kw)
        observe(result)
        body = answer_result_dict(result)
        return FastJSONResponse(body, status_code=GENERATOR_STATUS[result.error_kind or "failed"] if result.error else 200)

    # validate and search before the stream starts, so bad input still gets a 4xx status
    events = answerer.stream(req.question, **kw)
    first = await run_in_threadpool(next, events)

    async def sse():
        kind, value = first
        yield _sse("search", {"hits": len(value.hits), "generation": value.generation})
        async for kind, value in iterate_in_threadpool(events):
            if kind == "token":
                yield _sse("token", {"text": value})
            elif kind == "evidence":
                yield _sse("evidence", [asdict(e) for e in value])
            elif kind == "extractive":
                yield _sse("extractive", extractive_dict(value))
            elif kind == "result":
                observe(value)
                body = answer_result_dict(value)
                if value.error:
                    yield _sse("error", body["error"])
                yield _sse("final", body)

    return StreamingResponse(sse(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
