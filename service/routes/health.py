from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """The index is loaded and searchable."""
    try:
        s = request.app.state.searchers.get()
    except Exception as exc:  # noqa: BLE001 - readiness reports any failure to load
        return JSONResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)
    return JSONResponse({"status": "ready", "generation": s.reader.generation, "passages": len(s.reader.docstore)})
