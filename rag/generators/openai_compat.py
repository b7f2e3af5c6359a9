"""`openai`: any OpenAI-compatible chat-completions server (vLLM in production), streamed over SSE,
with timeouts, retries with exponential backoff before the first token, and clear errors."""

from __future__ import annotations

import json
import logging
import time

import httpx

from rag.generators.base import (
    Generation,
    GenerationParams,
    Generator,
    Messages,
    TokenStream,
    apply_stop,
)
from rag.generators.errors import GeneratorError, GeneratorTimeout, GeneratorUnavailable

log = logging.getLogger(__name__)
RETRY_STATUS = {429, 500, 502, 503, 504}


class OpenAIGenerator(Generator):
    name = "openai"

    def __init__(
        self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0, retries: int = 2, backoff_s: float = 0.5, tokenizer: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.retries = retries
        self.backoff_s = backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s))
        self._tokenizer_path = tokenizer
        self._tokenizer = None

    def count_tokens(self, text: str) -> int:
        """With a local copy of the server's tokenizer, exact; otherwise about 4 characters a token."""
        if self._tokenizer_path and self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self._tokenizer_path)
        if self._tokenizer is not None:
            return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])
        return max(1, len(text) // 4)

    def check(self) -> None:
        try:
            r = self._client.get(f"{self.base_url}/models", timeout=5.0)
        except httpx.HTTPError as exc:
            raise GeneratorUnavailable(f"generator server {self.base_url} is unreachable: {exc}") from exc
        if r.status_code >= 500:
            raise GeneratorUnavailable(f"generator server {self.base_url} answered {r.status_code}")

    def stream(self, messages: Messages, params: GenerationParams) -> TokenStream:
        body = {
            "model": self.model, "messages": messages, "stream": True, "stream_options": {"include_usage": True},
            "temperature": params.temperature, "top_p": params.top_p, "max_tokens": params.max_tokens,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.repetition_penalty != 1.0:
            body["repetition_penalty"] = params.repetition_penalty  # vLLM's extension
        t0 = time.perf_counter()
        response = self._open(body)
        out = TokenStream(iter(()))

        def deltas():
            text, first, usage, finish, n = "", None, {}, "stop", 0
            try:
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or []:
                        delta = (choice.get("delta") or {}).get("content") or ""
                        finish = choice.get("finish_reason") or finish
                        if delta:
                            first = first if first is not None else time.perf_counter() - t0
                            n += 1
                            text += delta
                            yield delta
            except httpx.TimeoutException as exc:
                raise GeneratorTimeout(f"generator server {self.base_url} timed out while streaming") from exc
            except httpx.HTTPError as exc:
                raise GeneratorUnavailable(f"generator server {self.base_url} failed while streaming: {exc}") from exc
            finally:
                response.close()
            text, _ = apply_stop(text, params.stop)
            out.result = Generation(text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or n),
                                    time.perf_counter() - t0, first, "length" if finish == "length" else "stop")

        out.deltas = deltas()
        return out

    def _open(self, body: dict) -> httpx.Response:
        """POST with retries on connection errors and retryable statuses (nothing streamed yet)."""
        url = f"{self.base_url}/chat/completions"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                req = self._client.build_request("POST", url, json=body)
                r = self._client.send(req, stream=True)
            except httpx.TimeoutException as exc:
                if last:
                    raise GeneratorTimeout(f"generator server {self.base_url} timed out") from exc
            except httpx.TransportError as exc:
                if last:
                    raise GeneratorUnavailable(f"generator server {self.base_url} is unreachable: {exc}") from exc
            else:
                if r.status_code == 200:
                    return r
                detail = r.read().decode(errors="replace")[:300]
                r.close()
                if r.status_code not in RETRY_STATUS or last:
                    kind = GeneratorUnavailable if r.status_code in RETRY_STATUS else GeneratorError
                    raise kind(f"generator server {self.base_url} answered {r.status_code}: {detail}")
            delay = self.backoff_s * 2**attempt
            log.warning("generator request failed (attempt %d); retrying in %.1fs", attempt + 1, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._client.close()
