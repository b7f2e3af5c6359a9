"""Index generations on disk, and how one is published atomically.

    INDEX_DIR/
      rag.db                     the SQL store (default SQLite)
      CURRENT                    {"generation": NAME}: replaced in one rename to publish
      generations/NAME/          manifest.json, passages.sqlite, bm25/, dense/
      generations/.staging-NAME  a generation being built (removed if its job died)
      .lock                      held by the one indexing job allowed at a time

Readers resolve CURRENT once and keep that generation's files; a new generation becomes visible
only when CURRENT is replaced, after every file of it is written, checksummed and fsynced.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from rag.errors import IndexLockedError, IndexNotFoundError

log = logging.getLogger(__name__)
GENERATIONS = "generations"
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
STAGING_PREFIX = ".staging-"
_NAME = re.compile(r"^g(\d{6})-")


def current_generation(index_dir: Path) -> Path | None:
    try:
        name = json.loads((Path(index_dir) / CURRENT).read_text())["generation"]
    except FileNotFoundError:
        return None
    return Path(index_dir) / GENERATIONS / name


def require_current(index_dir: Path) -> Path:
    gen = current_generation(index_dir)
    if gen is None or not gen.is_dir():
        raise IndexNotFoundError(f"no published index in {str(index_dir)!r}: run `rag index SOURCE --index-dir {index_dir}`")
    return gen


def read_manifest(gen_dir: Path) -> dict[str, Any]:
    return json.loads((Path(gen_dir) / MANIFEST).read_text())


@contextmanager
def job_lock(index_dir: Path) -> Iterator[None]:
    """One indexing job per index directory; the kernel drops the lock if the job is killed."""
    Path(index_dir).mkdir(parents=True, exist_ok=True)
    fh = open(Path(index_dir) / ".lock", "w")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexLockedError(f"another indexing job is running on {str(index_dir)!r}") from None
        yield
    finally:
        fh.close()


def new_staging(index_dir: Path) -> tuple[str, Path]:
    """A fresh staging folder for the next generation; leftovers of killed jobs are removed."""
    root = Path(index_dir) / GENERATIONS
    root.mkdir(parents=True, exist_ok=True)
    numbers = [0]
    for p in root.iterdir():
        if p.name.startswith(STAGING_PREFIX):
            log.info("removing unfinished generation %s", p.name)
            shutil.rmtree(p, ignore_errors=True)
        elif m := _NAME.match(p.name):
            numbers.append(int(m.group(1)))
    name = f"g{max(numbers) + 1:06d}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
    staging = root / f"{STAGING_PREFIX}{name}"
    staging.mkdir()
    return name, staging


def checksums(folder: Path) -> dict[str, str]:
    out = {}
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h = hashlib.sha256()
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        out[f.relative_to(folder).as_posix()] = h.hexdigest()
    return out


def verify(gen_dir: Path) -> list[str]:
    """Files whose checksum differs from the manifest's (empty when the generation is intact)."""
    expected = read_manifest(gen_dir)["files"]
    actual = checksums(gen_dir)
    actual.pop(MANIFEST, None)
    return sorted(k for k in expected.keys() | actual.keys() if expected.get(k) != actual.get(k))


def publish(index_dir: Path, name: str, staging: Path, manifest: dict[str, Any]) -> Path:
    """Seal the staging folder with its manifest and switch CURRENT to it in one rename."""
    manifest = {**manifest, "generation": name, "files": checksums(staging)}
    _write_synced(staging / MANIFEST, json.dumps(manifest, indent=2))
    for f in staging.rglob("*"):
        if f.is_file():
            _fsync(f)
    final = Path(index_dir) / GENERATIONS / name
    os.rename(staging, final)
    _fsync(final.parent)
    tmp = Path(index_dir) / f".{CURRENT}.tmp"
    _write_synced(tmp, json.dumps({"generation": name}))
    os.replace(tmp, Path(index_dir) / CURRENT)
    _fsync(Path(index_dir))
    return final


def collect_garbage(index_dir: Path, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` generations (never the current one)."""
    root = Path(index_dir) / GENERATIONS
    current = current_generation(index_dir)
    gens = sorted((p for p in root.iterdir() if _NAME.match(p.name)), key=lambda p: p.name, reverse=True)
    removed = []
    for p in gens[keep:]:
        if current is not None and p.name == current.name:
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p.name)
    return removed


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

