"""A deterministic fake generator for fast unit tests: it answers with the first sentence of
passage [1] and cites it. Never the main path."""

from __future__ import annotations

import re
import time

from rag.generators.base import (
    Generation,
    GenerationParams,
    Generator,
    Messages,
    TokenStream,
    apply_stop,
)


class EchoGenerator(Generator):
    name = "echo"

    def __init__(self, cite: bool = True, delay_s: float = 0.0) -> None:
        self.cite = cite
        self.delay_s = delay_s

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _answer(self, messages: Messages) -> str:
        user = messages[-1]["content"]
        if m := re.search(r"^Sentence: (.*)$", user, re.M):  # the copy-the-words prompt: its last three words
            return " ".join(m.group(1).rstrip(" .!?").split()[-3:])
        # "[1] title\ntext" (passages) or "[1] text" (evidence sentences): the first sentence of [1]'s text
        m = re.search(r"\[1\] ?([^\n]*)(?:\n(?!\[\d+\])([^\n]+))?", user)
        if not m:
            return "I do not know."
        first = re.split(r"(?<=[.!?])\s", (m.group(2) or m.group(1)).strip(), maxsplit=1)[0]
        return f"{first} [1]" if self.cite else first

    def stream(self, messages: Messages, params: GenerationParams) -> TokenStream:
        t0 = time.perf_counter()
        words = self._answer(messages).split(" ")[: params.max_tokens]
        text, stopped = apply_stop(" ".join(words), params.stop)
        out = TokenStream(iter(()))
        n_in = self.count_tokens(self.render(messages))

        def run():
            first = None
            pieces = text.split(" ") if text else []
            for i, w in enumerate(pieces):
                if self.delay_s:
                    time.sleep(self.delay_s)
                first = first if first is not None else time.perf_counter() - t0
                yield w if i == 0 else " " + w
            finish = "length" if len(words) >= params.max_tokens and not stopped else "stop"
            out.result = Generation(text, n_in, len(pieces), time.perf_counter() - t0, first, finish)

        out.deltas = run()
        return out
