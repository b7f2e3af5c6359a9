"""The encoder contract (rag.encoders.base.Encoder), run by every backend: the hashing fake and the
packaged all-MiniLM-L6-v2 through sentence-transformers (slow)."""

import numpy as np
import pytest

from rag.encoders.hashing import HashEncoder

TEXTS = ["Prune roses in late winter.", "Snake plants need water once a month in winter.", "Basil dislikes the cold."]


@pytest.fixture(params=["hashing", pytest.param("sentence-transformers", marks=pytest.mark.slow)])
def encoder(request):
    if request.param == "hashing":
        return HashEncoder(dim=64)
    return request.getfixturevalue("real_encoder")


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
