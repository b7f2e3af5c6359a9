"""The answer prompt: truncated passages, best first, numbered for citation, with the question both
before and after them (query-aware contextualization, for decoder-only generators), in the
generator's own chat template, within a token budget counted by the generator's tokenizer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from rag.types import Passage

SYSTEM = (
    "You answer questions using only the numbered passages you are given. "
    "Cite the passages you use by their number in square brackets, like [1]. "
    "If the passages do not contain the answer, say that you do not know."
)


#: for small models given evidence sentences: a one-shot example and a short-phrase instruction (on
#: the garden dev split SmolLM2-135M held the gold answer 0.21 of the time so, 0.16 with an instruction)
SHORT_EXAMPLE = [
    {"role": "user", "content": "Facts:\n[1] The Eiffel Tower is in Paris and was finished in 1889.\n[2] It is 330 metres tall.\n\n"
                                "Question: How tall is the Eiffel Tower?\nAnswer with a short phrase from the facts."},
    {"role": "assistant", "content": "330 metres [2]"},
]

COPY_INSTRUCTION = "Copy the few words of the sentence that answer the question."
#: for small models given the best sentence alone: copy the words that answer (two shots, a name and a
#: phrase); the copy is then matched back onto the sentence (rag.evidence.grounded_span)
COPY_EXAMPLES = [
    {"role": "user", "content": "Sentence: The Eiffel Tower, finished in 1889 for the World's Fair, was designed by the engineer "
                                f"Gustave Eiffel.\nQuestion: Who designed the Eiffel Tower?\n{COPY_INSTRUCTION}"},
    {"role": "assistant", "content": "Gustave Eiffel"},
    {"role": "user", "content": "Sentence: Most of the heat in the Earth's crust comes from the decay of radioactive elements such as "
                                f"uranium.\nQuestion: What produces the heat in the crust?\n{COPY_INSTRUCTION}"},
    {"role": "assistant", "content": "the decay of radioactive elements"},
]


class Context(str, Enum):
    """What the generator reads."""

    passages = "passages"  # the truncated passages, numbered for citation (large models)
    evidence = "evidence"  # the best evidence sentences, one-shot short-phrase prompt
    sentence = "sentence"  # the best sentence alone, copy-the-words prompt (the embedded 135M model)


class PassageOrder(str, Enum):
    rank = "rank"  # best first
    ends = "ends"  # best at both ends, weakest in the middle ("lost in the middle")


@dataclass(frozen=True)
class Prompt:
    messages: list[dict[str, str]]
    passages: list[Passage]  # as numbered in the prompt: passages[i] is [i + 1]
    tokens: int
    dropped: int  # passages left out to fit the budget


def order_passages(passages: Sequence[Passage], order: PassageOrder) -> list[Passage]:
    if PassageOrder(order) is PassageOrder.rank:
        return list(passages)
    front: list[Passage] = []
    back: list[Passage] = []
    for i, p in enumerate(passages):
        (front if i % 2 == 0 else back).append(p)
    return front + back[::-1]


class PromptBuilder:
    def __init__(
        self, count_tokens: Callable[[str], int], render: Callable[[list[dict[str, str]]], str] | None = None,
        contextualize: bool = True, order: PassageOrder = PassageOrder.rank, budget: int = 1536,
        system: str = SYSTEM, context: Context = Context.passages,
    ) -> None:
        """``context``: what the passages are (whole passages, or sentences for a small model)."""
        self.count_tokens = count_tokens
        self.render = render or (lambda msgs: "\n\n".join(m["content"] for m in msgs))
        self.contextualize = contextualize
        self.order = order
        self.budget = budget
        self.system = system
        self.context = Context(context)

    def _messages(self, question: str, passages: Sequence[Passage]) -> list[dict[str, str]]:
        if self.context is Context.sentence:
            text = " ".join(p.text for p in passages) or "(none)"
            return [*COPY_EXAMPLES, {"role": "user", "content": f"Sentence: {text}\nQuestion: {question}\n{COPY_INSTRUCTION}"}]
        if self.context is Context.evidence:
            facts = "\n".join(f"[{i + 1}] {p.text}" for i, p in enumerate(passages)) or "(none)"
            return [*SHORT_EXAMPLE, {"role": "user", "content": f"Facts:\n{facts}\n\nQuestion: {question}\n"
                                                                 "Answer with a short phrase from the facts."}]
        blocks = "\n\n".join(f"[{i + 1}] {p.title}\n{p.text}" if p.title else f"[{i + 1}] {p.text}" for i, p in enumerate(passages))
        body = f"Passages:\n{blocks or '(none)'}\n\nUsing only the passages above, answer the question: {question}"
        user = f"Question: {question}\n\n{body}" if self.contextualize else body
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    def _tokens(self, question: str, passages: Sequence[Passage]) -> int:
        return self.count_tokens(self.render(self._messages(question, order_passages(passages, self.order))))

    def build(self, question: str, ranked: Sequence[Passage]) -> Prompt:
        """Drop the lowest-ranked passages until the rest fits, then trim the last one kept to use
        the room left (or drop it too when not even a few words fit)."""
        kept = list(ranked)
        while kept and self._tokens(question, kept) > self.budget:
            if self._tokens(question, kept[:-1]) <= self.budget:
                kept = self._trim_last(question, kept) or kept[:-1]
                break
            kept = kept[:-1]
        ordered = order_passages(kept, self.order)
        return Prompt(self._messages(question, ordered), ordered, self._tokens(question, kept), len(ranked) - len(kept))

    def _trim_last(self, question: str, kept: list[Passage]) -> list[Passage] | None:
        """The last passage cut to as many words as fit (binary search), or None if none do."""
        last, words = kept[-1], kept[-1].text.split()
        lo, hi, best = 1, len(words) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            cand = kept[:-1] + [_with_text(last, " ".join(words[:mid]) + " ...")]
            if self._tokens(question, cand) <= self.budget:
                best, lo = cand, mid + 1
            else:
                hi = mid - 1
        return best


def _with_text(p: Passage, text: str) -> Passage:
    return Passage(p.id, p.document_id, p.ordinal, p.title, text, p.source, p.metadata, p.token_count)
