from fastapi import APIRouter, status
from starlette.concurrency import run_in_threadpool

from rag.errors import InputError
from service.deps import SearcherDep, StoreDep
from service.schemas import FeedbackRequest, FeedbackResponse

router = APIRouter(prefix="/v1", tags=["feedback"])


@router.post("/feedback", status_code=status.HTTP_201_CREATED, response_model=FeedbackResponse)
async def feedback(req: FeedbackRequest, store: StoreDep, searcher: SearcherDep) -> FeedbackResponse:
    """Record that a passage was clicked, useful or not useful for a query; `rag train --sources
    feedback` turns the positive signals into training pairs."""
    if not searcher.reader.passages.get([req.passage_id]):
        raise InputError(f"passage_id {req.passage_id!r} is not in the index")
    return FeedbackResponse(id=await run_in_threadpool(store.add_feedback, req.query, req.passage_id, req.signal))
