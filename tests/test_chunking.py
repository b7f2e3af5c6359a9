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


def test_windows_end_at_a_paragraph_and_sections_are_never_crossed():
    from rag.chunking import Chunker
    from rag.encoders.hashing import HashEncoder

    enc = HashEncoder(dim=32, max_length=64)
    para = lambda n, w: " ".join(f"{w}{i}" for i in range(n))  # noqa: E731
    text = para(14, "alpha") + "\n\n" + para(14, "beta") + "\n\n" + para(14, "gamma")
    chunks = Chunker(enc, size=24, overlap=4).chunk("", text)
    # 24-token windows: each paragraph (14 tokens) ends in a window's second half, so cuts fall between them
    assert [c.text.split()[0][:4] for c in chunks] == ["alph", "beta", "gamm"] and all("\n\n" not in c.text for c in chunks)
    sections = [(0, len(para(14, "alpha")), {"page": 1}), (len(para(14, "alpha")) + 2, len(text), {"page": 2})]
    located = Chunker(enc, size=24, overlap=4).chunk("", text, sections)
    assert [c.location for c in located] == [{"page": 1}, {"page": 2}, {"page": 2}]
    assert not any("alpha" in c.text and "beta" in c.text for c in located)
    off = Chunker(enc, size=24, overlap=4, enabled=False).chunk("", text, sections)
    assert len(off) == 1 and off[0].location == {"pages": [1, 2]}


def test_markdown_sections_follow_the_heading_path():
    from indexer.sources import markdown_sections

    text = "Intro text.\n\n## Watering\nOnce a month.\n\n### Succulents\nRarely.\n\n## Pruning\nLate winter."
    got = [(text[a:b].strip().split("\n")[0], loc) for a, b, loc in markdown_sections(text)]
    assert got == [("Intro text.", {}), ("## Watering", {"heading": "Watering"}),
                   ("### Succulents", {"heading": "Watering > Succulents"}), ("## Pruning", {"heading": "Pruning"})]
