from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from rag.serialize import search_result_dict
from service.deps import SearcherDep
from service.responses import FastJSONResponse
from service.schemas import ErrorResponse, SearchRequest, SearchResponse

router = APIRouter(prefix="/v1", tags=["search"])


@router.post("/search", response_model=SearchResponse, responses={400: {"model": ErrorResponse}, 503: {"model": ErrorResponse}})
async def search(req: SearchRequest, searcher: SearcherDep, request: Request) -> FastJSONResponse:
    """Ranked passages (after fusion and truncation) with per-stage timings."""
    r = await run_in_threadpool(searcher.search, req.query, req.mode, req.top_k, req.filters)
    request.app.state.metrics.observe_stages(r.timings_ms, "search.")
    # built from typed results already; returning the JSON directly skips a second validation pass
    return FastJSONResponse(search_result_dict(r))
