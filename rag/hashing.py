"""SHA-256 of files, read in blocks (corpora, index files, model weights)."""

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
