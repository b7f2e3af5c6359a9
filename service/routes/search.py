import asyncio

from fastapi import APIRouter, Request

from rag.serialize import search_result_dict
from service.deps import SearcherDep
from service.responses import FastJSONResponse
from service.schemas import ErrorResponse, SearchRequest, SearchResponse

router = APIRouter(prefix="/v1", tags=["search"])


@router.post("/search", response_model=SearchResponse, responses={400: {"model": ErrorResponse}, 503: {"model": ErrorResponse}})
async def search(req: SearchRequest, searcher: SearcherDep, request: Request) -> FastJSONResponse:
    """Ranked passages (after fusion and truncation) with per-stage timings."""
    state = request.app.state
    inline = state.search_inline
    if inline:
        # let requests that arrived with this one start (each counts itself in ``active`` on entry):
        # without this, a burst's requests would each find themselves alone and search one by one here
        await asyncio.sleep(0)
        inline = state.metrics.active == 1
    if inline:
        # the only request being served: search here, sparing the two thread wake-ups of a hop (~0.3 ms
        # on 2 cores); one arriving meanwhile waits for this search, then finds company below
        r = searcher.search(req.query, req.mode, req.top_k, req.filters)
    else:
        # a few dedicated threads, not the 40 of the shared pool: more searches contending for the GIL
        # only add to the tail (the rest wait in the executor's queue, first come first served)
        r = await asyncio.get_running_loop().run_in_executor(
            state.search_executor, searcher.search, req.query, req.mode, req.top_k, req.filters)
    state.metrics.observe_stages(r.timings_ms, "search.")
    # built from typed results already; returning the JSON directly skips a second validation pass
    return FastJSONResponse(search_result_dict(r))
