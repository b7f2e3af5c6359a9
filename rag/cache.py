"""Where models converted once (the generator's transformers folder and its CTranslate2 form, ONNX
exports) are kept, and how each is published: whole or not at all."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

DEFAULT_CACHE = Path.home() / ".cache" / "rag-search" / "models"


def build_once(out: Path, build: Callable[[Path], None]) -> Path:
    """``out`` (a file or a folder), made by ``build(tmp)`` into a temporary sibling and renamed into
    place the first time it is asked for: a reader never sees half of it, and a failed build leaves
    nothing behind."""
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        build(tmp)
        os.replace(tmp, out)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    return out
