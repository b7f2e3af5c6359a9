"""rag: hybrid retrieval-augmented search over your own documents."""

__version__ = "0.1.0"
