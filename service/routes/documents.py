from typing import Annotated

from fastapi import APIRouter, HTTPException, Request, status
from starlette.concurrency import run_in_threadpool

from rag.auth import ApiKey
from rag.validation import id_problem, source_document
from service.deps import WriteKey
from service.schemas import DocumentsRequest, JobAccepted, JobStatus

router = APIRouter(prefix="/v1", tags=["documents"])
KeyDep = Annotated[ApiKey | None, WriteKey]  # the same dependency as the router's: FastAPI runs it once


def _accepted(request: Request, job_id: str) -> JobAccepted:
    return JobAccepted(job_id=job_id, status_url=str(request.url_for("job_status", job_id=job_id)))


def _invalid(field: str, message: str) -> HTTPException:
    return HTTPException(422, {"field": field, "message": message})


@router.post("/documents", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted,
             responses={429: {"description": "the indexing queue is full (Retry-After says when to retry)"}})
async def upsert_documents(req: DocumentsRequest, request: Request, key: KeyDep) -> JobAccepted:
    """Insert or update documents: an indexing job (the batch job's code) runs in the background;
    searches switch to the new index generation when it is published."""
    limit = request.app.state.settings.limits.max_document_chars
    seen: set[str] = set()
    docs = []
    for i, d in enumerate(req.documents):
        if d.id in seen:
            raise _invalid(f"documents.{i}.id", f"duplicate id {d.id!r}: ids must be unique within one request")
        seen.add(d.id)
        if len(d.text) > limit:
            raise _invalid(f"documents.{i}.text", f"{len(d.text)} characters; at most {limit} are allowed")
        doc = source_document(d.id, d.title, d.text, d.metadata)  # the same rules and cleaning as `rag index`
        if isinstance(doc, str):
            raise _invalid(f"documents.{i}", doc)
        docs.append(doc)
    job_id = await run_in_threadpool(request.app.state.jobs.submit, "upsert", docs, None, key.id if key else None)
    return _accepted(request, job_id)


@router.delete("/documents/{document_id:path}", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted)
async def delete_document(document_id: str, request: Request, key: KeyDep) -> JobAccepted:
    """Delete a document everywhere (SQL, BM25, dense) in a background job. The id may contain '/'
    (percent-encode other reserved characters)."""
    if problem := id_problem(document_id):
        raise _invalid("document_id", f"id {problem}")
    job_id = await run_in_threadpool(request.app.state.jobs.submit, "delete", None, [document_id], key.id if key else None)
    return _accepted(request, job_id)


@router.get("/jobs/{job_id}", response_model=JobStatus, name="job_status")
async def job_status(job_id: str, request: Request) -> JobStatus:
    job = await run_in_threadpool(request.app.state.jobs.get, job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id!r}")
    return JobStatus(**job)
