"""Encoding on a local Ray cluster (2 actors) gives the vectors in-process encoding gives."""

import sqlite3
from functools import partial

import pytest

from indexer.sources import open_source
from rag.encoders.hashing import HashEncoder
from rag.errors import ConfigError
from tests.conftest import SAMPLE, make_job


def vectors(index_dir):
    with sqlite3.connect(index_dir / "rag.db") as c:
        return c.execute("SELECT id, embedding_model, embedding FROM passages ORDER BY id").fetchall()


@pytest.mark.slow
def test_ray_encoding_equals_in_process_and_is_resumable(tmp_path):
    ray = pytest.importorskip("ray")
    enc = HashEncoder(dim=64)
    make_job(tmp_path / "local", enc).run(open_source(SAMPLE))
    try:
        job = make_job(tmp_path / "ray", enc, ray_address="local", ray_workers=2, encoder_factory=partial(HashEncoder, dim=64))
        s = job.run(open_source(SAMPLE))
        assert s.published and s.passages_encoded == s.passages_total
        assert {"ray start-up", "encode", "ray write-back"} <= set(s.seconds)
        assert vectors(tmp_path / "ray") == vectors(tmp_path / "local")  # every passage, bit for bit
        # nothing missing: a second run encodes nothing and keeps the generation
        again = make_job(tmp_path / "ray", enc, ray_address="local", encoder_factory=partial(HashEncoder, dim=64)).run(None)
        assert again.passages_encoded == 0 and not again.published
    finally:
        ray.shutdown()


def test_ray_needs_an_encoder_factory(tmp_path):
    enc = HashEncoder(dim=16)
    with pytest.raises(Exception, match="encoder factory"):
        make_job(tmp_path, enc, ray_address="local").run(open_source(SAMPLE))


def test_an_unreachable_ray_cluster_is_a_clear_error(tmp_path):
    pytest.importorskip("ray")
    enc = HashEncoder(dim=16)
    job = make_job(tmp_path, enc, ray_address="127.0.0.1:1", encoder_factory=partial(HashEncoder, dim=16))
    with pytest.raises(ConfigError, match="Ray cluster"):
        job.run(open_source(SAMPLE))
