"""Benchmarks: each module is a script (``python -m eval.benchmarks.NAME``); helpers they share live here."""

import socket


def free_port() -> int:
    """A loopback port nothing listens on now (for a server a benchmark starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
