"""`ctranslate2`: the same causal LM run by CTranslate2 (int8 weights on CPU, int8_float16 on CUDA).

The transformers folder (by default the embedded SmolLM2 converted from its GGUF file) is converted
once into ``CACHE/ct2/<folder>-<weights hash>-<compute type>`` and published atomically. Requests
are batched and streamed as by the transformers backend (same queue, chat template, end tokens,
stop sequences and decoding parameters); the decode loop is a ``generate_batch`` whose per-token
callback feeds each request's stream. Two differences (measured: docs/benchmarks/generators.json):

- ``replicas`` workers (CTranslate2's ``inter_threads``; default: the CPU cores up to 4, one on
  CUDA) each decode their own batch at the same time. On CPU a 135M model's matrices are too small
  to split over threads, so concurrent requests gain more from running side by side.
- A batch only takes prompts of about the same length: CTranslate2 feeds the prompt tokens past the
  shortest prompt's one decode step at a time, for the whole batch.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from rag.cache import DEFAULT_CACHE, build_once
from rag.cpu import cores
from rag.errors import ConfigError
from rag.generators.base import Messages
from rag.generators.local import _DONE, LocalGenerator, _as_list, _Request, default_model_dir
from rag.hashing import fingerprint

log = logging.getLogger(__name__)
COMPUTE_TYPES = ("auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "float16", "bfloat16", "float32")
SPREAD_SHARE = 0.25  # a batch's prompt lengths may differ by this share of its first request's max_tokens


def converted(src: Path, quantization: str, cache_dir: Path) -> Path:
    """``src`` (a transformers folder) as a CTranslate2 model, converted once."""

    def convert(tmp: Path) -> None:
        from ctranslate2.converters import TransformersConverter

        log.info("converting %s to CTranslate2 %s (once)", src, quantization)
        try:
            TransformersConverter(str(src)).convert(str(tmp), quantization=quantization, force=True)
        except Exception as exc:  # noqa: BLE001 - an architecture CTranslate2 cannot convert is a configuration problem
            raise ConfigError(f"cannot convert generator model {str(src)!r} to CTranslate2: {exc}") from exc

    return build_once(cache_dir / "ct2" / f"{src.name}-{fingerprint(src)}-{quantization}", convert)


class CT2Generator(LocalGenerator):
    name = "ctranslate2"

    def __init__(
        self, model: str | None = None, device: str = "auto", max_batch: int = 8, max_wait_ms: float = 10.0,
        cache_dir: Path = DEFAULT_CACHE, threads: int | None = None, compute_type: str = "auto", replicas: int | None = None,
    ) -> None:
        super().__init__(model, device, max_batch, max_wait_ms, False, cache_dir, threads, prefix_cache=False)
        if compute_type not in COMPUTE_TYPES:
            raise ConfigError(f"generator.compute_type {compute_type!r} is not one of {', '.join(COMPUTE_TYPES)}")
        self._compute_arg = compute_type
        self._replicas_arg = replicas

    def load(self) -> None:
        with self._load_lock:
            if self._loaded:
                return
            import ctranslate2
            from transformers import AutoTokenizer, GenerationConfig

            src = Path(self._model_arg) if self._model_arg else default_model_dir(self.cache_dir)
            if self._device_arg == "auto":
                self.device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
            else:
                self.device = self._device_arg.split(":")[0]
            self.compute_type = self._compute_arg if self._compute_arg != "auto" else (
                "int8_float16" if self.device == "cuda" else "int8")
            self.workers = self._replicas_arg or (1 if self.device == "cuda" else min(4, cores()))
            try:
                self.tokenizer = AutoTokenizer.from_pretrained(src)
                folder = converted(src, self.compute_type, self.cache_dir)
                # one thread per op unless told: a 135M model's matrices are too small to split (measured:
                # 41 tokens/s with 1 thread, 30 with 2 on this 2-core machine)
                self.model = ctranslate2.Generator(str(folder), device=self.device, compute_type=self.compute_type,
                                                   intra_threads=self.threads or 1, inter_threads=self.workers)
                config_eos = GenerationConfig.from_pretrained(src).eos_token_id if (src / "generation_config.json").is_file() else None
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - any load failure is the configured path
                raise ConfigError(f"cannot load generator model {str(src)!r} with CTranslate2: {exc}") from exc
            self.eos_ids = set(_as_list(self.tokenizer.eos_token_id)) | set(_as_list(config_eos))
            self.end_tokens = self.tokenizer.convert_ids_to_tokens(sorted(self.eos_ids))
            self.path = src
            self._loaded = True
            log.info("loaded generator %s with CTranslate2 on %s (%s, %d replicas)", src, self.device, self.compute_type,
                     self.workers)

    def score_continuations(self, messages: Messages, continuations: list[str]) -> list[float] | None:
        """CTranslate2's own scoring (thread-safe, beside the decode workers)."""
        if not continuations:
            return []
        prompt, conts = self._scoring_ids(messages, continuations)
        scored = self.model.score_batch([self.tokenizer.convert_ids_to_tokens(prompt + c) for c in conts])
        return [sum(s.log_probs[-len(c):]) / len(c) for s, c in zip(scored, conts, strict=True)]

    def _fits(self, first: _Request, r: _Request) -> bool:
        return super()._fits(first, r) and abs(r.tokens_in - first.tokens_in) <= SPREAD_SHARE * first.params.max_tokens

    def _run(self, batch: list[_Request]) -> None:
        p = batch[0].params
        prompts = [self.tokenizer.convert_ids_to_tokens(r.prompt_ids) for r in batch]

        def on_token(step) -> bool:
            r = batch[step.batch_id]
            self._on_token(r, step.token_id, time.perf_counter())
            return r.done  # True ends this request's decoding

        greedy = p.temperature <= 0
        self.model.generate_batch(
            prompts, max_length=max(r.params.max_tokens for r in batch), beam_size=1, include_prompt_in_result=False,
            sampling_topk=1 if greedy else 0, sampling_topp=1.0 if greedy else p.top_p,
            sampling_temperature=1.0 if greedy else p.temperature, repetition_penalty=p.repetition_penalty,
            end_token=self.end_tokens, callback=on_token, min_length=p.min_tokens,
        )
        for r in batch:
            if not r.done:
                r.done = True
                r.out.put(_DONE)

