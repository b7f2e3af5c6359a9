"""SHA-256 of files, read in blocks (corpora, index files, model weights), and of model folders."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def update_with_file(h: Any, path: Path, block: int = 1 << 20) -> None:
    """Feed ``path``'s bytes to the hash object ``h``."""
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            h.update(chunk)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    update_with_file(h, path)
    return h.hexdigest()


def fingerprint(folder: Path) -> str:
    """A short hash of the weight files, so a fine-tuned model saved over another gets new vectors."""
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.suffix in {".safetensors", ".bin", ".json", ".txt"}:
            h.update(f.relative_to(folder).as_posix().encode())
            h.update(str(f.stat().st_size).encode())
            if f.suffix in {".json", ".txt"} or f.stat().st_size < 1 << 30:
                update_with_file(h, f, 1 << 22)
    return h.hexdigest()[:12]
