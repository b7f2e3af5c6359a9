"""The encoder contract (rag.encoders.base.Encoder), run by every backend: the hashing fake, and the
packaged all-MiniLM-L6-v2 on torch (sentence-transformers) and on ONNX Runtime in fp32 and int8
(slow: real models)."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rag.encoders.hashing import HashEncoder

TEXTS = ["Prune roses in late winter.", "Snake plants need water once a month in winter.", "Basil dislikes the cold."]


@pytest.fixture(params=["hashing", *(pytest.param(b, marks=pytest.mark.slow) for b in ("torch", "onnx-fp32", "onnx-int8"))])
def encoder(request):
    if request.param == "hashing":
        return HashEncoder(dim=64)
    if request.param == "torch":
        return request.getfixturevalue("real_encoder")
    return request.getfixturevalue("onnx_encoders")[request.param.split("-")[1]]


def test_vectors_are_unit_length_float32_rows_of_dim(encoder):
    p = encoder.encode_passages(TEXTS)
    q = encoder.encode_queries(["when to prune roses"])
    assert p.shape == (3, encoder.dim) and q.shape == (1, encoder.dim) and p.dtype == np.float32
    assert np.allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-4)
    assert int(np.argmax(p @ q[0])) == 0  # the passage that shares the query's words ranks first


def test_encoding_is_deterministic_and_batch_independent(encoder):
    together = encoder.encode_passages(TEXTS, batch_size=8)
    one_by_one = np.vstack([encoder.encode_passages([t], batch_size=1) for t in TEXTS])
    assert np.allclose(together, one_by_one, atol=1e-5)


def test_token_spans_point_into_the_text(encoder):
    text = "Snake plants (Sansevieria) need water once a month."
    spans = encoder.token_spans(text)
    assert spans and all(0 <= a < b <= len(text) for a, b in spans)
    assert [a for a, _ in spans] == sorted(a for a, _ in spans)
    assert encoder.count_tokens(text) == len(spans) and encoder.max_length > encoder.num_special_tokens
    assert encoder.model_key and encoder.tokenizer_key


def test_queries_encode_alike_alone_and_concurrently_through_the_batcher(encoder):
    queries = [f"how often to water plant number {i}" for i in range(24)]
    alone = np.vstack([encoder.encode_queries([q]) for q in queries])
    encoder.batch_queries(8, 1.0)
    try:
        with ThreadPoolExecutor(8) as pool:
            together = np.vstack(list(pool.map(lambda q: encoder.encode_queries([q]), queries)))
        assert encoder.batcher is not None and encoder.batcher.queries >= len(queries)
    finally:
        batcher, encoder.batcher = encoder.batcher, None
        batcher.close()
    assert np.allclose(alone, together, atol=1e-5)
