"""Index generations on disk, and how one is published atomically.

    INDEX_DIR/
      rag.db                     the SQL store (default SQLite)
      CURRENT                    {"generation": NAME}: replaced in one rename to publish
      PUBLISHED                  the names of published generations, oldest first (one JSON string a line)
      generations/NAME/          manifest.json, passages.sqlite, bm25/, dense/
      generations/.staging-NAME  a generation being built (removed if its job died)
      .lock                      held by the one indexing job allowed at a time

Readers resolve CURRENT once and keep that generation's files; a new generation becomes visible
only when CURRENT is replaced, after every file of it is written, checksummed and fsynced.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from rag import manifest as manifests
from rag.errors import IndexLockedError, IndexNotFoundError, IndexUnavailableError
from rag.hashing import file_sha256
from rag.manifest import Manifest

log = logging.getLogger(__name__)
GENERATIONS = "generations"
CURRENT = "CURRENT"
MANIFEST = manifests.FILE
STAGING_PREFIX = ".staging-"
_NAME = re.compile(r"^g(\d{6})-")


PUBLISHED = "PUBLISHED"


def current_generation(index_dir: Path) -> Path | None:
    """The folder CURRENT names (None when nothing is published); a CURRENT that cannot be read is
    an :class:`IndexUnavailableError`, never a guess."""
    try:
        name = json.loads((Path(index_dir) / CURRENT).read_text(encoding="utf-8"))["generation"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexUnavailableError(f"{Path(index_dir) / CURRENT} is unreadable ({exc}); re-run `rag index`") from exc
    if not isinstance(name, str) or not _NAME.match(name):
        raise IndexUnavailableError(f"{Path(index_dir) / CURRENT} names no generation ({name!r}); re-run `rag index`")
    return Path(index_dir) / GENERATIONS / name


def require_current(index_dir: Path) -> Path:
    gen = current_generation(index_dir)
    if gen is None or not gen.is_dir():
        raise IndexNotFoundError(f"no published index in {str(index_dir)!r}: run `rag index SOURCE --index-dir {index_dir}`")
    return gen


def read_manifest(gen_dir: Path) -> Manifest:
    return manifests.read(gen_dir)


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
        if m := _NAME.match(p.name.removeprefix(STAGING_PREFIX)):
            numbers.append(int(m.group(1)))
    name = f"g{max(numbers) + 1:06d}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
    staging = root / f"{STAGING_PREFIX}{name}"
    staging.mkdir()
    return name, staging


def checksums(folder: Path) -> dict[str, str]:
    return {f.relative_to(folder).as_posix(): file_sha256(f) for f in sorted(p for p in folder.rglob("*") if p.is_file())}


def verify(gen_dir: Path) -> list[str]:
    """Files whose checksum differs from the manifest's (empty when the generation is intact)."""
    expected = read_manifest(gen_dir).files
    actual = checksums(gen_dir)
    actual.pop(MANIFEST, None)
    return sorted(k for k in expected.keys() | actual.keys() if expected.get(k) != actual.get(k))


def publish(index_dir: Path, name: str, staging: Path, manifest: Manifest) -> Path:
    """Seal the staging folder with its manifest and switch CURRENT to it in one rename."""
    _write_synced(staging / MANIFEST, manifests.dumps(manifest.sealed(name, checksums(staging))))
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
    # recorded after CURRENT moved: a generation in PUBLISHED was published; one CURRENT names is kept anyway
    with open(Path(index_dir) / PUBLISHED, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(name) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return final


def published(index_dir: Path) -> list[str]:
    """Names of published generations, oldest first (indexes from before the record: every sealed one)."""
    path = Path(index_dir) / PUBLISHED
    if not path.is_file():
        root = Path(index_dir) / GENERATIONS
        return sorted(p.name for p in root.iterdir() if _NAME.match(p.name)) if root.is_dir() else []
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            names.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a crash
    return names


def collect_garbage(index_dir: Path, keep: int) -> list[str]:
    """Keep the generation CURRENT names and the newest published ones (``keep`` in all); delete
    the rest: older generations, sealed ones that were never published, staging leftovers."""
    root = Path(index_dir) / GENERATIONS
    try:
        current = current_generation(index_dir)
    except IndexUnavailableError:
        log.warning("CURRENT is unreadable: no generation is deleted")
        return []
    kept: list[str] = [current.name] if current is not None else []
    history = published(index_dir)
    for name in reversed(history):
        if len(kept) >= keep:
            break
        if name not in kept and (root / name).is_dir():
            kept.append(name)
    removed = []
    for p in root.iterdir():
        is_generation = _NAME.match(p.name) is not None
        if (is_generation and p.name not in kept) or p.name.startswith(STAGING_PREFIX):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    if len(history) > 4 * keep + 16:  # the record stays short
        _write_synced(Path(index_dir) / f".{PUBLISHED}.tmp", "".join(json.dumps(n) + "\n" for n in history[-keep:]))
        os.replace(Path(index_dir) / f".{PUBLISHED}.tmp", Path(index_dir) / PUBLISHED)
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

