"""Generator failures; ``kind`` is what an answer reports as its ``error.kind`` (the service maps
unavailable and out of memory to 503, timeout to 504, the rest to 502)."""

from rag.errors import RagError


class GeneratorError(RagError):
    """Generation failed."""

    kind = "failed"


class GeneratorUnavailable(GeneratorError):
    """The generator cannot be reached or is not loaded."""

    kind = "unavailable"


class GeneratorTimeout(GeneratorError):
    """The generator did not answer in time."""

    kind = "timeout"


class GeneratorOutOfMemory(GeneratorError):
    """The generator ran out of (GPU) memory."""

    kind = "out_of_memory"
