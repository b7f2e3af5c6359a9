"""Readers for the corpus formats the job accepts.

Each reader yields :class:`SourceDocument` for good records and :class:`Rejection` (file, line,
reason) for bad ones, so the job can count and report them instead of dropping them silently.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from indexer.documents import MAGIC, UnreadableFile, read_file
from rag.errors import InputError
from rag.types import Rejection, SourceDocument
from rag.validation import clean_text, source_document

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".html", ".htm"}
#: read by content (indexer.documents sniffs the bytes; the extension only selects the file)
FILE_SUFFIXES = {".pdf", ".docx"}
Record = SourceDocument | Rejection
# What a format reader yields: where the record came from, and the document or why it was refused.
Located = tuple[str, int | None, SourceDocument | str]


class Source:
    """A corpus on disk. ``key`` names it in the store (``--sync`` deletes only within one key)."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.kind = kind
        self.key = str(path.resolve())

    def __iter__(self) -> Iterator[Record]:
        seen: dict[str, str] = {}
        readers: dict[str, Callable[[Path], Iterator[Located]]] = {
            "beir": _read_beir, "jsonl": _read_jsonl, "folder": _read_folder, "file": _read_single}
        reader = readers[self.kind]
        for file, line, rec in reader(self.path):
            if isinstance(rec, str):
                yield Rejection(file, line, rec)
                continue
            if rec.id in seen:
                yield Rejection(file, line, f"duplicate id {rec.id!r} (first seen at {seen[rec.id]})")
                continue
            seen[rec.id] = file if line is None else f"{file}:{line}"
            yield rec


class RecordsSource:
    """Documents given in memory (the API's batch upsert), under the source key ``key``."""

    def __init__(self, key: str, docs: list[SourceDocument]) -> None:
        self.key = key
        self.docs = docs

    def __iter__(self) -> Iterator[Record]:
        return iter(self.docs)


def open_source(path: str | Path) -> Source:
    """Detect the format: a BEIR folder (corpus.jsonl), a JSONL file, or a folder of text, PDF and Word files."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"source {str(p)!r} does not exist")
    if p.is_dir() and (p / "corpus.jsonl").is_file():
        return Source(p, "beir")
    if p.is_file():
        if p.suffix.lower() in {".jsonl", ".json", ".ndjson"}:
            return Source(p, "jsonl")
        if p.suffix.lower() in TEXT_SUFFIXES | FILE_SUFFIXES:
            return Source(p, "file")
        raise InputError(f"source {str(p)!r}: expected a .jsonl file, a BEIR folder, or a .txt/.md/.html/.pdf/.docx file "
                         "or a folder of them")
    if p.is_dir():
        return Source(p, "folder")
    raise InputError(f"source {str(p)!r} is neither a file nor a folder")


def _read_beir(folder: Path) -> Iterator[Located]:
    yield from _read_jsonl(folder / "corpus.jsonl", id_key="_id")


def _read_jsonl(path: Path, id_key: str = "id") -> Iterator[Located]:
    name = str(path)
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield name, lineno, f"not UTF-8 (byte {exc.start})"
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield name, lineno, f"malformed JSON: {exc.msg} at column {exc.colno}"
                continue
            if not isinstance(obj, dict):
                yield name, lineno, "expected a JSON object"
                continue
            yield name, lineno, _record(obj, id_key)


def _record(obj: dict[str, Any], id_key: str) -> SourceDocument | str:
    text = obj.get("text")
    title = obj.get("title") or ""
    meta = obj.get("metadata") or {}
    if not isinstance(text, str) or not text.strip():
        return "empty or missing 'text'"
    doc_id = obj.get(id_key, obj.get("id"))
    if doc_id is None or doc_id == "":
        # Derived id: stable for identical content. Give ids to make edits update in place.
        doc_id = "sha1-" + hashlib.sha1(f"{title}\n{text}".encode("utf-8", "surrogatepass")).hexdigest()[:16]
    elif isinstance(doc_id, (int, float)) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)  # BEIR corpora often have numeric ids
    return source_document(doc_id, title, text, meta)


def _read_folder(folder: Path) -> Iterator[Located]:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        suffix = path.suffix.lower()
        if suffix not in TEXT_SUFFIXES | FILE_SUFFIXES or any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        yield _read_one(path, path.relative_to(folder).as_posix())


def _read_single(path: Path) -> Iterator[Located]:
    yield _read_one(path, path.name)


def _read_one(path: Path, doc_id: str) -> Located:
    """One file of a folder (or given alone) as a document with id ``doc_id``, or why not."""
    suffix = path.suffix.lower()
    if suffix in FILE_SUFFIXES:
        return str(path), None, read_document_file(path, doc_id)
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return str(path), _line_of(path.read_bytes(), exc.start), f"not UTF-8 (byte {exc.start})"
    return str(path), None, _text_document(raw, suffix, path.stem, doc_id)


def _text_document(raw: str, suffix: str, stem: str, doc_id: str) -> SourceDocument | str:
    """A text, Markdown or HTML file's content as a document (Markdown and HTML cut at their headings)."""
    title, text = _parse_text_file(suffix, raw, stem)
    if not text.strip():
        return "empty text"
    doc = source_document(doc_id, title, text, {"path": doc_id})
    if isinstance(doc, str) or suffix not in {".md", ".markdown", ".html", ".htm"}:
        return doc
    return replace(doc, sections=markdown_sections(doc.text))


def read_document_file(path: Path, doc_id: str) -> SourceDocument | str:
    """A PDF or Word file as one document whose sections are its pages or headed sections, or why not."""
    try:
        parsed = read_file(path)
    except UnreadableFile as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    parts: list[str] = []
    sections: list[tuple[int, int, dict[str, Any]]] = []
    at = 0
    for s in parsed.sections:
        text = clean_text(s.text)
        if not text:
            continue
        if parts:
            at += 2  # the blank line between sections
        parts.append(text)
        sections.append((at, at + len(text), s.location))
        at += len(text)
    doc = source_document(doc_id, parsed.title, "\n\n".join(parts), {"path": doc_id})
    return doc if isinstance(doc, str) else replace(doc, sections=sections)


def read_upload(name: str, data: bytes) -> SourceDocument | str:
    """An uploaded file (its bytes and the name the client gave) as a document with id ``name``, or
    why not. PDF and Word files are recognised by their bytes; text, Markdown and HTML by the name."""
    suffix = Path(name).suffix.lower()
    if not data:
        return "empty file"
    if data.startswith(MAGIC):  # a PDF or a zip: indexer.documents tells which, and reads it
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "upload"
            path.write_bytes(data)
            return read_document_file(path, name)
    if suffix not in TEXT_SUFFIXES:
        return "not a PDF, Word (.docx), text, Markdown or HTML file"
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8 (byte {exc.start})"
    return _text_document(raw, suffix, Path(name).stem, name)


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)


def markdown_sections(text: str) -> list[tuple[int, int, dict[str, Any]]]:
    """Sections of a Markdown text at its headings, each with its heading path; [] without headings."""
    heads = list(_MD_HEADING.finditer(text))
    if not heads:
        return []
    out: list[tuple[int, int, dict[str, Any]]] = []
    if text[: heads[0].start()].strip():
        out.append((0, heads[0].start(), {}))
    path: list[tuple[int, str]] = []
    for i, m in enumerate(heads):
        level = len(m.group(1))
        path = [p for p in path if p[0] < level] + [(level, m.group(2))]
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        if text[m.end() : end].strip():
            out.append((m.start(), end, {"heading": " > ".join(t for _, t in path)}))
    return out


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _parse_text_file(suffix: str, raw: str, stem: str) -> tuple[str, str]:
    if suffix in {".html", ".htm"}:
        parser = _HTMLText()
        parser.feed(raw)
        parser.close()
        # headings became Markdown heading lines between blank lines: each block squashed on its own
        blocks = (_squash(b) for b in " ".join(parser.parts).split(_BLOCK))
        return (parser.title.strip() or stem), "\n\n".join(b for b in blocks if b)
    if suffix in {".md", ".markdown"}:
        m = re.search(r"^#\s+(.+)$", raw, flags=re.MULTILINE)
        if m:
            return m.group(1).strip(), (raw[: m.start()] + raw[m.end() :]).strip()
    return stem, raw.strip()


_BLOCK = "\x00"  # where the HTML parser ends a block (before and after a heading)


def _squash(s: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(s)).strip()


class _HTMLText(HTMLParser):
    """Visible text of an HTML page; <title> kept apart; script/style dropped."""

    SKIP = {"script", "style", "noscript", "template"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        self._stack.append(tag)
        if re.fullmatch(r"h[1-6]", tag) and not self._skipping():  # a heading: "## text" on its own block
            self.parts.append(f"{_BLOCK}{'#' * int(tag[1])} ")

    def handle_endtag(self, tag):
        if re.fullmatch(r"h[1-6]", tag) and tag in self._stack and not self._skipping():
            self.parts.append(_BLOCK)
        while self._stack:
            if self._stack.pop() == tag:
                break

    def _skipping(self) -> bool:
        return any(t in self.SKIP for t in self._stack)

    def handle_data(self, data):
        if self._skipping():
            return
        if self._stack and self._stack[-1] == "title":
            self.title += data
        else:
            self.parts.append(data)
