"""PDF and Word files as text in sections, each with where it is: a PDF's page, a DOCX's heading path.

PDF (pypdf, BSD licence): the text of each page, lines joined into paragraphs, words hyphenated at a
line end joined again, lines that repeat at the top or bottom of most pages (running headers and
footers) and bare page numbers dropped; the title from the file's metadata, else its first line. A
PDF with no text layer (scanned), an encrypted one or a damaged one is refused with that reason.

DOCX (python-docx, MIT): paragraphs and tables (a row a line, cells joined by " | ") in document
order; headings ("Heading N", "Title") open sections, and each section keeps its heading path.
"""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: below this many characters of text a page on average, a PDF is taken for a scan without text
MIN_CHARS_PER_PAGE = 20
#: how a PDF and a zip container (a .docx is one) begin
MAGIC = (b"%PDF-", b"PK\x03\x04")
_PAGE_NUMBER = re.compile(r"^\s*(?:page\s+)?\d{1,4}(?:\s*(?:/|of)\s*\d{1,4})?\s*$", re.I)


class UnreadableFile(Exception):
    """A file that cannot be turned into text; the message says why (it becomes a rejection)."""


@dataclass(frozen=True)
class Section:
    text: str
    location: dict[str, Any] = field(default_factory=dict)  # {"page": 3} or {"heading": "Setup > Install"}


@dataclass(frozen=True)
class ParsedFile:
    title: str
    sections: list[Section]


def sniff(path: Path) -> str | None:
    """"pdf" or "docx" by the file's first bytes (the extension is not trusted), else None."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(MAGIC[0]):
        return "pdf"
    if head.startswith(MAGIC[1]):
        try:
            with zipfile.ZipFile(path) as z:
                if "word/document.xml" in z.namelist():
                    return "docx"
        except zipfile.BadZipFile:
            return None
    return None


def read_file(path: Path) -> ParsedFile:
    kind = sniff(path)
    if kind is None:
        raise UnreadableFile("neither a PDF nor a Word (.docx) file by its content" if path.stat().st_size else "empty file")
    return read_pdf(path) if kind == "pdf" else read_docx(path)


# -- PDF -------------------------------------------------------------------------------------------


def read_pdf(path: Path) -> ParsedFile:
    from pypdf import PdfReader

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableFile("encrypted PDF (a password is needed to read it)")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except UnreadableFile:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds on malformed files; none may escape as a traceback
        if "crypt" in str(exc).lower():
            raise UnreadableFile("encrypted PDF (a password is needed to read it)") from None
        raise UnreadableFile(f"damaged or unsupported PDF ({type(exc).__name__}: {exc})") from None
    if not pages:
        raise UnreadableFile("PDF without pages")
    if sum(len(p.strip()) for p in pages) < MIN_CHARS_PER_PAGE * len(pages):
        raise UnreadableFile("no text layer (a scanned PDF?): run OCR on it first")
    lines = [_lines(p) for p in pages]
    repeated = _running_lines(lines)
    sections, first_line = [], ""
    for number, page_lines in enumerate(lines, start=1):
        kept = [ln for i, ln in enumerate(page_lines) if not _is_furniture(ln, i, len(page_lines), repeated)]
        first_line = first_line or next((ln for ln in kept if ln), "")
        text = _paragraphs(kept)
        if text:
            sections.append(Section(text, {"page": number}))
    title = meta_title.strip() or first_line[:120] or path.stem
    return ParsedFile(title, sections)


def _lines(page: str) -> list[str]:
    return [ln.strip() for ln in page.replace("\r", "\n").split("\n")]


def _key(line: str) -> str:
    """A line with its digits masked: "Report 2024 — page 3" and "... page 4" are the same footer."""
    return re.sub(r"\d+", "#", line.strip().lower())


def _running_lines(pages: list[list[str]], edge: int = 2) -> set[str]:
    """Lines among the first or last ``edge`` non-empty lines of at least half the pages (3 or more)."""
    if len(pages) < 3:
        return set()
    counts: Counter[str] = Counter()
    for lines in pages:
        body = [ln for ln in lines if ln]
        counts.update({_key(ln) for ln in body[:edge] + body[-edge:]})
    return {k for k, n in counts.items() if n >= max(3, len(pages) // 2)}


def _is_furniture(line: str, i: int, n: int, repeated: set[str]) -> bool:
    return bool(line) and (_key(line) in repeated or ((i < 3 or i >= n - 3) and _PAGE_NUMBER.match(line) is not None))


def _paragraphs(lines: list[str]) -> str:
    """Lines joined into paragraphs (a blank line ends one); "inter-\\nnational" becomes "international"."""
    paras, cur = [], ""
    for ln in lines:
        if not ln:
            if cur:
                paras.append(cur)
            cur = ""
        elif cur.endswith("-") and len(cur) > 1 and cur[-2].isalpha() and ln[:1].islower():
            cur = cur[:-1] + ln
        else:
            cur = f"{cur} {ln}" if cur else ln
    if cur:
        paras.append(cur)
    return "\n\n".join(paras)


# -- DOCX ------------------------------------------------------------------------------------------


def read_docx(path: Path) -> ParsedFile:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        d = docx.Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise UnreadableFile(f"damaged or unsupported Word file ({type(exc).__name__}: {exc})") from None
    headings: list[str] = []
    title = (d.core_properties.title or "").strip()
    sections: list[Section] = []
    current: list[str] = []

    def close() -> None:
        if current:
            sections.append(Section("\n\n".join(current), {"heading": " > ".join(headings)} if headings else {}))
            current.clear()

    for block in _blocks(d):
        if isinstance(block, str):  # a table, as text rows
            current.append(block)
            continue
        text = block.text.strip()
        if not text:
            continue
        style = (block.style.name if block.style is not None else "") or ""
        level = 0 if style == "Title" else int(m.group(1)) if (m := re.match(r"Heading (\d)", style)) else None
        if level is None:
            current.append(text)
            continue
        close()
        if level == 0:
            title = title or text
            headings = []
        else:
            headings = headings[: level - 1] + [text]
            title = title or text
    close()
    if not any(s.text.strip() for s in sections):
        raise UnreadableFile("no text in the Word file")
    return ParsedFile(title or path.stem, sections)


def _blocks(d: Any):
    """Paragraphs and tables in document order (tables as " | "-joined rows)."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for child in d.element.body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            yield Paragraph(child, d)
        elif tag == "tbl":
            rows = [" | ".join(t for cell in row.cells if (t := _cell_text(cell))) for row in Table(child, d).rows]
            text = "\n".join(r for r in rows if r)
            if text:
                yield text


def _cell_text(cell: Any) -> str:
    """A cell's paragraphs, those of tables nested in it included, on one line."""
    paras = ("".join(t.text or "" for t in p.iter(_W + "t")) for p in cell._tc.iter(_W + "p"))
    return " ".join(p.strip() for p in paras if p.strip())


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
