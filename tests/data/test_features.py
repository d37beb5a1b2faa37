"""FeatureStore: validation, save/load round trip, and the manifest-checked disk cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ercgraph.data.features import FeatureStore, atomic_write_bytes, cached, manifest_key
from ercgraph.errors import ErcgraphError

MANIFEST = {"text": {"encoder": "toy", "pooling": "mean", "corpus": "abc"}}


def _store() -> FeatureStore:
    g = torch.Generator().manual_seed(0)
    return FeatureStore(
        {"text": torch.randn(5, 3, generator=g), "audio": torch.randn(5, 2, generator=g)},
        {"audio": torch.tensor([True, False, True, True, False])},
        json.loads(json.dumps(MANIFEST)),
    )


class _Compute:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> FeatureStore:
        self.calls += 1
        return _store()


def test_store_validates_shapes_and_fills_masks() -> None:
    s = _store()
    assert s.modalities == ["text", "audio"] and s.dims() == {"text": 3, "audio": 2}
    assert s.num_rows() == 5 and s.present["text"].all()
    assert s.present["audio"].tolist() == [True, False, True, True, False]
    s.check_rows(5)
    with pytest.raises(ErcgraphError, match="modality 'text' has 5 feature rows"):
        s.check_rows(6)
    with pytest.raises(ErcgraphError, match="2-D"):
        FeatureStore({"text": torch.zeros(4)})
    with pytest.raises(ErcgraphError, match="rows"):
        FeatureStore({"text": torch.zeros(4, 2), "audio": torch.zeros(3, 2)})
    with pytest.raises(ErcgraphError, match="both provide"):
        s.merge(FeatureStore({"text": torch.zeros(5, 1)}))
    merged = FeatureStore({"text": torch.zeros(5, 1)}).merge(
        FeatureStore({"visual": torch.ones(5, 4)})
    )
    assert merged.dims() == {"text": 1, "visual": 4}


def test_save_load_round_trip(tmp_path: Path) -> None:
    s = _store()
    path = tmp_path / "f.safetensors"
    s.save(path)
    assert path.is_file() and path.with_suffix(".json").is_file()
    back = FeatureStore.load(path, MANIFEST)
    for m in s.modalities:
        assert torch.equal(back.features[m], s.features[m])
        assert torch.equal(back.present[m], s.present[m])
    assert back.manifest == MANIFEST
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files


def test_load_rejects_another_manifest(tmp_path: Path) -> None:
    path = tmp_path / "f.safetensors"
    _store().save(path)
    other = {"text": {**MANIFEST["text"], "pooling": "cls"}}
    with pytest.raises(ErcgraphError, match="stale"):
        FeatureStore.load(path, other)
    FeatureStore.load(path)  # without an expectation it loads


@pytest.mark.parametrize(
    "damage", ["truncate", "flip", "append", "drop_json", "bad_json", "format"]
)
def test_load_detects_damage(damage: str, tmp_path: Path) -> None:
    path = tmp_path / "f.safetensors"
    _store().save(path)
    blob = path.read_bytes()
    meta_path = path.with_suffix(".json")
    if damage == "truncate":
        path.write_bytes(blob[:-10])
    elif damage == "flip":
        path.write_bytes(blob[:-5] + bytes([blob[-5] ^ 0x01]) + blob[-4:])
    elif damage == "append":
        path.write_bytes(blob + b"\0")
    elif damage == "drop_json":
        meta_path.unlink()
    elif damage == "bad_json":
        meta_path.write_text("{")
    else:
        meta = json.loads(meta_path.read_text())
        meta["format"] = 999
        meta_path.write_text(json.dumps(meta))
    with pytest.raises(ErcgraphError, match=r"f\.safetensors"):
        FeatureStore.load(path, MANIFEST)


def test_load_rejects_non_finite_values(tmp_path: Path) -> None:
    path = tmp_path / "f.safetensors"
    FeatureStore({"text": torch.tensor([[1.0, float("nan")]])}, manifest=MANIFEST).save(path)
    with pytest.raises(ErcgraphError, match="non-finite"):
        FeatureStore.load(path, MANIFEST)


def test_cached_computes_once_then_reuses(tmp_path: Path) -> None:
    path = tmp_path / "cache" / f"{manifest_key(MANIFEST)}.safetensors"
    compute = _Compute()
    first, reused = cached(path, MANIFEST, compute)
    assert not reused and compute.calls == 1 and path.is_file()
    second, reused = cached(path, MANIFEST, compute)
    assert reused and compute.calls == 1
    assert torch.equal(first.features["text"], second.features["text"])
    assert second.manifest == MANIFEST


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_cached_rebuilds_a_corrupt_file(
    damage: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "f.safetensors"
    compute = _Compute()
    cached(path, MANIFEST, compute)
    blob = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(blob[: len(blob) // 3])
    else:
        mid = len(blob) // 2
        path.write_bytes(blob[:mid] + bytes([blob[mid] ^ 0xFF]) + blob[mid + 1 :])
    with caplog.at_level("WARNING"):
        store, reused = cached(path, MANIFEST, compute)
    assert not reused and compute.calls == 2
    assert "rebuilding" in caplog.text
    assert torch.equal(store.features["text"], _store().features["text"])
    assert cached(path, MANIFEST, compute)[1] and compute.calls == 2


def test_cached_recomputes_for_another_manifest(tmp_path: Path) -> None:
    path = tmp_path / "f.safetensors"
    compute = _Compute()
    cached(path, MANIFEST, compute)
    other = {"text": {**MANIFEST["text"], "corpus": "changed"}}
    store, reused = cached(path, other, compute)
    assert not reused and compute.calls == 2 and store.manifest == other
    assert FeatureStore.load(path, other).manifest == other


def test_manifest_key_is_stable_and_sensitive() -> None:
    a = {"text": {"x": 1, "y": [1, 2]}}
    b = {"text": {"y": [1, 2], "x": 1}}
    assert manifest_key(a) == manifest_key(b) and len(manifest_key(a)) == 20
    assert manifest_key(a) != manifest_key({"text": {"x": 2, "y": [1, 2]}})


def test_atomic_write_bytes_replaces(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(path, b"one")
    atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    assert [p.name for p in path.parent.iterdir()] == ["f.bin"]
