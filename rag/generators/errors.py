"""Generator failures; the service maps them to 503 (unavailable, out of memory) and 504 (timeout)."""

from rag.errors import RagError


class GeneratorError(RagError):
    """Generation failed."""


class GeneratorUnavailable(GeneratorError):
    """The generator cannot be reached or is not loaded."""


class GeneratorTimeout(GeneratorError):
    """The generator did not answer in time."""


class GeneratorOutOfMemory(GeneratorError):
    """The generator ran out of (GPU) memory."""
