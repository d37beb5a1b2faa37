"""Tiny, layout-faithful feature pickles of the ERC literature, written into a test folder.

Each writer builds 4-6 dialogues with the published feature widths of its file family (see
``shared/data/FEATURE_PICKLES.md``), pickles them in the reference field order and returns a
:class:`Fixture` holding the path and every array, so tests can compare what the reader returns
with what was written. Keys follow the conventions: IEMOCAP ``Ses01F_impro01``-style strings,
MELD integers (train ``D``, dev ``D + 1039``, test ``D + 1153``).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ercgraph.data.corpus import IEMOCAP_LABELS, MELD_LABELS

ROBERTA = ("roberta1", "roberta2", "roberta3", "roberta4")


@dataclass
class Dialogues:
    """The utterances of a fixture, per raw pickle key.

    ``splits`` is what the reader must produce (split → keys in order), ``pool`` the keys of
    ``trainVid`` for layouts without a dev list (train ∪ dev), ``dialogue_ids`` the Corpus ids.
    """

    dataset: str
    splits: dict[str, list]
    dialogue_ids: dict[Any, str]
    speakers: dict[Any, list]
    speaker_names: dict[Any, list[str]]
    labels: dict[Any, list[int]]
    label_names: tuple[str, ...]
    sentiments: dict[Any, list[int]]
    sentences: dict[Any, list[str]]
    ids: dict[Any, list[str]]
    rng: np.random.Generator = field(repr=False)

    @property
    def keys(self) -> list:
        return [k for s in ("train", "dev", "test") for k in self.splits.get(s, [])]

    @property
    def pool(self) -> list:
        return self.splits["train"] + self.splits["dev"]

    def features(self, dim: int) -> dict[Any, np.ndarray]:
        """A random float32 ``[utterances, dim]`` array per dialogue."""
        return {
            k: self.rng.standard_normal((len(self.labels[k]), dim)).astype(np.float32)
            for k in self.keys
        }


def iemocap_dialogues(seed: int = 0) -> Dialogues:
    """Three train dialogues (the last sorted one becomes dev) and one test dialogue."""
    rng = np.random.default_rng(seed)
    turns = {
        "Ses01F_impro01": "FMF",
        "Ses01M_script02_1": "MF",
        "Ses02F_impro03": "FMMF",
        "Ses05M_impro04": "MF",
    }
    splits = {
        "train": ["Ses01F_impro01", "Ses01M_script02_1"],
        "dev": ["Ses02F_impro03"],
        "test": ["Ses05M_impro04"],
    }
    speakers = {k: list(v) for k, v in turns.items()}
    return Dialogues(
        "iemocap",
        splits,
        {k: k for k in turns},
        speakers,
        speakers,
        {k: rng.integers(0, 6, len(v)).tolist() for k, v in turns.items()},
        IEMOCAP_LABELS,
        {},
        {k: [f"{k} line {i}" for i in range(len(v))] for k, v in turns.items()},
        {k: [f"{k}_{s}{i:03d}" for i, s in enumerate(v)] for k, v in turns.items()},
        rng,
    )


def meld_dialogues(seed: int = 0) -> Dialogues:
    """Two dialogues per split; speakers as 9-d one-hots by order of first appearance."""
    rng = np.random.default_rng(seed)
    hot = {0: [0, 1, 0], 7: [0, 1], 1039: [0, 0], 1041: [0, 1, 2], 1153: [0], 1160: [0, 1]}
    ids = {0: "train_0", 7: "train_7", 1039: "dev_0", 1041: "dev_2", 1153: "test_0", 1160: "test_7"}
    eye = np.eye(9, dtype=np.int64)
    return Dialogues(
        "meld",
        {"train": [0, 7], "dev": [1039, 1041], "test": [1153, 1160]},
        ids,
        {k: eye[v].tolist() for k, v in hot.items()},
        {k: [f"spk{i}" for i in v] for k, v in hot.items()},
        {k: rng.integers(0, 7, len(v)).tolist() for k, v in hot.items()},
        MELD_LABELS,
        {k: rng.integers(0, 3, len(v)).tolist() for k, v in hot.items()},
        {k: [f"It\x92s line {i} of {k}" for i in range(len(v))] for k, v in hot.items()},
        {k: [f"{k}_{i}" for i in range(len(v))] for k, v in hot.items()},
        rng,
    )


@dataclass
class Fixture:
    """A written pickle: where, in which layout, and the arrays per field name.

    ``modalities`` maps each modality the reader must return to its default field.
    """

    path: Path
    layout: str
    dialogues: Dialogues
    arrays: dict[str, dict[Any, np.ndarray]]
    modalities: dict[str, str]
    extra_files: dict[str, Path] = field(default_factory=dict)


def dump(path: Path, obj: Any) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=2))
    return path


def _video(
    d: Dialogues,
    arrays: dict[str, dict],
    text: tuple[str, ...],
    tail: tuple[str, ...],
    pool: Any,
    sentiment_first: bool = False,
) -> tuple:
    """``videoIDs, videoSpeakers, videoLabels, [videoSentiments,] text..., audio, visual...``."""
    head = [d.ids, d.speakers, d.labels] + ([d.sentiments] if sentiment_first else [])
    body = [arrays[f] for f in text + tail]
    return (*head, *body, d.sentences, pool, list(d.splits["test"]))


def write_dialoguegcn(tmp_path: Path) -> Fixture:
    """DialogueGCN ``IEMOCAP_features.pkl``: text 100, audio 100, visual 512; key sets."""
    d = iemocap_dialogues(1)
    arrays = {
        "videoText": d.features(100),
        "videoAudio": d.features(100),
        "videoVisual": d.features(512),
    }
    obj = list(_video(d, arrays, ("videoText",), ("videoAudio", "videoVisual"), set(d.pool)))
    obj[-1] = set(obj[-1])
    path = dump(tmp_path / "IEMOCAP_features.pkl", tuple(obj))
    return Fixture(
        path,
        "dialoguegcn",
        d,
        arrays,
        {"text": "videoText", "audio": "videoAudio", "visual": "videoVisual"},
    )


def write_mmgcn_iemocap(tmp_path: Path) -> Fixture:
    """MMGCN's ``IEMOCAP_features.pkl`` (same name, other content): 100 / 1582 / 342."""
    d = iemocap_dialogues(2)
    arrays = {
        "videoText": d.features(100),
        "videoAudio": d.features(1582),
        "videoVisual": d.features(342),
    }
    obj = _video(d, arrays, ("videoText",), ("videoAudio", "videoVisual"), d.pool)
    path = dump(tmp_path / "IEMOCAP_features.pkl", obj)
    return Fixture(
        path,
        "dialoguegcn",
        d,
        arrays,
        {"text": "videoText", "audio": "videoAudio", "visual": "videoVisual"},
    )


def write_meld_features_raw(tmp_path: Path) -> Fixture:
    """DialogueRNN ``MELD_features_raw.pkl``: no visual, sentiment last; text 600, audio 300."""
    d = meld_dialogues(3)
    arrays = {"videoText": d.features(600), "videoAudio": d.features(300)}
    obj = (
        d.ids,
        d.speakers,
        d.labels,
        arrays["videoText"],
        arrays["videoAudio"],
        d.sentences,
        d.pool,
        list(d.splits["test"]),
        d.sentiments,
    )
    path = dump(tmp_path / "MELD_features_raw.pkl", obj)
    return Fixture(
        path, "meld_features_raw", d, arrays, {"text": "videoText", "audio": "videoAudio"}
    )


def write_mmgcn_meld(tmp_path: Path) -> Fixture:
    """MMGCN ``MELD_features_raw1.pkl``: 10 items, 600 / 300 / 342, trainVid = train ∪ dev."""
    d = meld_dialogues(4)
    arrays = {
        "videoText": d.features(600),
        "videoAudio": d.features(300),
        "videoVisual": d.features(342),
    }
    obj = (*_video(d, arrays, ("videoText",), ("videoAudio", "videoVisual"), d.pool), [])
    path = dump(tmp_path / "MELD_features_raw1.pkl", obj)
    return Fixture(
        path,
        "mmgcn_meld",
        d,
        arrays,
        {"text": "videoText", "audio": "videoAudio", "visual": "videoVisual"},
    )


def write_cosmic_roberta(tmp_path: Path) -> Fixture:
    """COSMIC ``iemocap_features_roberta.pkl``: 10 items, roberta1..4 (1024), explicit valid ids."""
    d = iemocap_dialogues(5)
    arrays = {r: d.features(1024) for r in ROBERTA}
    obj = (
        d.speakers,
        d.labels,
        *(arrays[r] for r in ROBERTA),
        d.sentences,
        d.splits["train"],
        d.splits["test"],
        d.splits["dev"],
    )
    path = dump(tmp_path / "iemocap_features_roberta.pkl", obj)
    return Fixture(path, "cosmic_roberta", d, arrays, {"text": "roberta1"})


def write_cosmic_text(tmp_path: Path) -> Fixture:
    """COSMIC ``iemocap.pkl``: 6 items, no features; labels cycle through ids 0..5 in row order.

    The valid list is a train-range key that a dev carved from the train keys would not pick
    (the last sorted one), so the test tells the two apart.
    """
    d = iemocap_dialogues(12)
    d.splits = {
        "train": ["Ses01M_script02_1", "Ses02F_impro03"],
        "dev": ["Ses01F_impro01"],
        "test": ["Ses05M_impro04"],
    }
    ids = iter(range(len(d.keys) * 6))
    d.labels = {k: [next(ids) % 6 for _ in d.labels[k]] for k in d.keys}
    d.sentences["Ses01F_impro01"][0] = "I\x92m fine"
    obj = [
        d.speakers,
        d.labels,
        d.sentences,
        list(d.splits["train"]),
        list(d.splits["test"]),
        list(d.splits["dev"]),
    ]
    path = dump(tmp_path / "iemocap.pkl", obj)
    return Fixture(path, "cosmic_text", d, {}, {})


def write_cosmic_meld_roberta(tmp_path: Path) -> Fixture:
    """COSMIC ``meld_features_roberta.pkl``: 11 items with sentiment."""
    d = meld_dialogues(6)
    arrays = {r: d.features(1024) for r in ROBERTA}
    obj = [
        d.speakers,
        d.labels,
        d.sentiments,
        *(arrays[r] for r in ROBERTA),
        d.sentences,
        d.splits["train"],
        d.splits["test"],
        d.splits["dev"],
    ]
    path = dump(tmp_path / "meld_features_roberta.pkl", obj)
    return Fixture(path, "cosmic_meld_roberta", d, arrays, {"text": "roberta1"})


_SDT_TEXT = ("videoText", "roberta2", "roberta3", "roberta4")


def write_sdt_iemocap(tmp_path: Path) -> Fixture:
    """SDT ``iemocap_multimodal_features.pkl``: 12 items, 1024 x4 / 1582 / 342."""
    d = iemocap_dialogues(7)
    arrays = {
        **{t: d.features(1024) for t in _SDT_TEXT},
        "videoAudio": d.features(1582),
        "videoVisual": d.features(342),
    }
    obj = _video(d, arrays, _SDT_TEXT, ("videoAudio", "videoVisual"), d.pool)
    path = dump(tmp_path / "iemocap_multimodal_features.pkl", obj)
    return Fixture(
        path,
        "sdt_iemocap",
        d,
        arrays,
        {"text": "videoText", "audio": "videoAudio", "visual": "videoVisual"},
    )


def write_sdt_meld(tmp_path: Path) -> Fixture:
    """SDT-style ``meld_multimodal_features.pkl``: 13 items, 1024 x4 / 300 / 342."""
    d = meld_dialogues(8)
    arrays = {
        **{t: d.features(1024) for t in _SDT_TEXT},
        "videoAudio": d.features(300),
        "videoVisual": d.features(342),
    }
    obj = (*_video(d, arrays, _SDT_TEXT, ("videoAudio", "videoVisual"), d.pool), None)
    path = dump(tmp_path / "meld_multimodal_features.pkl", obj)
    return Fixture(
        path,
        "sdt_meld",
        d,
        arrays,
        {"text": "videoText", "audio": "videoAudio", "visual": "videoVisual"},
    )


def write_graphsmile_meld(tmp_path: Path) -> Fixture:
    """GraphSmile ``meld_multimodal_features.pkl``: 14 items, sentiment 4th."""
    d = meld_dialogues(9)
    text = tuple(f"videoText{i}" for i in range(4))
    arrays = {
        **{t: d.features(1024) for t in text},
        "videoAudio": d.features(300),
        "videoVisual": d.features(342),
    }
    obj = (
        *_video(d, arrays, text, ("videoAudio", "videoVisual"), d.pool, sentiment_first=True),
        [],
    )
    path = dump(tmp_path / "meld_multimodal_features.pkl", obj)
    return Fixture(
        path,
        "graphsmile_meld",
        d,
        arrays,
        {"text": "videoText0", "audio": "videoAudio", "visual": "videoVisual"},
    )


def _multiemo(tmp_path: Path, d: Dialogues, speakers: tuple, layout: str) -> Fixture:
    arrays = {"text": d.features(768), "audio": d.features(512), "visual": d.features(1000)}
    path = dump(tmp_path / "Speakers.pkl", speakers)
    files = {m: dump(tmp_path / f"{m.capitalize()}Features.pkl", arrays[m]) for m in arrays}
    return Fixture(path, layout, d, arrays, {m: m for m in arrays}, files)


def write_multiemo_iemocap(tmp_path: Path) -> Fixture:
    """MultiEMO IEMOCAP: a 9-item Speakers.pkl plus text 768 / audio 512 / visual 1000 dicts."""
    d = iemocap_dialogues(10)
    dummy = {k: np.zeros((len(v), 1), np.float32) for k, v in d.labels.items()}
    arrays = {"videoText": dummy, "videoAudio": dummy, "videoVisual": dummy}
    speakers = _video(d, arrays, ("videoText",), ("videoAudio", "videoVisual"), d.pool)
    return _multiemo(tmp_path, d, speakers, "multiemo(dialoguegcn)")


def write_multiemo_meld(tmp_path: Path) -> Fixture:
    """MultiEMO MELD: a 10-item Speakers.pkl plus the three feature dicts."""
    d = meld_dialogues(11)
    dummy = {k: np.zeros((len(v), 1), np.float32) for k, v in d.labels.items()}
    arrays = {"videoText": dummy, "videoAudio": dummy, "videoVisual": dummy}
    speakers = (*_video(d, arrays, ("videoText",), ("videoAudio", "videoVisual"), d.pool), [])
    return _multiemo(tmp_path, d, speakers, "multiemo(mmgcn_meld)")


#: Fixture name → writer (one folder per fixture: several share a file name).
WRITERS: dict[str, Callable[[Path], Fixture]] = {
    "dialoguegcn": write_dialoguegcn,
    "mmgcn_iemocap": write_mmgcn_iemocap,
    "meld_features_raw": write_meld_features_raw,
    "mmgcn_meld": write_mmgcn_meld,
    "cosmic_roberta": write_cosmic_roberta,
    "cosmic_meld_roberta": write_cosmic_meld_roberta,
    "sdt_iemocap": write_sdt_iemocap,
    "sdt_meld": write_sdt_meld,
    "graphsmile_meld": write_graphsmile_meld,
    "multiemo_iemocap": write_multiemo_iemocap,
    "multiemo_meld": write_multiemo_meld,
}


def data_kwargs(fx: Fixture) -> dict[str, Any]:
    """The ``DataConfig`` keyword arguments that read a fixture."""
    if fx.extra_files:
        return {
            "paths": {"speakers": str(fx.path), **{m: str(p) for m, p in fx.extra_files.items()}}
        }
    return {"path": str(fx.path)}
