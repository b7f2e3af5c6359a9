import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from rag import generations as gens

router = APIRouter(tags=["health"])
VERIFY_EVERY_S = 30.0


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready when what requests need works: the store can be read and its schema is current, the
    published generation opens and its files match their checksums (re-checked at most every 30 s),
    and the generator is reachable. 503 names what is not."""
    return await run_in_threadpool(_readiness, request.app.state)


def _readiness(state) -> JSONResponse:
    if not state.warmup.done.is_set():
        return JSONResponse({"status": "warming up", "reason": "loading and exercising the encoder, BM25 and the generator"},
                            status_code=503)
    body: dict = {"status": "ready"}
    problems: list[str] = []
    try:
        state.store.get().check()
        body["store"] = "ready"
    except Exception as exc:  # noqa: BLE001 - readiness reports any failure
        body["store"] = f"unavailable: {exc}"
        problems.append("store")
    try:
        s = state.searcher.get()
        _verify(state, s.reader.gen_dir)
        body |= {"generation": s.reader.generation, "passages": len(s.reader.passages)}
        if getattr(s, "encoder_warning", None):
            body["encoder_warning"] = s.encoder_warning
        if s.reader.refresh_error:
            body["warning"] = f"a newer generation could not be opened: {s.reader.refresh_error}"
    except Exception as exc:  # noqa: BLE001
        body["index"] = f"unavailable: {exc}"
        problems.append("index")
    try:
        state.generator.get().check()
        body["generator"] = "ready"
    except Exception as exc:  # noqa: BLE001 - search still works; answers would not
        body["generator"] = f"unavailable: {exc}"
        problems.append("generator")
    if problems:
        body["status"] = "degraded" if problems == ["generator"] else "unavailable"
        body["reason"] = "; ".join(f"{p}: {body.get(p, '')}" for p in problems)
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)


def _verify(state, gen_dir) -> None:
    """Checksums of the served generation's files, at most every VERIFY_EVERY_S per generation."""
    last = getattr(state, "verified", None)
    if last is not None and last[0] == gen_dir.name and time.monotonic() - last[1] < VERIFY_EVERY_S:
        return
    damaged = gens.verify(gen_dir)
    if damaged:
        state.verified = None
        raise RuntimeError(f"generation {gen_dir.name} is damaged: {', '.join(damaged[:5])} differ from its manifest")
    state.verified = (gen_dir.name, time.monotonic())
