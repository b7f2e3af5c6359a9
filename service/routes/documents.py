from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Request, UploadFile, status
from starlette.concurrency import run_in_threadpool

from indexer.sources import read_upload
from rag.auth import ApiKey
from rag.validation import id_problem, source_document
from service.deps import WriteKey
from service.schemas import DocumentsRequest, JobAccepted, JobStatus, UploadAccepted, UploadedFile

router = APIRouter(prefix="/v1", tags=["documents"])
KeyDep = Annotated[ApiKey | None, WriteKey]  # the same dependency as the router's: FastAPI runs it once


def _accepted(request: Request, job_id: str) -> JobAccepted:
    return JobAccepted(job_id=job_id, status_url=str(request.url_for("job_status", job_id=job_id)))


def _invalid(field: str, message: str) -> HTTPException:
    return HTTPException(422, {"field": field, "message": message})


def _idempotency_key(request: Request) -> str | None:
    """The client's Idempotency-Key header: the same key (with the same API key) gets the same job,
    through whichever replica the retry reaches."""
    value = request.headers.get("idempotency-key")
    if value is not None and not (0 < len(value) <= 128 and value.isprintable()):
        raise _invalid("Idempotency-Key", "must be 1 to 128 printable characters")
    return value


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
    job_id = await run_in_threadpool(request.app.state.jobs.submit, "upsert", docs, None, key.id if key else None,
                                     _idempotency_key(request))
    return _accepted(request, job_id)


@router.post("/documents/files", status_code=status.HTTP_202_ACCEPTED, response_model=UploadAccepted,
             responses={413: {"description": "over limits.max_upload_bytes"}, 422: {"description": "no file could be read"}})
async def upload_files(request: Request, key: KeyDep, files: Annotated[list[UploadFile], File()]) -> UploadAccepted:
    """Upload PDF, Word (.docx), text, Markdown or HTML files (multipart, field ``files``, several at
    once): each becomes a document whose id is its file name; an indexing job indexes those that can
    be read. The type is recognised from the bytes, not the name or the declared content type; each
    file's outcome is in ``files`` (refused ones with the reason)."""
    limits = request.app.state.settings.limits
    if len(files) > limits.max_upload_files:
        raise _invalid("files", f"{len(files)} files; at most {limits.max_upload_files} in one request")
    outcomes, docs, seen = [], [], set()
    for i, f in enumerate(files):
        name = Path(f.filename or f"upload-{i}").name
        if problem := id_problem(name):
            raise _invalid(f"files.{i}", f"file name {problem}")
        if name in seen:
            raise _invalid(f"files.{i}", f"two files named {name!r}: names are document ids and must be unique")
        seen.add(name)
        doc = await run_in_threadpool(read_upload, name, await f.read())
        if isinstance(doc, str):
            outcomes.append(UploadedFile(name=name, accepted=False, reason=doc))
        else:  # bounded by limits.max_upload_bytes (a manual of several hundred pages is one document)
            docs.append(doc)
            outcomes.append(UploadedFile(name=name, accepted=True, sections=len(doc.sections), characters=len(doc.text)))
    if not docs:
        raise _invalid("files", "; ".join(f"{o.name}: {o.reason}" for o in outcomes))
    job_id = await run_in_threadpool(request.app.state.jobs.submit, "upsert", docs, None, key.id if key else None,
                                     _idempotency_key(request))
    return UploadAccepted(**_accepted(request, job_id).model_dump(), files=outcomes)


@router.delete("/documents/{document_id:path}", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted)
async def delete_document(document_id: str, request: Request, key: KeyDep) -> JobAccepted:
    """Delete a document everywhere (SQL, BM25, dense) in a background job. The id may contain '/'
    (percent-encode other reserved characters)."""
    if problem := id_problem(document_id):
        raise _invalid("document_id", f"id {problem}")
    job_id = await run_in_threadpool(request.app.state.jobs.submit, "delete", None, [document_id], key.id if key else None,
                                     _idempotency_key(request))
    return _accepted(request, job_id)


@router.get("/jobs/{job_id}", response_model=JobStatus, name="job_status")
async def job_status(job_id: str, request: Request) -> JobStatus:
    job = await run_in_threadpool(request.app.state.jobs.get, job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id!r}")
    return JobStatus(**job)
