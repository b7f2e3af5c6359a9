"""PDF and Word files: text by page or headed section, cleaned, located, refused with a reason when
they cannot be read; and through the whole pipeline, a hit and a citation that name the page."""

import shutil
from pathlib import Path

import pytest

from indexer.documents import UnreadableFile, read_file
from indexer.sources import open_source
from rag.encoders.hashing import HashEncoder
from rag.reader import IndexReader
from rag.search import Searcher
from rag.types import Rejection
from tests.conftest import make_job

REAL = Path(__file__).parent / "fixtures" / "documents"


def pdf(path: Path, pages: list[str], header: str | None = None, footer: bool = False, **meta) -> Path:
    """A text PDF, one string a page (newlines are line breaks), with a running header and page footer."""
    from fpdf import FPDF

    doc = FPDF()
    doc.set_auto_page_break(False)  # the footer sits in the bottom margin
    doc.set_font("helvetica", size=11)
    for k, v in meta.items():
        getattr(doc, f"set_{k}")(v)
    for i, text in enumerate(pages, start=1):
        doc.add_page()
        if header:
            doc.cell(0, 8, header, new_x="LMARGIN", new_y="NEXT")
        for line in text.split("\n"):
            doc.cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
        if footer:
            doc.set_y(-20)
            doc.cell(0, 6, f"Page {i} of {len(pages)}")
    doc.output(str(path))
    return path


def test_real_pdfs_read_page_by_page():
    for name, pages in (("libtasn1.pdf", 36), ("shared-mime-info-spec.pdf", 17)):
        f = read_file(REAL / name)
        assert [s.location["page"] for s in f.sections] == list(range(1, pages + 1))
        assert f.title and sum(len(s.text) for s in f.sections) > 20_000
    text = " ".join(s.text for s in read_file(REAL / "libtasn1.pdf").sections)
    assert "Abstract Syntax Notation One" in text and "GNU Free Documentation License" in text


def test_real_word_files_keep_paragraphs_nested_tables_and_headings():
    f = read_file(REAL / "blk-paras-and-tables.docx")
    text = f.sections[0].text
    assert text.split("\n\n") == ["Lorem ipsum dolor sit amet, consectetur adipiscing elit.", "Text before Table Between Text after",
                                    "Donec semper facilisis metus finibus malesuada."]  # a table nested in a table, in order
    f = read_file(REAL / "par-known-paragraphs.docx")
    assert f.title == "Heading Paragraph" and [(s.location, s.text) for s in f.sections] == [({"heading": "Heading Paragraph"}, "Normal paragraph")]
    assert read_file(REAL / "sct-inner-content.docx").sections[0].text.split("\n\n") == ["P1", "T2", "P3", "T4", "P5", "P6", "P7", "P8", "P9"]


def test_hyphenation_headers_footers_and_title(tmp_path):
    body = "The committee reviewed the inter-\nnational standard for\nmeasurement.\n\nA second paragraph follows here."
    f = read_file(pdf(tmp_path / "r.pdf", [body, "Page two text about calibration.", "Third page, on tolerances."],
                      header="ACME Quarterly Report", footer=True, title="Measurement Report"))
    assert f.title == "Measurement Report"
    first = f.sections[0].text
    assert "international standard for measurement." in first and "inter-" not in first
    joined = " ".join(s.text for s in f.sections)
    assert "ACME Quarterly Report" not in joined and "Page 1 of 3" not in joined and "Page 3" not in joined
    assert [s.location for s in f.sections] == [{"page": 1}, {"page": 2}, {"page": 3}]


def test_two_columns_and_a_table_keep_their_words(tmp_path):
    from fpdf import FPDF

    doc = FPDF()
    doc.add_page()
    doc.set_font("helvetica", size=10)
    with doc.text_columns(ncols=2) as cols:
        cols.write("Left column: rhizomes store water for weeks. " * 8)
        cols.new_column()
        cols.write("Right column: roots rot when soil stays wet. " * 8)
    doc.ln(60)
    with doc.table() as table:
        for row in (("Plant", "Water"), ("Snake plant", "monthly"), ("Basil", "daily")):
            r = table.row()
            for cell in row:
                r.cell(cell)
    doc.output(str(tmp_path / "cols.pdf"))
    text = read_file(tmp_path / "cols.pdf").sections[0].text
    assert "rhizomes store water" in text and "roots rot when soil stays wet" in text
    assert text.index("Left column") < text.index("Right column")  # reading order: left column first
    assert "Snake plant" in text and "monthly" in text


@pytest.mark.parametrize("make, reason", [
    ("scanned", "no text layer"),
    ("encrypted", "encrypted"),
    ("empty", "empty file"),
    ("text_named_pdf", "neither a PDF nor a Word"),
    ("truncated", "damaged"),
    ("zip_named_docx", "neither a PDF nor a Word"),
])
def test_unreadable_files_are_refused_with_the_reason(tmp_path, make, reason):
    from fpdf import FPDF

    path = tmp_path / ("f.docx" if "docx" in make else "f.pdf")
    if make == "scanned":  # pages that are only an image
        from PIL import Image

        Image.new("RGB", (200, 100), "white").save(tmp_path / "scan.png")
        doc = FPDF()
        doc.add_page()
        doc.image(str(tmp_path / "scan.png"), x=10, y=10, w=180)
        doc.output(str(path))
    elif make == "encrypted":
        doc = FPDF()
        doc.set_encryption(owner_password="owner", user_password="secret")
        doc.add_page()
        doc.set_font("helvetica", size=11)
        doc.cell(0, 6, "Confidential text.")
        doc.output(str(path))
    elif make == "empty":
        path.write_bytes(b"")
    elif make == "text_named_pdf":
        path.write_text("just text, with a .pdf name")
    elif make == "truncated":
        pdf(path, ["Some text."])
        path.write_bytes(path.read_bytes()[:300])
    else:
        import zipfile

        with zipfile.ZipFile(path, "w") as z:
            z.writestr("readme.txt", "not a Word file")
    with pytest.raises(UnreadableFile, match=reason):
        read_file(path)


def test_a_pdf_named_docx_is_read_as_a_pdf(tmp_path):
    path = pdf(tmp_path / "report.pdf", ["Content decides, not the name."])
    path.rename(tmp_path / "report.docx")
    assert "Content decides" in read_file(tmp_path / "report.docx").sections[0].text


def docx_file(path: Path) -> Path:
    import docx

    d = docx.Document()
    d.add_heading("Garden Handbook", level=0)
    d.add_paragraph("An introduction before any section.")
    d.add_heading("Watering", level=1)
    d.add_paragraph("Water snake plants once a month in winter.")
    d.add_heading("Succulents", level=2)
    d.add_paragraph("Let the soil dry out completely.")
    t = d.add_table(rows=2, cols=2)
    for i, (a, b) in enumerate((("Plant", "Interval"), ("Aloe", "three weeks"))):
        t.cell(i, 0).text, t.cell(i, 1).text = a, b
    d.add_heading("Pruning", level=1)
    d.add_paragraph("Prune roses in late winter.")
    d.save(str(path))
    return path


def test_docx_sections_keep_their_heading_path_and_tables(tmp_path):
    f = read_file(docx_file(tmp_path / "h.docx"))
    assert f.title == "Garden Handbook"
    by_heading = {s.location.get("heading", ""): s.text for s in f.sections}
    assert by_heading[""] == "An introduction before any section."
    assert "once a month" in by_heading["Watering"]
    assert "Let the soil dry out" in by_heading["Watering > Succulents"] and "Aloe | three weeks" in by_heading["Watering > Succulents"]
    assert by_heading["Pruning"] == "Prune roses in late winter."


def test_a_folder_of_pdf_and_word_files_is_searched_and_cited_by_page(tmp_path):
    src = tmp_path / "docs"
    src.mkdir()
    shutil.copy(REAL / "shared-mime-info-spec.pdf", src)
    docx_file(src / "handbook.docx")
    pdf(src / "report.pdf", ["Intro page about nothing in particular.", "Calibration of the zamioculcas sensor happens yearly."])
    (src / "broken.pdf").write_bytes(b"")
    records = list(open_source(src))
    assert [str(r).rsplit("/", 1)[-1] for r in records if isinstance(r, Rejection)] == ["broken.pdf: empty file"]
    enc = HashEncoder(dim=256)
    idx = tmp_path / "idx"
    summary = make_job(idx, enc, chunk={"size": 120, "overlap": 16}).run(open_source(src))
    assert summary.published and summary.rejected == 1
    s = Searcher(IndexReader(idx), enc)
    hit = s.search("zamioculcas sensor calibration", k=3, mode="bm25").hits[0]
    assert hit.passage.document_id == "report.pdf" and hit.passage.location == {"page": 2}
    hit = s.search("prune roses late winter", k=3, mode="bm25").hits[0]
    assert hit.passage.document_id == "handbook.docx" and hit.passage.location == {"heading": "Pruning"}
    spec = [p for p in s.reader.passages.get(list(s.reader.passages.ids)).values() if p.document_id == "shared-mime-info-spec.pdf"]
    assert len(spec) > 17 and {p.location["page"] for p in spec} == set(range(1, 18))  # no passage crosses a page
    # a re-run with nothing changed skips every file
    again = make_job(idx, enc, chunk={"size": 120, "overlap": 16}).run(open_source(src))
    assert again.skipped == 3 and again.added == again.updated == 0


def test_upload_files_indexes_the_readable_ones_and_says_why_not_for_the_rest(tmp_path):
    import time

    from fastapi.testclient import TestClient

    from rag.settings import Settings
    from service import create_app
    from tests.conftest import SAMPLE

    enc = HashEncoder(dim=256)
    d = tmp_path / "idx"
    make_job(d, enc).run(open_source(SAMPLE))
    app = create_app(Settings(index_dir=d, auth={"enabled": False}, limits={"max_upload_bytes": 2_000_000, "max_upload_files": 6}),
                     searcher_factory=lambda: Searcher(IndexReader(d), enc), encoder_factory=lambda: enc)
    report = pdf(tmp_path / "r.pdf", ["Cover page.", "The quokka census counted 412 animals on the island."])
    files = [
        ("files", ("report.pdf", report.read_bytes(), "application/octet-stream")),
        ("files", ("handbook.docx", docx_file(tmp_path / "h.docx").read_bytes(), "text/plain")),  # declared type ignored
        ("files", ("notes.md", b"# Notes\nWombats dig burrows at night.", "text/markdown")),
        ("files", ("photo.jpg", b"\xff\xd8\xff\xe0 not text", "image/jpeg")),
        ("files", ("empty.pdf", b"", "application/pdf")),
    ]
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/v1/documents/files", files=files)
        assert r.status_code == 202, r.text
        body = r.json()
        outcome = {f["name"]: f for f in body["files"]}
        assert [n for n, f in outcome.items() if f["accepted"]] == ["report.pdf", "handbook.docx", "notes.md"]
        assert outcome["report.pdf"]["sections"] == 2 and "not a PDF, Word" in outcome["photo.jpg"]["reason"]
        assert outcome["empty.pdf"]["reason"] == "empty file"
        for _ in range(200):
            job = c.get(body["status_url"]).json()
            if job["status"] in ("done", "failed"):
                break
            time.sleep(0.05)
        assert job["status"] == "done" and job["progress"]["added"] == 3
        time.sleep(1.1)  # the searcher looks for a new generation once a second
        hit = c.post("/v1/search", json={"query": "quokka census island", "mode": "bm25", "top_k": 1}).json()["hits"][0]
        assert hit["document_id"] == "report.pdf" and hit["location"] == {"page": 2}
        # the same files again: nothing changes
        again = c.post("/v1/documents/files", files=files[:3]).json()
        for _ in range(200):
            job = c.get(again["status_url"]).json()
            if job["status"] in ("done", "failed"):
                break
            time.sleep(0.05)
        assert job["progress"]["skipped"] == 3 and job["progress"]["added"] == 0
        # nothing readable: 422 naming each file; too many files: 422; too large: 413
        r = c.post("/v1/documents/files", files=files[3:])
        assert r.status_code == 422 and "photo.jpg" in r.json()["error"]["message"] and "empty.pdf" in r.json()["error"]["message"]
        assert c.post("/v1/documents/files", files=[files[2]] * 7).status_code == 422
        big = [("files", ("big.txt", b"x" * 2_100_000, "text/plain"))]
        assert c.post("/v1/documents/files", files=big).status_code == 413


def test_rag_index_takes_a_single_pdf_and_refuses_an_unknown_file(tmp_path):
    (doc,) = list(open_source(REAL / "libtasn1.pdf"))
    assert doc.id == "libtasn1.pdf" and doc.title == "Libtasn1" and [loc for _, _, loc in doc.sections][-1] == {"page": 36}
    (tmp_path / "data.bin").write_bytes(b"\x00\x01")
    from rag.errors import InputError

    with pytest.raises(InputError, match="expected a .jsonl file"):
        open_source(tmp_path / "data.bin")


def test_a_long_manual_uploads_whole(tmp_path):
    """An uploaded file is bounded by its bytes, not by the JSON route's characters-per-document limit."""
    from fastapi.testclient import TestClient

    from rag.settings import Settings
    from service import create_app

    enc = HashEncoder(dim=64)
    app = create_app(Settings(index_dir=tmp_path, auth={"enabled": False}, limits={"max_document_chars": 1000}),
                     searcher_factory=lambda: None, encoder_factory=lambda: enc)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/v1/documents/files", files=[("files", ("manual.pdf", (REAL / "libtasn1.pdf").read_bytes(), "application/pdf"))])
    assert r.status_code == 202 and r.json()["files"][0]["characters"] > 70_000 and r.json()["files"][0]["sections"] == 36
