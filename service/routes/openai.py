"""POST /v1/chat/completions: this service's generator behind the OpenAI chat-completions API, so
any OpenAI client (and our own `openai` backend) can use it."""

from __future__ import annotations

import json
import time
import uuid

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from rag.generators.base import GenerationParams
from service.deps import GeneratorDep
from service.responses import FastJSONResponse
from service.schemas import ChatCompletionRequest

router = APIRouter(prefix="/v1", tags=["openai-compatible"])


@router.get("/models")
def models(generator: GeneratorDep) -> dict:
    return {"object": "list", "data": [{"id": getattr(generator, "name", "default"), "object": "model"}]}


@router.post("/chat/completions")
async def chat_completions(req: ChatCompletionRequest, generator: GeneratorDep):
    stop = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
    params = GenerationParams(req.temperature, req.top_p, req.max_tokens, req.repetition_penalty, stop)
    messages = [m.model_dump() for m in req.messages]
    cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    stream = await run_in_threadpool(generator.stream, messages, params)

    def chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> str:
        body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": req.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if usage is None else []}
        if usage is not None:
            body["usage"] = usage
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    if req.stream:
        async def sse():
            yield chunk({"role": "assistant", "content": ""})
            async for delta in iterate_in_threadpool(iter(stream)):
                yield chunk({"content": delta})
            g = stream.final()
            yield chunk({}, g.finish_reason)
            if (req.stream_options or {}).get("include_usage"):
                yield chunk({}, usage={"prompt_tokens": g.tokens_in, "completion_tokens": g.tokens_out,
                                       "total_tokens": g.tokens_in + g.tokens_out})
            yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")
    g = await run_in_threadpool(lambda: (list(stream), stream.final())[1])
    return FastJSONResponse({
        "id": cid, "object": "chat.completion", "created": created, "model": req.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": g.text}, "finish_reason": g.finish_reason}],
        "usage": {"prompt_tokens": g.tokens_in, "completion_tokens": g.tokens_out, "total_tokens": g.tokens_in + g.tokens_out},
    })
