from dataclasses import asdict

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from service.deps import SearcherDep
from service.schemas import ErrorResponse, HitOut, SearchRequest, SearchResponse

router = APIRouter(prefix="/v1", tags=["search"])


@router.post("/search", response_model=SearchResponse, responses={400: {"model": ErrorResponse}, 503: {"model": ErrorResponse}})
async def search(req: SearchRequest, searcher: SearcherDep, request: Request) -> SearchResponse:
    """Ranked passages (after fusion and truncation) with per-stage timings."""
    r = await run_in_threadpool(searcher.search, req.query, req.mode, req.top_k, req.filters)
    request.app.state.metrics.observe_stages(r.timings_ms, "search.")
    hits = [
        HitOut(rank=h.rank, score=h.score, passage_id=h.passage.id, document_id=h.passage.document_id,
               title=h.passage.title, text=h.passage.text, source=h.passage.source, metadata=h.passage.metadata)
        for h in r.hits
    ]
    return SearchResponse(query=r.query, mode=r.mode, generation=r.generation, hits=hits,
                          truncation=asdict(r.truncation), timings_ms=r.timings_ms)
