import json

import pytest

from rag.chunking import Chunker
from tests.conftest import SAMPLE_CORPUS

TEXT = " ".join(f"word{i}" for i in range(100))


def test_off_keeps_one_passage(hash_encoder):
    chunks = Chunker(hash_encoder, 10, 2, enabled=False).chunk("Title", TEXT)
    assert len(chunks) == 1 and chunks[0].text == TEXT and chunks[0].token_count == 100


def test_windows_respect_size_and_overlap(hash_encoder):
    chunks = Chunker(hash_encoder, 20, 5).chunk("Title", TEXT)
    assert all(c.token_count <= 20 for c in chunks)
    words = [c.text.split() for c in chunks]
    for a, b in zip(words, words[1:], strict=False):
        assert a[-5:] == b[:5]  # consecutive passages share the overlap
    covered = {w for ws in words for w in ws}
    assert covered == set(TEXT.split())  # nothing lost
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_cuts_at_word_boundaries(hash_encoder):
    text = "alpha-beta gamma.delta " * 30  # tokens inside words: '-', '.'
    for c in Chunker(hash_encoder, 7, 2).chunk("", text):
        assert not c.text[0].isspace() and text.count(c.text) >= 1
        assert c.text.split()[0] in {"alpha-beta", "gamma.delta"}


def test_title_and_specials_fit_the_encoder(hash_encoder):
    title = "a long title " * 5
    chunker = Chunker(hash_encoder, 200, 8)  # size larger than the encoder allows
    for c in chunker.chunk(title, TEXT):
        assert hash_encoder.count_tokens(f"{title}\n{c.text}") + hash_encoder.num_special_tokens <= hash_encoder.max_length


def test_fit_title_truncates_long_titles(hash_encoder):
    title = " ".join(["t"] * 100)
    fitted = Chunker(hash_encoder, 20, 2).fit_title(title)
    assert hash_encoder.count_tokens(fitted) == hash_encoder.max_length // 4


def test_signature_changes_with_settings(hash_encoder):
    sigs = {Chunker(hash_encoder, 20, 2).signature, Chunker(hash_encoder, 30, 2).signature,
            Chunker(hash_encoder, 20, 3).signature, Chunker(hash_encoder, 20, 2, enabled=False).signature}
    assert len(sigs) == 4


@pytest.mark.slow
def test_real_tokenizer_never_exceeds_max_length(real_encoder):
    chunker = Chunker(real_encoder, 48, 8)  # small windows: many cuts on the sample corpus
    n = 0
    for line in SAMPLE_CORPUS.read_text().splitlines():
        d = json.loads(line)
        title = chunker.fit_title(d["title"])
        for c in chunker.chunk(title, d["text"]):
            n += 1
            ids = real_encoder.tokenizer(f"{title}\n{c.text}")["input_ids"]
            assert len(ids) <= real_encoder.max_length
            assert c.token_count <= 48
    assert n > 113
