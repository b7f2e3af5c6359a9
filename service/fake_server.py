"""The service with the model-free fakes (the hashing encoder, the echo generator) and rank-bm25:
what the test suite and the crash benchmark run, in seconds and without model files.

    python -m service.fake_server INDEX_DIR [--port 8000] [--slow-encoder]

``--slow-encoder`` encodes as slowly as a real model on a small CPU (20 ms a passage), so a crash
test's kills land in the middle of jobs. Not for users: answers are echoes.

``fixed_search_app`` (a uvicorn factory) is the real service whose searcher answers every query with
one result computed at start-up: what ``eval.benchmarks.http_overhead`` times as the HTTP layer's
own cost.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import uvicorn

from rag.encoders.hashing import HashEncoder
from rag.generators.echo import EchoGenerator
from rag.reader import IndexReader
from rag.search import Searcher
from rag.settings import load_settings
from service.app import create_app


class SlowHashEncoder(HashEncoder):
    def _encode(self, texts, batch_size, progress):
        time.sleep(0.02 * len(texts))
        return super()._encode(texts, batch_size, progress)


class _FixedSearcher:
    """The real searcher, except that ``search`` returns one result computed at start-up (with no
    search time in its timings)."""

    def __init__(self, real: Searcher) -> None:
        self._real = real
        self._result = replace(real.search("what causes cancer", k=10), timings_ms={"total": 0.0})

    def search(self, *args, **kwargs):
        return self._result

    def refresh(self) -> bool:
        return False

    def __getattr__(self, name):
        return getattr(self._real, name)


def fixed_search_app():
    from rag.factory import make_searcher

    settings = load_settings({})
    real = make_searcher(settings)
    return create_app(settings, searcher_factory=lambda: _FixedSearcher(real))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("index_dir", type=Path)
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--slow-encoder", action="store_true")
    args = ap.parse_args()
    enc = (SlowHashEncoder if args.slow_encoder else HashEncoder)(dim=256)
    settings = load_settings({"index_dir": args.index_dir, "bm25": {"backend": "rank_bm25"}})
    app = create_app(settings, searcher_factory=lambda: Searcher(IndexReader(args.index_dir), enc),
                     generator_factory=EchoGenerator, encoder_factory=lambda: enc)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
