from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """The index is loaded and searchable, and the generator is reachable (503 names what is not)."""
    try:
        s = request.app.state.searcher.get()
    except Exception as exc:  # noqa: BLE001 - readiness reports any failure to load
        return JSONResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)
    body = {"status": "ready", "generation": s.reader.generation, "passages": len(s.reader.docstore)}
    try:
        request.app.state.generator.get().check()
        body["generator"] = "ready"
    except Exception as exc:  # noqa: BLE001 - search still works; answers would not
        body |= {"status": "degraded", "generator": f"unavailable: {exc}"}
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)
