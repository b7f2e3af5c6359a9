"""The Generator interface: streaming first; the non-streaming call consumes the stream."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rag.cache import DEFAULT_CACHE

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class GeneratorSpec:
    """What makes one generator (decoding parameters are per request, not here): the factory keeps
    one generator per spec."""

    backend: str = "local"  # local | ctranslate2 | openai
    model: str | None = None
    base_url: str = "http://127.0.0.1:8001/v1"
    api_key: str | None = None
    tokenizer: str | None = None
    device: str = "auto"
    threads: int | None = None
    max_batch: int = 8
    max_wait_ms: float = 10.0
    static_cache: bool = False
    cache_dir: Path = DEFAULT_CACHE
    timeout_s: float = 60.0
    retries: int = 2
    compute_type: str = "auto"
    replicas: int | None = None
    prefix_cache: bool = True
    dtype: str = "auto"
    pack_weights: bool = True


@dataclass(frozen=True)
class GenerationParams:
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()
    min_tokens: int = 0  # in-process backends: no end token before this many (fixed-length runs for benchmarks)


@dataclass
class Generation:
    text: str
    tokens_in: int
    tokens_out: int
    seconds: float
    first_token_s: float | None
    finish_reason: str  # "stop" | "length"

    @property
    def tokens_per_s(self) -> float:
        decode = self.seconds - (self.first_token_s or 0.0)
        return (self.tokens_out - 1) / decode if self.tokens_out > 1 and decode > 0 else 0.0


@dataclass
class TokenStream:
    """Iterates text deltas; ``result`` holds the whole :class:`Generation` once exhausted."""

    deltas: Iterator[str]
    result: Generation | None = field(default=None)

    def __iter__(self) -> Iterator[str]:
        return self.deltas

    def final(self) -> Generation:
        """The whole generation, once the stream is exhausted."""
        if self.result is None:
            raise RuntimeError("the token stream was read before it ended")
        return self.result


class Generator(ABC):
    name: str = "generator"

    @abstractmethod
    def stream(self, messages: Messages, params: GenerationParams) -> TokenStream:
        """Start generating; the returned stream yields text as it is produced."""

    def generate(self, messages: Messages, params: GenerationParams) -> Generation:
        s = self.stream(messages, params)
        for _ in s:
            pass
        return s.final()

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the generator's own tokenizer (for the prompt budget)."""

    def render(self, messages: Messages) -> str:
        """The prompt text as the model sees it (its chat template)."""
        return "\n".join(m["content"] for m in messages)

    def score_continuations(self, messages: Messages, continuations: list[str]) -> list[float] | None:
        """The mean log-probability of each continuation's tokens as the start of the answer to
        ``messages`` (how likely the model finds it as its answer), or None where the backend cannot score."""
        return None

    def check(self) -> None:  # noqa: B027 - an optional hook: most generators have nothing to check
        """Raise GeneratorUnavailable when the generator cannot serve (readiness)."""

    def close(self) -> None:  # noqa: B027 - an optional hook: most generators hold nothing to release
        """Release threads and memory (the process's generators are closed at exit)."""


def apply_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """Cut ``text`` at the first stop sequence; True when one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
