"""The typed manifest: read and written in one place, refusing what it cannot read with a reason."""

import json
from dataclasses import replace

import pytest

from rag import manifest as manifests
from rag.errors import IndexUnavailableError
from rag.manifest import Counts, DenseInfo, EncoderInfo, Manifest


def sample() -> Manifest:
    return Manifest("2026-11-25T00:00:00+00:00", "f" * 64, "p" * 64, Counts(3, 7),
                    EncoderInfo("minilm@abc", "/models/minilm", 384, 256, "", ""), "window=200", "lucene",
                    DenseInfo("flat", 32, 200, 100_000))


def test_round_trip_and_the_earlier_json_forms(tmp_path):
    m = sample().sealed("g000001-x", {"passages.sqlite": "0" * 64})
    (tmp_path / manifests.FILE).write_text(manifests.dumps(m))
    assert manifests.read(tmp_path) == m
    d = json.loads(manifests.dumps(m))  # the JSON keys every earlier generation was written with
    assert d["bm25"] == {"backend": "lucene"} and d["counts"] == {"documents": 3, "passages": 7} and d["version"] == 2
    del d["version"], d["encoder"]["numeric"]  # written before the manifest was typed (v1): still reads, as torch
    v1 = Manifest.from_dict(d)
    assert v1 == replace(m, version=1) and v1.encoder.numeric == "torch-fp32"


def test_the_weights_key_drops_the_numeric_path_only():
    assert EncoderInfo("minilm@abc|onnx-int8", "m", 384, 256, numeric="onnx-int8").weights_key == "minilm@abc"
    assert EncoderInfo("minilm@abc", "m", 384, 256).weights_key == "minilm@abc"


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.pop("encoder"), "incomplete"),
    (lambda d: d["counts"].pop("passages"), "incomplete"),
    (lambda d: d.update(files=[]), "incomplete"),
    (lambda d: d.update(version=99), "version 99"),
])
def test_a_manifest_it_cannot_read_is_refused_with_the_reason(tmp_path, damage, message):
    d = json.loads(manifests.dumps(sample()))
    damage(d)
    (tmp_path / manifests.FILE).write_text(json.dumps(d))
    with pytest.raises(IndexUnavailableError, match=message):
        manifests.read(tmp_path)
