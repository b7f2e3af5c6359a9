from fastapi import APIRouter, HTTPException, Request, status
from starlette.concurrency import run_in_threadpool

from rag.types import SourceDocument
from service.schemas import DocumentsRequest, JobAccepted, JobStatus

router = APIRouter(prefix="/v1", tags=["documents"])


def _accepted(request: Request, job_id: str) -> JobAccepted:
    return JobAccepted(job_id=job_id, status_url=str(request.url_for("job_status", job_id=job_id)))


@router.post("/documents", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted)
async def upsert_documents(req: DocumentsRequest, request: Request) -> JobAccepted:
    """Insert or update documents: an indexing job (the batch job's code) runs in the background;
    searches switch to the new index generation when it is published."""
    ids = [d.id for d in req.documents]
    if len(set(ids)) != len(ids):
        raise HTTPException(422, "documents: ids must be unique within one request")
    if any(not d.text.strip() for d in req.documents):
        raise HTTPException(422, "documents: text must not be blank")
    docs = [SourceDocument(d.id, d.title.strip(), d.text.strip(), d.metadata) for d in req.documents]
    job_id = await run_in_threadpool(request.app.state.jobs.submit, "upsert", docs)
    return _accepted(request, job_id)


@router.delete("/documents/{document_id}", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted)
async def delete_document(document_id: str, request: Request) -> JobAccepted:
    """Delete a document everywhere (SQL, BM25, dense) in a background job."""
    job_id = await run_in_threadpool(request.app.state.jobs.submit, "delete", None, [document_id])
    return _accepted(request, job_id)


@router.get("/jobs/{job_id}", response_model=JobStatus, name="job_status")
async def job_status(job_id: str, request: Request) -> JobStatus:
    job = await run_in_threadpool(request.app.state.jobs.get, job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id!r}")
    return JobStatus(**job)
