"""The media feature cache: keyed on the files themselves, failures retried, ``force``; relative
media paths resolved against the table's folder; the audio length limit."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from ercgraph.config import AudioFeatureConfig, DataConfig
from ercgraph.data.corpus import Corpus
from ercgraph.data.table import read_table
from ercgraph.encoders.media_extract import extract_media_features
from ercgraph.errors import ErcgraphError

from .media_fixtures import sine, write_wav

SR = 16000


def audio_cfg(**kw) -> AudioFeatureConfig:
    return AudioFeatureConfig(**{"encoder": "fbank:16", "workers": 1, "chunk_size": 2, **kw})


def wav_corpus(paths: list[str | None]) -> Corpus:
    rows = [
        ("train", "d1", i, "ab"[i % 2], "pos" if i % 2 else "neg", p) for i, p in enumerate(paths)
    ]
    df = pd.DataFrame(
        rows, columns=["split", "dialogue_id", "turn", "speaker", "label", "audio_path"]
    )
    return Corpus(df, "wavs", ("neg", "pos"))


def write_project(folder: Path, freqs: list[float]) -> list[str]:
    """``folder/wav/u<i>.wav`` sines; returns the relative paths."""
    rel = [f"wav/u{i}.wav" for i in range(len(freqs))]
    for r, f in zip(rel, freqs):
        write_wav(folder / r, sine(f, 0.5, SR), SR)
    return rel


def extract(corpus: Corpus, cache: Path, **kw):
    cfg = kw.pop("cfg", None) or audio_cfg()
    return extract_media_features(corpus, "audio", cfg, cache, progress=False, **kw)


# -- 1. the cache key is the files, not their names --------------------------------------------
def test_same_relative_paths_in_two_projects_get_their_own_features(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    rel = write_project(tmp_path / "p1", [300.0, 500.0, 700.0])
    assert write_project(tmp_path / "p2", [1200.0, 2500.0, 3100.0]) == rel
    monkeypatch.chdir(tmp_path / "p1")
    s1, i1 = extract(wav_corpus(rel), cache)
    monkeypatch.chdir(tmp_path / "p2")
    s2, i2 = extract(wav_corpus(rel), cache)
    assert (i1["done"], i2["done"], i2["reused"]) == (3, 3, 0)
    for row in range(3):
        assert not torch.allclose(s1.features["audio"][row], s2.features["audio"][row])
    assert s1.manifest["audio"]["media"] != s2.manifest["audio"]["media"]
    # each project reuses its own features
    monkeypatch.chdir(tmp_path / "p1")
    s1b, i1b = extract(wav_corpus(rel), cache)
    assert (i1b["done"], i1b["reused"]) == (0, 3)
    assert torch.equal(s1b.features["audio"], s1.features["audio"])


def test_a_replaced_file_gets_new_features(tmp_path: Path) -> None:
    rel = write_project(tmp_path, [300.0, 500.0, 700.0, 900.0])
    corpus = wav_corpus([str(tmp_path / r) for r in rel])
    cache = tmp_path / "cache"
    before, _ = extract(corpus, cache)
    target = tmp_path / rel[2]
    stat = target.stat()
    write_wav(target, sine(2000.0, 0.5, SR), SR)  # same length, so the same size
    assert target.stat().st_size == stat.st_size
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after, info = extract(corpus, cache)
    assert not torch.allclose(after.features["audio"][2], before.features["audio"][2])
    assert torch.equal(after.features["audio"][[0, 1, 3]], before.features["audio"][[0, 1, 3]])
    # only the chunk holding the replaced file is encoded again
    assert (info["done"], info["reused"], info["failed"]) == (2, 2, 0)


def test_a_failed_file_fixed_between_runs_is_extracted(tmp_path: Path) -> None:
    rel = write_project(tmp_path, [300.0, 500.0, 700.0])
    corpus = wav_corpus([str(tmp_path / r) for r in rel])
    cache = tmp_path / "cache"
    good = (tmp_path / rel[1]).read_bytes()
    stat = (tmp_path / rel[1]).stat()
    (tmp_path / rel[1]).write_bytes(b"\0" * len(good))  # corrupt, same size
    os.utime(tmp_path / rel[1], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    store, info = extract(corpus, cache)
    assert (info["done"], info["failed"]) == (2, 1)
    assert store.present["audio"].tolist() == [True, False, True]
    # fixed, even with the very same size and time stamp: a failure is never final
    (tmp_path / rel[1]).write_bytes(good)
    os.utime(tmp_path / rel[1], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    store, info = extract(corpus, cache)
    assert (info["done"], info["failed"], info["reused"]) == (1, 0, 2)
    assert store.present["audio"].all()
    fresh, _ = extract(corpus, tmp_path / "fresh")
    assert torch.equal(store.features["audio"], fresh.features["audio"])
    # and the fixed row now comes from the cache
    _, info = extract(corpus, cache)
    assert (info["done"], info["failed"], info["reused"]) == (0, 0, 3)


def test_force_recomputes_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ercgraph.encoders.media_extract as mx

    rel = write_project(tmp_path, [300.0, 500.0, 700.0])
    corpus = wav_corpus([str(tmp_path / r) for r in rel])
    first, _ = extract(corpus, tmp_path / "c")
    calls = []
    real = mx._encode_chunk
    monkeypatch.setattr(mx, "_encode_chunk", lambda *a: calls.append(a) or real(*a))
    again, info = extract(corpus, tmp_path / "c", force=True)
    assert (info["done"], info["reused"]) == (3, 0) and len(calls) == 2
    assert torch.equal(again.features["audio"], first.features["audio"])
    _, info = extract(corpus, tmp_path / "c")
    assert (info["done"], info["reused"]) == (0, 3)


# -- 2. relative media paths --------------------------------------------------------------------
def write_table(folder: Path, paths: list[str]) -> Path:
    rows = ["dialogue_id,turn,speaker,label,split,audio_path"]
    rows += [
        f"d1,{i},{'ab'[i % 2]},{'neg' if i % 2 else 'pos'},train,{p}" for i, p in enumerate(paths)
    ]
    path = folder / "labels.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_relative_media_paths_resolve_against_the_table_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    rel = write_project(project, [300.0, 500.0])
    table = write_table(project, [*rel, "wav/missing.wav"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    corpus = read_table(DataConfig(reader="table", path=str(table)), None)
    store, info = extract(corpus, tmp_path / "cache")
    assert (info["done"], info["failed"]) == (2, 1)
    assert store.present["audio"].tolist() == [True, True, False]
    (row, path, reason) = info["errors"][0]
    assert row == 2 and path == "wav/missing.wav"
    assert "does not exist" in reason and str(project) in reason and "table" in reason


def test_media_root_option_resolves_against_the_data_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    rel = write_project(root / "media", [300.0, 500.0])
    (root / "tables").mkdir()
    table = write_table(root / "tables", rel)
    monkeypatch.chdir(tmp_path)
    data = DataConfig(reader="table", path="tables/labels.csv", options={"media_root": "media"})
    corpus = read_table(data, root)
    _, info = extract(corpus, tmp_path / "cache")
    assert (info["done"], info["failed"]) == (2, 0)
    # without the option they are looked for next to the table, and the message says where
    corpus = read_table(DataConfig(reader="table", path=str(table)), None)
    with pytest.raises(ErcgraphError, match="every media file failed") as exc:
        extract(corpus, tmp_path / "cache")
    assert str(root / "tables") in str(exc.value)


# -- 4. the audio length limit ------------------------------------------------------------------
def test_audio_longer_than_max_seconds_is_skipped_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import soundfile as sf

    short = write_wav(tmp_path / "short.wav", sine(300.0, 0.5, SR), SR)
    long = write_wav(tmp_path / "long.wav", sine(300.0, 3.0, SR), SR)
    corpus = wav_corpus([str(short), str(long)])
    read = sf.read
    opened: list[str] = []
    monkeypatch.setattr(
        sf, "read", lambda path, *a, **k: opened.append(path) or read(path, *a, **k)
    )
    store, info = extract(corpus, tmp_path / "c", cfg=audio_cfg(max_seconds=1.0))
    assert store.present["audio"].tolist() == [True, False]
    (row, path, reason) = info["errors"][0]
    assert row == 1 and "long.wav" in path and "longer than max_seconds=1.0" in reason
    assert "3.0 s" in reason and opened == [str(short)]
    # raising the limit extracts it on the next run (a failure is not cached)
    store, info = extract(corpus, tmp_path / "c", cfg=audio_cfg(max_seconds=None))
    assert store.present["audio"].all() and (info["done"], info["reused"]) == (1, 1)


def test_max_seconds_default_and_check() -> None:
    assert AudioFeatureConfig().max_seconds == 600.0
    corpus = wav_corpus(["x.wav"])
    with pytest.raises(ErcgraphError, match="features.audio.max_seconds must be > 0"):
        extract(corpus, Path("unused"), cfg=audio_cfg(max_seconds=0.0))


def test_segments_and_per_split_folders(tmp_path: Path) -> None:
    """Rows cutting [start, end) out of one dialogue-level file are told apart by their times;
    a ``{split: folder}`` media root resolves each row against its split's folder."""
    import numpy as np

    for split, freq in (("train", 300.0), ("dev", 2000.0)):
        signal = np.concatenate([sine(freq, 1.0, SR), sine(freq * 2, 1.0, SR)])
        write_wav(tmp_path / split / "dialogue.wav", signal, SR)
    df = pd.DataFrame(
        {
            "split": ["train", "train", "dev"],
            "dialogue_id": ["d1", "d1", "d2"],
            "turn": [0, 1, 0],
            "speaker": ["a", "b", "a"],
            "label": ["neg", "pos", "neg"],
            "audio_path": ["dialogue.wav"] * 3,
            "start": [0.0, 1.0, 0.0],
            "end": [1.0, 2.0, 1.0],
        }
    )
    meta = {"media_root": {s: str(tmp_path / s) for s in ("train", "dev")}}
    corpus = Corpus(df, "dialogues", ("neg", "pos"), meta=meta)
    cfg = audio_cfg(segment=True, max_seconds=1.5)
    store, info = extract(corpus, tmp_path / "c", cfg=cfg)
    x = store.features["audio"]
    assert info["done"] == 3 and not torch.allclose(x[0], x[1]) and not torch.allclose(x[0], x[2])
    # new times are new segments; the limit applies to the segment, not the file
    corpus.df.loc[1, "end"] = 1.5
    store, info = extract(corpus, tmp_path / "c", cfg=cfg)
    assert (info["done"], info["reused"]) == (2, 1)  # the chunk of rows 0 and 1 again
    assert torch.equal(store.features["audio"][0], x[0])
    assert not torch.equal(store.features["audio"][1], x[1])
    corpus.df.loc[1, ["start", "end"]] = [0.0, None]  # to the end of the file: 2 s
    _, info = extract(corpus, tmp_path / "c", cfg=cfg)
    assert info["failed"] == 1 and "longer than max_seconds=1.5" in info["errors"][0][2]
