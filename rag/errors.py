"""Errors the library raises. Each class names its ``kind``; the CLI and the service turn kinds into
messages and status codes (service.errors holds the one HTTP mapping)."""


class RagError(Exception):
    """Base class: every error the library raises on purpose."""

    kind = "internal"


class InputError(RagError):
    """The user gave something unusable (a path, a record, a query)."""

    kind = "invalid_input"


class IndexLockedError(InputError):
    """Another indexing job holds the index."""


class ConfigError(RagError):
    """A setting is invalid or a model/index it names cannot be loaded."""

    kind = "misconfigured"


class IndexNotFoundError(RagError):
    """No published index generation exists where one was expected."""

    kind = "index_unavailable"


class IndexUnavailableError(RagError):
    """The published index (or the store) cannot be read: missing or corrupt files. The service
    answers 503 with the reason; nothing a client sent is wrong."""

    kind = "index_unavailable"


class IndexValidationError(RagError):
    """A freshly built generation failed its checks before publication; it was not published."""


class JobQueueFullError(RagError):
    """The indexing queue is at its bound (in total or for one API key): retry later (HTTP 429)."""

    kind = "queue_full"
    retry_after_s = 5
