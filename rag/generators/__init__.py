"""Generators: one interface (:class:`Generator`), backends `local` (transformers), `openai`
(any OpenAI-compatible server, vLLM in production) and `echo` (a fake for fast tests)."""

from rag.generators.base import Generation, GenerationParams, Generator, TokenStream

__all__ = ["Generation", "GenerationParams", "Generator", "TokenStream"]
