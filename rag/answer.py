"""Answering: search -> truncation -> query-aware prompt -> generator -> citations.

A failing generator (down, timeout, out of memory) does not lose the retrieval: the result carries
the passages, the error and its kind."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from rag.citations import Citation, citations
from rag.generators.base import GenerationParams, Generator
from rag.generators.errors import GeneratorError, GeneratorOutOfMemory, GeneratorTimeout, GeneratorUnavailable
from rag.prompts import PassageOrder, PromptBuilder
from rag.search import Searcher, SearchResult
from rag.types import Passage


@dataclass
class AnswerResult:
    question: str
    answer: str | None
    citations: list[Citation]
    invalid_citations: list[int]
    passages: list[Passage]  # as numbered in the prompt: passages[i] is [i + 1]
    search: SearchResult
    timings_ms: dict[str, float] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    error_kind: str | None = None  # "unavailable" | "timeout" | "out_of_memory" | "failed"


def error_kind(exc: GeneratorError) -> str:
    if isinstance(exc, GeneratorTimeout):
        return "timeout"
    if isinstance(exc, GeneratorOutOfMemory):
        return "out_of_memory"
    if isinstance(exc, GeneratorUnavailable):
        return "unavailable"
    return "failed"


class Answerer:
    def __init__(
        self, searcher: Searcher, generator: Generator, params: GenerationParams | None = None,
        contextualize: bool = True, order: PassageOrder = PassageOrder.rank, max_passages: int = 5,
        prompt_budget: int = 1536,
    ) -> None:
        self.searcher = searcher
        self.generator = generator
        self.params = params or GenerationParams()
        self.contextualize = contextualize
        self.order = order
        self.max_passages = max_passages
        self.prompt_budget = prompt_budget

    def stream(
        self, question: str, k: int | None = None, filters: Mapping[str, Any] | None = None,
        params: GenerationParams | None = None, contextualize: bool | None = None,
    ) -> Iterator[tuple[str, Any]]:
        """Events: ("search", SearchResult), ("token", str) ..., then ("result", AnswerResult)."""
        t0 = time.perf_counter()
        found = self.searcher.search(question, k=k or self.max_passages, filters=filters)
        yield "search", found
        timings = {f"search.{k_}": v for k_, v in found.timings_ms.items()}
        t = time.perf_counter()
        builder = PromptBuilder(
            self.generator.count_tokens, self.generator.render,
            self.contextualize if contextualize is None else contextualize, self.order, self.prompt_budget,
        )
        result = AnswerResult(question, None, [], [], [], found, timings)
        try:
            prompt = builder.build(question, [h.passage for h in found.hits])
            result.passages = prompt.passages
            timings["prompt"] = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            s = self.generator.stream(prompt.messages, params or self.params)
            for delta in s:
                yield "token", delta
            g = s.result
            timings["generate"] = (time.perf_counter() - t) * 1000
            timings["first_token"] = (g.first_token_s or 0.0) * 1000
            result.answer = g.text
            result.usage = {"tokens_in": g.tokens_in, "tokens_out": g.tokens_out, "tokens_per_s": round(g.tokens_per_s, 2),
                            "passages_dropped_for_budget": prompt.dropped}
            result.citations, result.invalid_citations = citations(g.text, prompt.passages)
        except GeneratorError as exc:
            result.error, result.error_kind = str(exc), error_kind(exc)
        timings["total"] = (time.perf_counter() - t0) * 1000
        result.timings_ms = {k_: round(v, 3) for k_, v in timings.items()}
        yield "result", result

    def answer(self, question: str, **kw) -> AnswerResult:
        for kind, value in self.stream(question, **kw):
            if kind == "result":
                return value
        raise AssertionError("the stream ended without a result")


def params_from(settings, **overrides) -> GenerationParams:
    g = settings.generator
    base = GenerationParams(g.temperature, g.top_p, g.max_tokens, g.repetition_penalty, tuple(g.stop))
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})
