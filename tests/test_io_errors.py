"""Writes that fail (a full, read-only or forbidden disk) and cache files replaced by folders:
one line naming the file, the old file intact, no temp file left, never a traceback."""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

import ercgraph.data.features as features_mod
from ercgraph.data.corpus import MELD_LABELS, Corpus
from ercgraph.data.features import FeatureStore, atomic_write_bytes, cached
from ercgraph.errors import ErcgraphError
from ercgraph.graphs.base import Dialogues
from ercgraph.graphs.build import cached_edges

MANIFEST = {"text": {"encoder": "toy", "corpus": "abc"}}


def _fail_with(code: int):
    def fsync(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    return fsync


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOSPC, "No space left on device"),
        (errno.EDQUOT, "quota"),
        (errno.EROFS, "Read-only file system"),
        (errno.EACCES, "Permission denied"),
    ],
)
def test_a_failed_write_is_one_line_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, words: str
) -> None:
    target = tmp_path / "run" / "metrics.json"
    target.parent.mkdir()
    target.write_bytes(b"old")
    monkeypatch.setattr(features_mod.os, "fsync", _fail_with(code))
    with pytest.raises(ErcgraphError) as err:
        atomic_write_bytes(target, b"new content")
    msg = str(err.value)
    assert "\n" not in msg
    assert str(target) in msg and words.lower() in msg.lower()
    assert "disk mounted at '/" in msg  # the disk is named
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]  # no temp file


def test_a_full_disk_says_how_much_is_free(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features_mod.os, "fsync", _fail_with(errno.ENOSPC))
    with pytest.raises(ErcgraphError, match=r"bytes free\); free space on that disk"):
        atomic_write_bytes(tmp_path / "new.bin", b"x")
    assert list(tmp_path.iterdir()) == []  # nothing half-written where nothing was


def test_a_temp_file_that_cannot_be_made_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def mkstemp(**kwargs: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))

    monkeypatch.setattr(features_mod.tempfile, "mkstemp", mkstemp)
    with pytest.raises(ErcgraphError, match=r"cannot write .*x\.json': Permission denied"):
        atomic_write_bytes(tmp_path / "x.json", b"{}")


def test_a_full_disk_while_saving_features_keeps_the_cache_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "features" / "k.safetensors"
    monkeypatch.setattr(features_mod.os, "fsync", _fail_with(errno.ENOSPC))
    with pytest.raises(ErcgraphError, match="k.safetensors.*No space left"):
        cached(path, MANIFEST, _store)
    assert list(path.parent.iterdir()) == []


def test_writing_onto_a_folder_names_it(tmp_path: Path) -> None:
    (tmp_path / "out.json").mkdir()
    (tmp_path / "out.json" / "mine.txt").write_text("keep")
    with pytest.raises(ErcgraphError, match=r"out\.json': a folder of that name is in the way"):
        atomic_write_bytes(tmp_path / "out.json", b"{}")
    assert (tmp_path / "out.json" / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


# -- cache files replaced by folders -------------------------------------------------------------
def _store() -> FeatureStore:
    return FeatureStore({"text": torch.arange(6.0).view(3, 2)})


@pytest.mark.parametrize("which", [".safetensors", ".json"])
def test_feature_cache_file_replaced_by_an_empty_folder_is_rebuilt(
    tmp_path: Path, which: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "features" / "k.safetensors"
    cached(path, MANIFEST, _store)
    entry = path.with_suffix(which)
    entry.unlink()
    entry.mkdir()
    caplog.set_level(logging.WARNING)
    store, reused = cached(path, MANIFEST, _store)
    assert not reused and torch.equal(store.features["text"], _store().features["text"])
    assert entry.is_file() and "empty folder" in caplog.text
    assert cached(path, MANIFEST, _store)[1]  # the rebuilt entry is good again


@pytest.mark.parametrize("which", [".safetensors", ".json"])
def test_feature_cache_file_replaced_by_a_folder_with_files_is_named_and_kept(
    tmp_path: Path, which: str
) -> None:
    path = tmp_path / "features" / "k.safetensors"
    cached(path, MANIFEST, _store)
    entry = path.with_suffix(which)
    entry.unlink()
    entry.mkdir()
    (entry / "notes.txt").write_text("user data")
    with pytest.raises(ErcgraphError) as err:
        cached(path, MANIFEST, _store)
    msg = str(err.value)
    assert str(entry) in msg and "is a folder" in msg and "\n" not in msg
    assert (entry / "notes.txt").read_text() == "user data"


@pytest.fixture
def corpus() -> Corpus:
    df = pd.DataFrame(
        {
            "split": ["train"] * 3,
            "dialogue_id": ["d1", "d1", "d2"],
            "turn": [0, 1, 0],
            "speaker": ["A", "B", "A"],
            "label": ["joy", "neutral", "anger"],
        }
    )
    return Corpus(df, "toy", MELD_LABELS)


@pytest.mark.parametrize("which", [".safetensors", ".json"])
@pytest.mark.parametrize("content", [False, True])
def test_graph_cache_file_replaced_by_a_folder(
    corpus: Corpus, tmp_path: Path, which: str, content: bool
) -> None:
    d = Dialogues.from_corpus(corpus, ("text",))
    good, _ = cached_edges(corpus, d, ["temporal"], tmp_path)
    (entry,) = (tmp_path / "graphs").glob(f"*{which}")
    entry.unlink()
    entry.mkdir()
    if content:
        (entry / "notes.txt").write_text("user data")
        with pytest.raises(ErcgraphError, match=r"is a folder with files in it") as err:
            cached_edges(corpus, d, ["temporal"], tmp_path)
        assert str(entry) in str(err.value)
        assert (entry / "notes.txt").read_text() == "user data"
        return
    edges, hit = cached_edges(corpus, d, ["temporal"], tmp_path)
    assert not hit and all(torch.equal(good[k], edges[k]) for k in good)
    assert entry.is_file()
    json.loads((tmp_path / "graphs" / f"{entry.stem}.json").read_text())
    assert cached_edges(corpus, d, ["temporal"], tmp_path)[1]
