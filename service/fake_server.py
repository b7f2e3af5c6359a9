"""The service with the model-free fakes (the hashing encoder, the echo generator) and rank-bm25:
what the test suite and the crash benchmark run, in seconds and without model files.

    python -m service.fake_server INDEX_DIR [--port 8000] [--slow-encoder]

``--slow-encoder`` encodes as slowly as a real model on a small CPU (20 ms a passage), so a crash
test's kills land in the middle of jobs. Not for users: answers are echoes.
"""

from __future__ import annotations

import argparse
import time
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
