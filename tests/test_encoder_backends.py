"""Which runtime encodes queries: the index's own (recorded in its manifest) unless settings say
otherwise; and what the searcher says when vectors and queries come from different numeric paths."""

import logging

import pytest

from indexer.sources import open_source
from rag import factory
from rag.encoders.hashing import HashEncoder
from rag.errors import ConfigError
from rag.manifest import EncoderInfo
from rag.reader import IndexReader
from rag.search import Searcher
from rag.settings import Settings
from tests.conftest import SAMPLE, make_job


class Info:
    def __init__(self, numeric: str) -> None:
        self.encoder = EncoderInfo("model@x", None, 384, 256, numeric=numeric)  # type: ignore[arg-type]


@pytest.mark.parametrize("settings, built, expect", [
    ({"device": "cpu"}, None, ("OnnxEncoder", "onnx-int8")),  # a new index on a CPU: the measured default
    ({"device": "cuda"}, None, ("SentenceTransformerEncoder", "torch-fp16")),  # where a GPU encodes
    ({}, "torch-fp32", ("SentenceTransformerEncoder", "torch-fp32")),  # an index built before backends existed
    ({}, "onnx-fp32", ("OnnxEncoder", "onnx-fp32")),
    ({"backend": "torch"}, "onnx-int8", ("SentenceTransformerEncoder", "torch-fp32")),  # said explicitly
    ({"precision": "fp32"}, "onnx-int8", ("OnnxEncoder", "onnx-fp32")),
])
def test_the_query_encoder_follows_the_index_unless_settings_say_otherwise(settings, built, expect, tmp_path):
    s = Settings(index_dir=tmp_path, encoder=settings)
    enc = factory.index_encoder(s, Info(built) if built else None, shared=False)  # type: ignore[arg-type]
    assert (type(enc).__name__, enc.numeric) == expect  # nothing is loaded to know this


class Numeric(HashEncoder):
    def __init__(self, numeric: str, dim: int = 64) -> None:
        super().__init__(dim=dim)
        self.numeric = numeric
        self.weights = self.model_key
        self.model_key = f"{self.model_key}|{numeric}"

    @property
    def weights_key(self) -> str:
        return self.weights


def test_another_runtime_of_the_same_model_is_allowed_and_said_another_model_refused(tmp_path, caplog):
    make_job(tmp_path, Numeric("onnx-int8")).run(open_source(SAMPLE))
    reader = IndexReader(tmp_path)
    assert reader.manifest.encoder.numeric == "onnx-int8"
    assert Searcher(reader, Numeric("onnx-int8")).encoder_warning is None
    with caplog.at_level(logging.WARNING):
        s = Searcher(reader, Numeric("onnx-fp32"))
    assert "onnx-int8 vectors" in s.encoder_warning and "onnx-fp32" in s.encoder_warning and s.encoder_warning in caplog.text
    assert s.search("snake plant watering", k=3).hits  # and it searches
    with pytest.raises(ConfigError, match="built with encoder"):
        Searcher(reader, Numeric("onnx-int8", dim=32))


@pytest.mark.slow
def test_onnx_vectors_match_torch_fp32_exactly_and_int8_closely(real_encoder, onnx_encoders):
    """The traced pipeline is the model: texts of other lengths than the trace's sample, one longer
    than the model's 256 tokens (truncated alike), an empty one."""
    import numpy as np

    texts = ["Prune roses.", "Snake plants need water once a month in winter. " * 3, "word " * 400, ""]
    torch_vecs = real_encoder.encode_passages(texts)
    assert np.abs(onnx_encoders["fp32"].encode_passages(texts) - torch_vecs).max() < 1e-5
    assert (onnx_encoders["int8"].encode_passages(texts) * torch_vecs).sum(axis=1).min() > 0.95
    assert onnx_encoders["int8"].weights_key == onnx_encoders["fp32"].weights_key == real_encoder.weights_key


def test_forget_encoders_stops_their_query_workers_and_loads_afresh():
    """`rag train --rounds` drops each round's encoder: without this every round's model stayed loaded
    (its query worker thread held it)."""
    s = Settings(progress=False)
    enc = factory.index_encoder(s, None)
    assert factory.index_encoder(s, None) is enc and enc.batcher is not None
    worker = enc.batcher._thread
    factory.forget_encoders()
    assert enc.batcher is None and not worker.is_alive()
    again = factory.index_encoder(s, None)
    assert again is not enc and again.batcher is not None
    assert again.encode_queries(["snake plant"]).shape == (1, again.dim)
