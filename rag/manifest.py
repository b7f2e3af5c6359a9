"""The manifest of one index generation: what it was built from and with, and the checksum of each
file. Written once by the indexing job when it publishes, read by everything that opens an index;
this module is the only one that knows its JSON form.

Version 1 is the form written before the manifest was typed (no ``version`` key); it reads as is.
Version 2 adds the encoder's numeric path (``encoder.numeric``; version 1 indexes are torch-fp32).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rag.errors import IndexUnavailableError

FILE = "manifest.json"
VERSION = 2


@dataclass(frozen=True)
class EncoderInfo:
    """The encoder the passage vectors came from; queries must be encoded by the same one."""

    model_key: str  # model name/folder + a hash of its weights (+ backend and precision when they differ)
    model: str  # what to load it from
    dim: int
    max_length: int
    query_prefix: str = ""
    passage_prefix: str = ""
    numeric: str = "torch-fp32"  # runtime and precision of the forward pass (indexes built before backends: torch)

    @property
    def weights_key(self) -> str:
        """The model key without the numeric path: equal means the same model, maybe another runtime."""
        suffix = f"|{self.numeric}"
        return self.model_key[: -len(suffix)] if self.model_key.endswith(suffix) else self.model_key


@dataclass(frozen=True)
class Counts:
    documents: int
    passages: int


@dataclass(frozen=True)
class DenseInfo:
    kind: str  # "flat" (exact) or "hnsw"
    hnsw_m: int
    ef_construction: int
    exact_threshold: int


@dataclass(frozen=True)
class Manifest:
    created_at: str
    fingerprint: str  # of the passages and every index setting: equal means nothing to rebuild
    passages_fingerprint: str  # of the passages alone: equal means the BM25 index can be shared
    counts: Counts
    encoder: EncoderInfo
    chunking: str  # the chunker's signature (window, overlap, tokenizer)
    bm25_backend: str
    dense: DenseInfo
    generation: str = ""  # set at publish
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256, set at publish
    version: int = VERSION

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bm25"] = {"backend": d.pop("bm25_backend")}
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "") -> Manifest:
        """Raises :class:`IndexUnavailableError` naming what is missing or malformed."""
        try:
            if d.get("version", 1) > VERSION:
                raise IndexUnavailableError(f"the manifest{where} is version {d['version']}; this release reads up to "
                                            f"{VERSION}: upgrade rag-search")
            if not isinstance(d["files"], dict):
                raise TypeError("files is not a mapping")
            return cls(
                created_at=str(d.get("created_at", "")), fingerprint=str(d.get("fingerprint", "")),
                passages_fingerprint=str(d.get("passages_fingerprint", "")), counts=Counts(**d["counts"]),
                encoder=EncoderInfo(**d["encoder"]), chunking=str(d.get("chunking", "")),
                bm25_backend=str(d["bm25"]["backend"]), dense=DenseInfo(**d["dense"]),
                generation=str(d.get("generation", "")), files=d["files"], version=int(d.get("version", 1)),
            )
        except IndexUnavailableError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise IndexUnavailableError(f"the manifest{where} is incomplete ({type(exc).__name__}: {exc})") from None

    def sealed(self, generation: str, files: dict[str, str]) -> Manifest:
        return replace(self, generation=generation, files=files)


def read(gen_dir: Path) -> Manifest:
    where = f" of generation {Path(gen_dir).name}"
    try:
        d = json.loads((Path(gen_dir) / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexUnavailableError(f"the manifest{where} is unreadable ({exc})") from exc
    return Manifest.from_dict(d, where)


def dumps(manifest: Manifest) -> str:
    return json.dumps(manifest.to_dict(), indent=2)
