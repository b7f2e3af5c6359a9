import pytest

from indexer.sources import open_source
from rag.errors import InputError
from rag.types import Rejection, SourceDocument
from tests.conftest import SAMPLE, write_jsonl


def split(source):
    recs = list(source)
    return [r for r in recs if isinstance(r, SourceDocument)], [r for r in recs if isinstance(r, Rejection)]


def test_missing_path_names_it(tmp_path):
    with pytest.raises(InputError, match="nope.jsonl"):
        open_source(tmp_path / "nope.jsonl")


def test_sample_corpus_reads_cleanly():
    docs, bad = split(open_source(SAMPLE))
    assert len(docs) >= 100 and not bad
    assert len({d.id for d in docs}) == len(docs)
    assert all(d.title and d.text and d.metadata["category"] for d in docs)


def test_beir_folder_uses_underscore_id(tmp_path):
    write_jsonl(tmp_path / "corpus.jsonl", [{"_id": "d1", "title": "T", "text": "body"}])
    src = open_source(tmp_path)
    assert src.kind == "beir"
    docs, _ = split(src)
    assert docs[0].id == "d1" and docs[0].title == "T"


def test_bad_jsonl_lines_are_rejected_with_file_and_line(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_bytes(
        b'{"id": "a", "text": "good one"}\n'
        b'{"id": "b", "text": \n'  # malformed
        b'{"id": "c", "text": "   "}\n'  # empty text
        b'{"id": "d", "text": "caf\xe9"}\n'  # latin-1, not UTF-8
        b'[1, 2]\n'
        b'{"id": "a", "text": "duplicate"}\n'
        b'{"text": "no id given"}\n'
    )
    docs, bad = split(open_source(p))
    assert [d.id for d in docs][0] == "a" and len(docs) == 2
    assert docs[1].id.startswith("sha1-")  # derived id
    reasons = {r.line: r.reason for r in bad}
    assert set(reasons) == {2, 3, 4, 5, 6}
    assert "malformed JSON" in reasons[2]
    assert "empty" in reasons[3]
    assert "UTF-8" in reasons[4]
    assert "duplicate id 'a'" in reasons[6] and "c.jsonl:1" in reasons[6]
    assert all(r.file == str(p) for r in bad)
    assert str(bad[0]).startswith(f"{p}:2:")


def test_folder_of_text_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("Plain text body.")
    (tmp_path / "sub" / "b.md").write_text("intro\n# Markdown Title\nMarkdown body.")
    (tmp_path / "c.html").write_text(
        "<html><head><title>Page &amp; Title</title><style>p{}</style></head>"
        "<body><script>var x=1;</script><p>Visible   text</p></body></html>"
    )
    (tmp_path / "d.txt").write_bytes(b"line one\nbad \xff byte\n")
    (tmp_path / "e.md").write_text("   \n")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.7\n%%EOF")  # read, and refused as damaged
    (tmp_path / "ignored.png").write_bytes(b"\x89PNG")
    docs, bad = split(open_source(tmp_path))
    by_id = {d.id: d for d in docs}
    assert set(by_id) == {"a.txt", "sub/b.md", "c.html"}
    assert by_id["a.txt"].title == "a"
    assert by_id["sub/b.md"].title == "Markdown Title" and "Markdown body." in by_id["sub/b.md"].text
    assert by_id["c.html"].title == "Page & Title" and by_id["c.html"].text == "Visible text"
    assert {(r.file.rsplit("/", 1)[-1], r.line) for r in bad} == {("d.txt", 2), ("e.md", None), ("broken.pdf", None)}
    assert "damaged" in next(r.reason for r in bad if r.file.endswith("broken.pdf"))


def test_html_headings_become_sections_with_their_path(tmp_path):
    (tmp_path / "care.html").write_text(
        "<html><head><title>Care</title></head><body><p>Intro  words.</p><h2>Watering</h2><p>Once a\n month.</p>"
        "<h3>Succulents</h3><p>Rarely.</p><script>x=1</script></body></html>")
    (doc,) = list(open_source(tmp_path))
    got = [(doc.text[a:b].strip().split("\n")[-1], loc) for a, b, loc in doc.sections]
    assert doc.title == "Care" and got == [("Intro words.", {}), ("Once a month.", {"heading": "Watering"}),
                                           ("Rarely.", {"heading": "Watering > Succulents"})]
