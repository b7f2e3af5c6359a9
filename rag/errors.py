"""Errors the library raises. The CLI and the service turn them into messages and status codes."""


class RagError(Exception):
    """Base class: every error the library raises on purpose."""


class InputError(RagError):
    """The user gave something unusable (a path, a record, a query)."""


class IndexLockedError(InputError):
    """Another indexing job holds the index."""


class ConfigError(RagError):
    """A setting is invalid or a model/index it names cannot be loaded."""


class IndexNotFoundError(RagError):
    """No published index generation exists where one was expected."""


class IndexUnavailableError(RagError):
    """The published index (or the store) cannot be read: missing or corrupt files. The service
    answers 503 with the reason; nothing a client sent is wrong."""


class IndexValidationError(RagError):
    """A freshly built generation failed its checks before publication; it was not published."""


class JobQueueFullError(RagError):
    """The indexing queue is at its bound (in total or for one API key): retry later (HTTP 429)."""

    retry_after_s = 5
