"""Answering: search -> truncation -> evidence sentences and the extractive answer -> query-aware
prompt -> generator -> citations. In ``extractive`` mode the generator is not called at all; in
``both`` the extractive answer is ready (and streamed) before the first token.

A failing generator (down, timeout, out of memory) does not lose the retrieval: the result carries
the passages, the error and its kind."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from rag.citations import Citation, citations
from rag.errors import ConfigError, InputError
from rag.evidence import (
    NOT_FOUND,
    Evidence,
    EvidenceFinder,
    extractive_answer,
    grounded_span,
)
from rag.generators.base import GenerationParams, Generator
from rag.generators.errors import GeneratorError
from rag.prompts import Context, PassageOrder, PromptBuilder
from rag.search import Searcher, SearchResult
from rag.types import AnswerMode, Passage

log = logging.getLogger(__name__)
#: most tokens a small model writes from evidence sentences (one short sentence) or copies from one
SHORT_MAX_TOKENS = {Context.evidence: 48, Context.sentence: 16}


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
    evidence: list[Evidence] = field(default_factory=list)  # best sentences of the passages, best first
    extractive: Evidence | None = None  # the extractive answer; None: nothing scored high enough
    mode: AnswerMode = AnswerMode.generative
    #: in ``both`` mode with context "sentence": the evidence the answer's words are (span offsets set when a
    #: part of the sentence), and the generator's own words, if it ran
    answer_evidence: Evidence | None = None
    generated: str | None = None
    #: how well the passages answer the question at all (see rag.evidence.relevance); None without evidence
    relevance: float | None = None


class Answerer:
    def __init__(
        self, searcher: Searcher, generator: Generator, params: GenerationParams | None = None,
        contextualize: bool = True, order: PassageOrder = PassageOrder.rank, max_passages: int = 5,
        prompt_budget: int = 1536, evidence: EvidenceFinder | None = None, mode: AnswerMode = AnswerMode.generative,
        evidence_sentences: int = 3, extractive_span: bool = True, context: Context | str = Context.passages,
    ) -> None:
        """``context``: what the generator reads: "passages" (large models), "evidence" (the best
        sentences) or "sentence" (the best one, whose words the model copies; for small models).
        In ``both`` mode with "sentence" the answer is always words of the evidence: the span the
        question's type asks for when there is one (no generation), else the model's copy matched
        back onto the sentence, else the sentence."""
        self.searcher = searcher
        self.generator = generator
        self.params = params or GenerationParams()
        self.contextualize = contextualize
        self.order = order
        self.max_passages = max_passages
        self.prompt_budget = prompt_budget
        self.evidence = evidence
        self.mode = mode
        self.evidence_sentences = evidence_sentences
        self.extractive_span = extractive_span
        self.context = Context(context)

    def stream(
        self, question: str, k: int | None = None, filters: Mapping[str, Any] | None = None,
        params: GenerationParams | None = None, contextualize: bool | None = None, mode: AnswerMode | str | None = None,
    ) -> Iterator[tuple[str, Any]]:
        """Events: ("search", SearchResult), with an evidence finder ("evidence", [Evidence]) and
        ("extractive", Evidence | None), then ("token", str) ... unless extractive, then ("result", AnswerResult)."""
        try:
            mode = AnswerMode(mode or self.mode)
        except ValueError:
            raise InputError(f"answer mode {mode!r}: choose one of {', '.join(m.value for m in AnswerMode)}") from None
        t0 = time.perf_counter()
        found = self.searcher.search(question, k=k or self.max_passages, filters=filters)
        yield "search", found
        timings = {f"search.{k_}": v for k_, v in found.timings_ms.items()}
        result = AnswerResult(question, None, [], [], [], found, timings, mode=mode)
        if self.evidence is not None or mode == AnswerMode.extractive:
            t = time.perf_counter()
            finder = self.evidence or EvidenceFinder(self.searcher.encoder)
            findings = finder.find(question, [h.passage for h in found.hits], self.evidence_sentences)
            result.evidence, result.relevance = findings.sentences, findings.relevance

            def likelihood(q: str, e: Evidence, spans: list[str]) -> list[float] | None:
                t_ = time.perf_counter()
                try:
                    return self.generator.score_continuations(self._copy_prompt(q, e, contextualize), spans)
                except (GeneratorError, ConfigError) as exc:  # the closest span still answers
                    log.warning("span scoring failed, choosing by closeness alone: %s", exc)
                    return None
                finally:
                    timings["evidence.span_likelihood"] = (time.perf_counter() - t_) * 1000

            # extractive mode needs no generator at all: candidates by closeness alone there
            result.extractive = extractive_answer(findings, finder.weights.min_relevance,
                                                  question if self.extractive_span else None,
                                                  None if mode == AnswerMode.extractive else likelihood,
                                                  finder.weights.span_likelihood)
            timings["evidence"] = (time.perf_counter() - t) * 1000
            yield "evidence", result.evidence
            yield "extractive", result.extractive
        grounded = mode == AnswerMode.both and self.context is Context.sentence
        if mode == AnswerMode.extractive or (grounded and (result.extractive is None or result.extractive.span_start is not None)):
            yield "result", self._finish(result, result.extractive, t0, timings)
            return
        t = time.perf_counter()
        params = params or self.params
        context = [h.passage for h in found.hits]
        small = self.context is not Context.passages and bool(result.evidence)
        if small:
            # a small model cannot read five passages: it gets the evidence sentences (or the best
            # one) and a short-answer prompt, and stops at the end of its first line
            chosen = result.evidence[:1] if self.context is Context.sentence else result.evidence
            context = [_as_passage(e) for e in chosen]
            params = replace(params, max_tokens=min(params.max_tokens, SHORT_MAX_TOKENS[self.context]), stop=(*params.stop, "\n"))
        builder = self._builder(contextualize, self.context if small else Context.passages)
        try:
            prompt = builder.build(question, context)
            result.passages = prompt.passages
            timings["prompt"] = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            s = self.generator.stream(prompt.messages, params)
            for delta in s:
                yield "token", delta
            g = s.final()
            timings["generate"] = (time.perf_counter() - t) * 1000
            timings["first_token"] = (g.first_token_s or 0.0) * 1000
            result.answer = g.text
            result.usage = {"tokens_in": g.tokens_in, "tokens_out": g.tokens_out, "tokens_per_s": round(g.tokens_per_s, 2),
                            "passages_dropped_for_budget": prompt.dropped}
            result.citations, result.invalid_citations = citations(g.text, prompt.passages)
            if grounded and result.extractive is not None:  # the model's copy, as words of the sentence, else the sentence
                e = result.extractive
                span = grounded_span(g.text, e.text)
                result.generated = g.text
                yield "result", self._finish(result, e if span is None else
                                             replace(e, span_start=e.start + span[0], span_end=e.start + span[1]), t0, timings)
                return
        except GeneratorError as exc:
            result.error, result.error_kind = str(exc), exc.kind
            if grounded and result.extractive is not None:  # the answer is still the sentence found
                yield "result", self._finish(result, result.extractive, t0, timings)
                return
        timings["total"] = (time.perf_counter() - t0) * 1000
        result.timings_ms = {k_: round(v, 3) for k_, v in timings.items()}
        yield "result", result

    def _builder(self, contextualize: bool | None, context: Context) -> PromptBuilder:
        return PromptBuilder(self.generator.count_tokens, self.generator.render,
                             self.contextualize if contextualize is None else contextualize, self.order, self.prompt_budget,
                             context=context)

    def _copy_prompt(self, question: str, e: Evidence, contextualize: bool | None) -> list[dict[str, str]]:
        """The copy-the-words prompt for one sentence (the one the generator gets in context "sentence")."""
        return self._builder(contextualize, Context.sentence).build(question, [_as_passage(e)]).messages

    @staticmethod
    def _finish(result: AnswerResult, answer: Evidence | None, t0: float, timings: dict[str, float]) -> AnswerResult:
        """An answer made of evidence: its words (or NOT_FOUND), cited to its passage."""
        result.answer_evidence = answer
        result.answer = answer.answer if answer else NOT_FOUND
        result.passages = [h.passage for h in result.search.hits]
        result.citations = [Citation(answer.number, answer.passage_id, answer.document_id, answer.title, False,
                                     answer.location)] if answer else []
        result.invalid_citations = []
        timings["total"] = (time.perf_counter() - t0) * 1000
        result.timings_ms = {k_: round(v, 3) for k_, v in timings.items()}
        return result

    def answer(self, question: str, **kw) -> AnswerResult:
        for kind, value in self.stream(question, **kw):
            if kind == "result":
                return value
        raise AssertionError("the stream ended without a result")


def _as_passage(e: Evidence) -> Passage:
    """An evidence sentence as a passage of its own (what a small model reads)."""
    return Passage(e.passage_id, e.document_id, 0, e.title, e.text, location=e.location)


def params_from(settings, **overrides) -> GenerationParams:
    g = settings.generator
    base = GenerationParams(g.temperature, g.top_p, g.max_tokens, g.repetition_penalty, tuple(g.stop))
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})
