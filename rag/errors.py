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
