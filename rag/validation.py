"""What may be stored: the rules every entrance (API, CLI sources, feedback, filters) applies.

One set of rules, so an id, a text or a metadata value that one entrance accepts is safe in every
format the index writes (SQL on SQLite and PostgreSQL, the passage table, Lucene, rank-bm25, faiss
row order, JSON responses):

- **ids**: 1-512 characters of valid Unicode (no lone surrogates) without control characters
  (newline, tab, NUL, DEL and the C1 range). Any other character, ``/`` and ``#`` included, is fine.
- **text and title**: control characters other than newline, tab and carriage return are removed
  (PostgreSQL cannot store NUL); a text with nothing left is refused.
- **metadata**: a JSON object of finite numbers (integers within 64 bits), booleans, null, strings
  and nested lists/objects, at most 16 levels deep and 64 KB as JSON; strings valid Unicode, no NUL.
- **filters**: at most 32 keys of 1-200 characters; values a string (up to 1,000 characters), a
  boolean, a 64-bit integer or a finite number.

Functions return the reason a value is refused (``None`` when it is fine), so each entrance reports it
its own way: a 422 naming the field, a rejected record with file and line, an ``InputError``.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from rag.types import SourceDocument

MAX_ID_CHARS = 512
MAX_METADATA_BYTES = 65_536
MAX_METADATA_DEPTH = 16
MAX_FILTER_KEYS = 32
MAX_FILTER_KEY_CHARS = 200
MAX_FILTER_VALUE_CHARS = 1000
INT64 = 2**63
_STRIP_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def unicode_problem(s: str) -> str | None:
    """Why ``s`` cannot be stored as UTF-8 (a lone surrogate), or None."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains a lone surrogate (U+{ord(s[exc.start]):04X}), which is not valid Unicode"
    return None


def id_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable document id, or None."""
    if not isinstance(value, str):
        return "must be a string"
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_CHARS:
        return f"is {len(value)} characters long; at most {MAX_ID_CHARS} are allowed"
    if problem := unicode_problem(value):
        return problem
    for i, ch in enumerate(value):
        if unicodedata.category(ch) == "Cc":
            return f"contains a control character (U+{ord(ch):04X} at position {i}); ids may not"
    return None


def clean_text(s: str) -> str:
    """``s`` without control characters other than newline, tab and carriage return, stripped."""
    return _STRIP_CONTROL.sub("", s).strip()


def text_problem(value: Any, what: str = "text") -> str | None:
    """Why a text (after :func:`clean_text`) cannot be indexed, or None."""
    if not isinstance(value, str):
        return f"{what} must be a string"
    if problem := unicode_problem(value):
        return f"{what} {problem}"
    return None


def metadata_problem(meta: Any) -> str | None:
    """Why ``meta`` is not storable metadata, or None."""
    if not isinstance(meta, Mapping):
        return "must be a JSON object"
    problem = _json_problem(meta, "metadata", 0)
    if problem:
        return problem
    size = len(json.dumps(meta, ensure_ascii=False).encode())
    if size > MAX_METADATA_BYTES:
        return f"is {size} bytes as JSON; at most {MAX_METADATA_BYTES} are allowed"
    return None


def _json_problem(v: Any, path: str, depth: int) -> str | None:
    if depth > MAX_METADATA_DEPTH:
        return f"{path}: nested deeper than {MAX_METADATA_DEPTH} levels"
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, int):
        return None if -INT64 <= v < INT64 else f"{path}: integer outside the 64-bit range"
    if isinstance(v, float):
        return None if math.isfinite(v) else f"{path}: {v} is not a finite number (NaN and Infinity are not JSON)"
    if isinstance(v, str):
        if problem := unicode_problem(v):
            return f"{path}: {problem}"
        return f"{path}: contains a NUL character" if "\x00" in v else None
    if isinstance(v, (list, tuple)):
        for i, item in enumerate(v):
            if problem := _json_problem(item, f"{path}[{i}]", depth + 1):
                return problem
        return None
    if isinstance(v, Mapping):
        for k, item in v.items():
            if not isinstance(k, str):
                return f"{path}: keys must be strings"
            if problem := unicode_problem(k) or ("contains a NUL character" if "\x00" in k else None):
                return f"{path}: key {k!r} {problem}"
            if problem := _json_problem(item, f"{path}.{k}", depth + 1):
                return problem
        return None
    return f"{path}: {type(v).__name__} is not a JSON value"


def filters_problem(filters: Mapping[str, Any]) -> str | None:
    """Why ``filters`` cannot be applied, or None."""
    if len(filters) > MAX_FILTER_KEYS:
        return f"{len(filters)} keys; at most {MAX_FILTER_KEYS} are allowed"
    for key, value in filters.items():
        if not isinstance(key, str) or not key or len(key) > MAX_FILTER_KEY_CHARS:
            return f"key {key!r}: must be 1-{MAX_FILTER_KEY_CHARS} characters"
        if problem := unicode_problem(key):
            return f"key {key!r}: {problem}"
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            if not -INT64 <= value < INT64:
                return f"{key!r}: integer outside the 64-bit range"
        elif isinstance(value, float):
            if not math.isfinite(value):
                return f"{key!r}: {value} is not a finite number"
        elif isinstance(value, str):
            if len(value) > MAX_FILTER_VALUE_CHARS:
                return f"{key!r}: value longer than {MAX_FILTER_VALUE_CHARS} characters"
            if problem := unicode_problem(value):
                return f"{key!r}: {problem}"
        else:
            return f"{key!r}: only equality on a string, number or boolean is supported"
    return None


def source_document(doc_id: Any, title: Any, text: Any, metadata: Any) -> SourceDocument | str:
    """The cleaned document, or the reason it is refused (what a source reader reports)."""
    if problem := id_problem(doc_id):
        return f"id {problem}"
    for what, value in (("title", title), ("text", text)):
        if problem := text_problem(value, what):
            return problem
    if problem := metadata_problem(metadata):
        return f"metadata {problem}"
    body = clean_text(text)
    if not body:
        return "empty text (nothing left after removing control characters)"
    return SourceDocument(id=doc_id, title=clean_text(title), text=body, metadata=dict(metadata))
