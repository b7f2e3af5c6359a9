"""Plain-JSON forms of results, shared by the CLI's --json output and the HTTP API."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any


def search_result_dict(result) -> dict[str, Any]:
    return {
        "query": result.query, "mode": result.mode.value, "generation": result.generation,
        "hits": [
            {"rank": h.rank, "score": h.score, "passage_id": h.passage.id, "document_id": h.passage.document_id,
             "title": h.passage.title, "text": h.passage.text, "source": h.passage.source, "metadata": h.passage.metadata,
             "location": h.passage.location}
            for h in result.hits
        ],
        "truncation": asdict(result.truncation),
        "timings_ms": result.timings_ms,
    }


def answer_result_dict(r) -> dict[str, Any]:
    return {
        "question": r.question, "answer": r.answer,
        "citations": [asdict(c) for c in r.citations], "invalid_citations": r.invalid_citations,
        "passages": [{"number": i + 1, "passage_id": p.id, "document_id": p.document_id, "title": p.title, "text": p.text,
                      "location": p.location}
                     for i, p in enumerate(r.passages)],
        "search": search_result_dict(r.search), "timings_ms": r.timings_ms, "usage": r.usage,
        "error": r.error and {"kind": r.error_kind, "message": r.error},
        "mode": r.mode.value, "extractive": extractive_dict(r.extractive), "evidence": [asdict(e) for e in r.evidence],
        "relevance": r.relevance,
        "answer_evidence": r.answer_evidence and {**asdict(r.answer_evidence), "answer": r.answer_evidence.answer},
        "generated": r.generated,
    }


def extractive_dict(e) -> dict[str, Any]:
    """The extractive answer: the sentence and where it is (``found: false`` when it abstained)."""
    if e is None:
        from rag.evidence import NOT_FOUND

        return {"found": False, "text": NOT_FOUND}
    return {"found": True, **asdict(e), "answer": e.answer}
