"""The same sentence-transformers folder run by ONNX Runtime: fp32 (the torch vectors to 1e-6) or
dynamically quantised int8 weights (per channel, MatMul only: cosine to fp32 ~0.99).

The whole sentence-transformers pipeline (transformer, pooling, any Dense and Normalize modules) is
traced once from torch into ``CACHE/onnx/<folder>-<weights hash>/model-<precision>.onnx`` and
published atomically, so the first use exports (a few seconds) and every later one loads the file.
Two sessions: one for queries with ``query_threads`` intra-op threads and no spinning, one for
passages with ``index_threads``. Each text is its own forward pass (see :meth:`OnnxEncoder._run`).
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from rag.cache import DEFAULT_CACHE, build_once
from rag.encoders.folder import FolderEncoder
from rag.errors import ConfigError

log = logging.getLogger(__name__)
PRECISIONS = ("fp32", "int8")
OPSET = 17


class OnnxEncoder(FolderEncoder):
    def __init__(
        self, model: str | None = None, query_prefix: str = "", passage_prefix: str = "", max_seq_length: int | None = None,
        query_threads: int = 1, index_threads: int | None = None, precision: str = "int8", cache_dir: Path = DEFAULT_CACHE,
    ) -> None:
        super().__init__(model, query_prefix, passage_prefix, max_seq_length, query_threads, index_threads)
        if precision not in PRECISIONS:
            raise ConfigError(f"encoder.precision {precision!r} is not one of {', '.join(PRECISIONS)} for the onnx backend")
        self.precision = precision
        self.numeric = f"onnx-{precision}"
        self.cache_dir = Path(cache_dir)
        self._export_lock = threading.Lock()

    # -- the model file, exported once -----------------------------------------------------------

    @cached_property
    def onnx_path(self) -> Path:
        folder = self.cache_dir / "onnx" / f"{self.path.name}-{self.fingerprint}"
        with self._export_lock:
            fp32 = build_once(folder / "model-fp32.onnx", self._export)
            if self.precision == "fp32":
                return fp32
            return build_once(folder / f"model-{self.precision}.onnx", lambda tmp: _quantize(fp32, tmp))

    def _export(self, tmp: Path) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        log.info("exporting %s to ONNX (once) in %s", self.path, tmp.parent)
        try:
            st = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any load failure is a configuration problem
            raise ConfigError(f"cannot load encoder model {str(self.path)!r}: {exc}") from exc
        names = list(self.input_names)

        class Pipeline(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.st = st

            def forward(self, *inputs):
                return self.st(dict(zip(names, inputs, strict=True)))["sentence_embedding"]

        with self.tokenizer_lock:
            sample = self.tokenizer(["a short text", "and a somewhat longer one to pad"], padding=True, return_tensors="pt")
        axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"embedding": {0: "batch"}}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on shape-dependent Python branches
            torch.onnx.export(Pipeline().eval(), tuple(sample[n] for n in names), str(tmp), input_names=names,
                              output_names=["embedding"], dynamic_axes=axes, opset_version=OPSET, dynamo=False)

    @cached_property
    def input_names(self) -> tuple[str, ...]:
        return tuple(n for n in self.tokenizer.model_input_names if n in ("input_ids", "attention_mask", "token_type_ids"))

    # -- sessions ------------------------------------------------------------------------------

    def _session(self, threads: int):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no spinning against a neighbour
        try:
            return ort.InferenceSession(str(self.onnx_path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - a corrupt cache file is a configuration problem
            raise ConfigError(f"cannot load the ONNX encoder {str(self.onnx_path)!r} (delete it to re-export): {exc}") from exc

    @cached_property
    def query_session(self):
        return self._session(self.query_threads)

    @cached_property
    def passage_session(self):
        return self._session(self.index_threads)

    @cached_property
    def dim(self) -> int:  # type: ignore[override]
        return int(self.query_session.get_outputs()[0].shape[1])

    # -- encoding ------------------------------------------------------------------------------

    def _run(self, session, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """One text per forward pass: on a CPU that is as fast as padded batches (measured: int8 46
        passages/s at 1, 40 at 32), and an int8 vector then never depends on its batch neighbours
        (activations are quantised per batch: up to 0.03 per component otherwise)."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(tqdm(texts, disable=not progress, desc="encoding", unit="passage")):
            with self.tokenizer_lock:
                enc = self.tokenizer(text, truncation=True, max_length=self.max_length, return_tensors="np")
            out[i] = session.run(None, {n: enc[n].astype(np.int64) for n in self.input_names})[0][0]
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def _encode(self, texts: Sequence[str], batch_size: int, progress: bool) -> np.ndarray:
        return self._run(self.passage_session, texts, progress)

    def _encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._run(self.query_session, texts)


def _quantize(fp32: Path, out: Path) -> None:
    """Dynamic int8: weights quantised per output channel, activations per batch at run time. MatMul
    only (quantising the embedding lookup and per-tensor weights cost 5x more cosine)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # it logs a line per tensor (and advice) on the root logger
    try:
        quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"])
    finally:
        logging.disable(logging.NOTSET)
