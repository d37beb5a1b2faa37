"""extract_text_features: manifest, cache reuse, invalidation and corruption."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

import ercgraph.encoders.extract as extract_mod
from ercgraph.config import TextFeatureConfig
from ercgraph.data.corpus import Corpus
from ercgraph.data.features import FeatureStore
from ercgraph.encoders import extract_text_features
from ercgraph.errors import ErcgraphError

from .helpers import make_corpus


class _Counting:
    """Wraps TextEncoder and counts how often a model is built."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return _real_encoder(*args, **kwargs)


_real_encoder = extract_mod.TextEncoder


class _Forbidden:
    def __init__(self, *args, **kwargs) -> None:
        raise AssertionError("the encoder must not run when the cache is valid")


def _cfg(model: Path, **kw) -> TextFeatureConfig:
    return TextFeatureConfig(encoder=str(model), batch_size=4, **kw)


def _cache_file(cache: Path) -> Path:
    files = sorted((cache / "features").glob("*.safetensors"))
    assert len(files) == 1, files
    return files[0]


def test_store_and_manifest(toy_corpus: Corpus, tiny_bert: Path, tmp_path: Path) -> None:
    store, info = extract_text_features(toy_corpus, _cfg(tiny_bert), tmp_path, progress=False)
    assert store.modalities == ["text"]
    x = store.features["text"]
    assert x.shape == (toy_corpus.num_utterances, 32) and torch.isfinite(x).all()
    assert store.present["text"].all()  # the empty text of row 4 is encoded too
    m = store.manifest["text"]
    assert m["encoder"] == str(tiny_bert.resolve())
    assert m["pooling"] == "mean" and m["max_length"] == 128 and m["context_turns"] == 0
    assert m["corpus"] == toy_corpus.fingerprint() and m["finetune"] is None
    assert len(m["encoder_fingerprint"]) == 20
    assert info["reused"] is False and info["finetuned_path"] is None
    assert info["finetune_seconds"] is None and info["seconds"] >= 0
    meta = json.loads(_cache_file(tmp_path).with_suffix(".json").read_text())
    assert meta["manifest"] == store.manifest


def test_second_call_reuses_the_cache(
    toy_corpus: Corpus, tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = extract_text_features(toy_corpus, _cfg(tiny_bert), tmp_path, progress=False)
    monkeypatch.setattr(extract_mod, "TextEncoder", _Forbidden)
    again, info = extract_text_features(toy_corpus, _cfg(tiny_bert), tmp_path, progress=False)
    assert info["reused"] is True
    assert torch.equal(first.features["text"], again.features["text"])
    assert again.manifest == first.manifest


@pytest.mark.parametrize(
    "change",
    ["encoder", "pooling", "max_length", "context", "text", "speaker_with_context", "weights"],
)
def test_changes_trigger_recompute(
    change: str,
    toy_corpus: Corpus,
    tiny_bert: Path,
    tiny_bert_other: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = Path(shutil.copytree(tiny_bert, tmp_path / "model"))
    base = {"context_turns": 1} if change == "speaker_with_context" else {}
    first, _ = extract_text_features(
        toy_corpus, _cfg(model, **base), tmp_path / "c", progress=False
    )
    counter = _Counting()
    monkeypatch.setattr(extract_mod, "TextEncoder", counter)
    corpus, cfg = toy_corpus, _cfg(model, **base)
    if change == "encoder":
        cfg = _cfg(tiny_bert_other)
    elif change == "pooling":
        cfg = _cfg(model, pooling="cls")
    elif change == "max_length":
        cfg = _cfg(model, max_length=4)
    elif change == "context":
        cfg = _cfg(model, context_turns=2)
    elif change in ("text", "speaker_with_context"):
        df = toy_corpus.df.copy()
        col = "text" if change == "text" else "speaker"
        df.loc[0, col] = "bad" if change == "text" else "zed"
        corpus = Corpus(df, "toy", toy_corpus.labels)
    elif change == "weights":
        # same path, new content: the fingerprint changes
        shutil.copy(tiny_bert_other / "model.safetensors", model / "model.safetensors")
    second, info = extract_text_features(corpus, cfg, tmp_path / "c", progress=False)
    assert info["reused"] is False and counter.calls == 1
    assert second.manifest != first.manifest
    assert not torch.equal(first.features["text"], second.features["text"])
    assert len(list((tmp_path / "c" / "features").glob("*.safetensors"))) == 2


def test_batch_size_does_not_change_the_key(
    toy_corpus: Corpus, tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extract_text_features(toy_corpus, _cfg(tiny_bert), tmp_path, progress=False)
    monkeypatch.setattr(extract_mod, "TextEncoder", _Forbidden)
    cfg = dataclasses.replace(_cfg(tiny_bert), batch_size=1)
    assert extract_text_features(toy_corpus, cfg, tmp_path, progress=False)[1]["reused"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "drop_json", "garbage_json"])
def test_corrupt_cache_is_detected_and_rebuilt(
    damage: str,
    toy_corpus: Corpus,
    tiny_bert: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, _ = extract_text_features(toy_corpus, _cfg(tiny_bert), tmp_path, progress=False)
    path = _cache_file(tmp_path)
    blob = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(blob[: len(blob) // 2])
    elif damage == "flip":
        pos = len(blob) - 7  # inside the tensor data
        path.write_bytes(blob[:pos] + bytes([blob[pos] ^ 0xFF]) + blob[pos + 1 :])
    elif damage == "drop_json":
        path.with_suffix(".json").unlink()
    else:
        path.with_suffix(".json").write_text("{not json")
    with pytest.raises(ErcgraphError):
        FeatureStore.load(path, first.manifest)
    counter = _Counting()
    monkeypatch.setattr(extract_mod, "TextEncoder", counter)
    rebuilt, info = extract_text_features(toy_corpus, _cfg(tiny_bert), tmp_path, progress=False)
    assert info["reused"] is False and counter.calls == 1
    assert torch.allclose(rebuilt.features["text"], first.features["text"], atol=1e-6)
    FeatureStore.load(path, first.manifest)  # intact again


def test_store_with_other_manifest_is_rejected(
    toy_corpus: Corpus, tiny_bert: Path, tmp_path: Path
) -> None:
    store, _ = extract_text_features(toy_corpus, _cfg(tiny_bert), tmp_path, progress=False)
    other = json.loads(json.dumps(store.manifest))
    other["text"]["pooling"] = "cls"
    with pytest.raises(ErcgraphError, match="stale"):
        FeatureStore.load(_cache_file(tmp_path), other)


def test_config_errors(toy_corpus: Corpus, tiny_bert: Path, tmp_path: Path) -> None:
    with pytest.raises(ErcgraphError, match="pooling"):
        extract_text_features(toy_corpus, _cfg(tiny_bert, pooling="max"), tmp_path)
    with pytest.raises(ErcgraphError, match="does not exist"):
        extract_text_features(
            toy_corpus, TextFeatureConfig(encoder=str(tmp_path / "nope")), tmp_path
        )
    with pytest.raises(ErcgraphError, match="context_turns"):
        extract_text_features(toy_corpus, _cfg(tiny_bert, context_turns=-1), tmp_path)
    no_text = make_corpus([("train", "d1", 0, "a", "pos", "hi")])
    no_text.df = no_text.df.drop(columns="text")
    with pytest.raises(ErcgraphError, match="'text' column"):
        extract_text_features(no_text, _cfg(tiny_bert), tmp_path)


def test_force_recomputes_cached_features(
    toy_corpus: Corpus, tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = extract_text_features(toy_corpus, _cfg(tiny_bert), tmp_path, progress=False)
    counting = _Counting()
    monkeypatch.setattr(extract_mod, "TextEncoder", counting)
    again, info = extract_text_features(
        toy_corpus, _cfg(tiny_bert), tmp_path, progress=False, force=True
    )
    assert counting.calls == 1 and info["reused"] is False
    assert torch.allclose(again.features["text"], store.features["text"], atol=1e-6)
    _, info = extract_text_features(toy_corpus, _cfg(tiny_bert), tmp_path, progress=False)
    assert counting.calls == 1 and info["reused"] is True


@pytest.mark.parametrize(
    "setting, value, key",
    [("context_turns", 2, "finetune.context_turns"), ("max_length", 64, "finetune.max_length")],
)
def test_text_settings_that_finetuning_replaces_are_refused(
    toy_corpus: Corpus, tiny_bert: Path, tmp_path: Path, setting: str, value: int, key: str
) -> None:
    """With fine-tuning on, features are extracted as the encoder was trained: a non-default
    features.text.context_turns / max_length would be silently ignored, so it is an error."""
    ft = dataclasses.replace(TextFeatureConfig().finetune, enabled=True)
    cfg = _cfg(tiny_bert, finetune=ft, **{setting: value})
    with pytest.raises(ErcgraphError) as exc:
        extract_text_features(toy_corpus, cfg, tmp_path, progress=False)
    msg = str(exc.value)
    assert f"features.text.{setting}" in msg and f"features.text.{key}" in msg
    assert str(value) in msg and "\n" not in msg
    assert not (tmp_path / "finetuned").exists()  # refused before any fine-tuning
