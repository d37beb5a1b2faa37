"""The ``meld`` reader: the official MELD CSVs (``{train,dev,test}_sent_emo.csv``).

``data.path`` is the folder holding the three CSVs (default ``meld`` under the data root), or
``data.paths`` maps splits to files (any subset of train/dev/test; the Dyadic-MELD CSVs read the
same way). The files are UTF-8 with CRLF line ends and typographic quotes; text keeps the real
unicode characters (’ “ ”), and cp1252/UTF-8 mojibake, where present, is repaired.

MELD's ``Dialogue_ID`` restarts in every split, so the Corpus dialogue id is
``f"{split}_{Dialogue_ID}"`` (``train_0``, ``dev_0``, ...); ``turn`` is ``Utterance_ID`` (which
has gaps in a few dialogues). Columns: ``text`` (Utterance), ``speaker``, ``label`` (Emotion,
lower case, vocabulary :data:`~ercgraph.data.corpus.MELD_LABELS`), ``sentiment``, ``start``/``end``
in seconds (from ``00:16:16,059``; a short fraction such as ``,28`` reads as 0.28 s), ``season``,
``episode``, ``meld_dialogue_id``, ``meld_utterance_id``, ``sr_no``; any other column is kept.

``data.options.target: sentiment`` reads MELD's three-class task: ``label`` is the sentiment
(vocabulary :data:`~ercgraph.data.corpus.MELD_SENTIMENTS`) and the emotion moves to ``emotion``.

The feature pickles of the literature key MELD dialogues as train ``D``, dev ``D + 1039`` and
test ``D + 1153`` (:data:`MELD_PICKLE_KEY_OFFSETS`); :func:`meld_pickle_key_to_id` maps such a
key to the same dialogue id, so CSVs and pickles line up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ercgraph.config import DataConfig, resolve_data_path
from ercgraph.data.corpus import MELD_LABELS, MELD_SENTIMENTS, Corpus
from ercgraph.data.table import (
    SourceTable,
    check_integers,
    check_not_blank,
    check_options,
    check_unique_keys,
    first_bad,
    normalise_split,
    read_table_file,
    repair_text_column,
)
from ercgraph.errors import ErcgraphError
from ercgraph.registry import READERS

MELD_FILES = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
#: First dialogue key of each split in the MELD feature pickles (DialogueRNN, MMGCN, COSMIC...).
MELD_PICKLE_KEY_OFFSETS = {"train": 0, "dev": 1039, "test": 1153}
MELD_OPTIONS = ("encoding", "clips", "target")
MELD_TARGETS = ("emotion", "sentiment")
#: Folders of the MELD.Raw release, per split, holding ``dia{D}_utt{U}.mp4``.
MELD_CLIP_FOLDERS = {
    "train": "train_splits",
    "dev": "dev_splits_complete",
    "test": "output_repeated_splits_test",
}

_REQUIRED = ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID")
_RENAME = {"Sentiment": "sentiment", "Season": "season", "Episode": "episode", "Sr No.": "sr_no"}
_TIME = r"^\s*(\d+):(\d{1,2}):(\d{1,2})(?:[,.](\d{1,6}))?\s*$"


def meld_dialogue_id(split: str, dialogue: int) -> str:
    """The Corpus dialogue id of MELD dialogue ``dialogue`` of ``split`` (``"dev_3"``)."""
    return f"{split}_{int(dialogue)}"


def meld_pickle_key_to_id(key: int) -> tuple[str, int]:
    """Split and official ``Dialogue_ID`` of a MELD feature-pickle dialogue key.

    Raises:
        ErcgraphError: for a negative or non-integer key.
    """
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or key < 0:
        raise ErcgraphError(f"MELD pickle dialogue key {key!r} is not a non-negative integer")
    if key >= MELD_PICKLE_KEY_OFFSETS["test"]:
        return "test", int(key) - MELD_PICKLE_KEY_OFFSETS["test"]
    if key >= MELD_PICKLE_KEY_OFFSETS["dev"]:
        return "dev", int(key) - MELD_PICKLE_KEY_OFFSETS["dev"]
    return "train", int(key)


def parse_times(src: SourceTable, column: str) -> pd.Series:
    """``H:MM:SS,mmm`` strings as float seconds; an unreadable cell is an error naming it."""
    raw = src.df[column]
    parts = raw.astype("str").str.extract(_TIME)
    bad = parts[0].isna() & raw.notna()
    i = first_bad(bad)
    if i is not None:
        raise ErcgraphError(
            f"{src.where(i)}: column {column!r}: expected a time like '00:16:16,059', got "
            f"{raw.iloc[i]!r}"
        )
    hms = parts[[0, 1, 2]].astype("float64")
    frac = parts[3].fillna("0")
    seconds = frac.astype("float64") / np.power(10.0, frac.str.len().astype("float64"))
    return hms[0] * 3600 + hms[1] * 60 + hms[2] + seconds


def read_meld_file(
    path: Path, split: str, encoding: str = "utf-8", labels: tuple[str, ...] = MELD_LABELS
) -> pd.DataFrame:
    """One official MELD CSV as Corpus-shaped rows of ``split``.

    Raises:
        ErcgraphError: naming the file (and row/column) for a non-UTF-8 file, a missing column,
            an unknown emotion, a non-integer id or a duplicate utterance.
    """
    src = read_table_file(
        path,
        "csv",
        ("Utterance", "Speaker", "Emotion", "Sentiment", "StartTime", "EndTime"),
        encoding,
    )
    src.require(_REQUIRED, "a MELD CSV needs " + ", ".join(_REQUIRED))
    df = src.df
    dia = check_integers(src, "Dialogue_ID", "dialogue id")
    utt = check_integers(src, "Utterance_ID", "utterance id")
    check_unique_keys(src, dia, utt, "Dialogue_ID", "Utterance_ID")
    check_not_blank(src, "Speaker", "speaker")
    check_not_blank(src, "Emotion", "emotion")
    label = df["Emotion"].astype("str").str.strip().str.lower()
    i = first_bad(~label.isin(labels))
    if i is not None:
        raise ErcgraphError(
            f"{src.where(i)}: unknown emotion {df['Emotion'].iloc[i]!r} in column 'Emotion'; "
            f"expected one of {list(labels)}"
        )

    out = pd.DataFrame(
        {
            "split": split,
            "dialogue_id": split + "_" + dia.astype("str"),
            "turn": utt,
            "speaker": df["Speaker"].astype("str").str.strip(),
            "label": label,
            "text": repair_text_column(df["Utterance"].fillna("")),
        }
    )
    for col, name in _RENAME.items():
        if col in df.columns:
            values = df[col]
            out[name] = (
                values.astype("str").str.strip().str.lower() if name == "sentiment" else values
            )
    if "StartTime" in df.columns:
        out["start"] = parse_times(src, "StartTime")
    if "EndTime" in df.columns:
        out["end"] = parse_times(src, "EndTime")
    out["meld_dialogue_id"] = dia
    out["meld_utterance_id"] = utt
    known = set(_REQUIRED) | set(_RENAME) | {"StartTime", "EndTime"}
    for col in df.columns:
        if col not in known and col not in out.columns:
            out[col] = df[col]
    return out


def meld_paths(data: DataConfig, root: Path | None) -> dict[str, Path]:
    """Split → CSV file from ``data.paths`` or the folder ``data.path`` (default ``meld``)."""
    if data.path is not None and data.paths:
        raise ErcgraphError(
            "config: set either data.path (the MELD folder) or data.paths ({split: csv}), not both"
        )
    if data.paths:
        out = {}
        for key, rel in data.paths.items():
            split = normalise_split(key, f"config: data.paths.{key}")
            if split not in MELD_FILES:
                raise ErcgraphError(f"config: data.paths.{key}: MELD splits are train, dev, test")
            out[split] = resolve_data_path(rel, root, f"data.paths.{key}")
        return out
    folder = resolve_data_path(data.path or "meld", root, "data.path")
    if not folder.is_dir():
        raise ErcgraphError(
            f"data.path: {str(folder)!r} is not a folder; the meld reader wants the folder "
            f"holding {', '.join(MELD_FILES.values())} (or data.paths for single files)"
        )
    out = {}
    for split, name in MELD_FILES.items():
        path = folder / name
        if not path.is_file():
            raise ErcgraphError(f"{folder}: missing MELD file {name!r} (the {split} split)")
        out[split] = path
    return out


@READERS.register("meld")
def read_meld(data: DataConfig, root: Path | None) -> Corpus:
    """Read the official MELD CSVs into a Corpus (see the module docstring).

    Args:
        data: The ``data`` config section; ``options.encoding`` overrides UTF-8.
        root: Data root against which relative paths are resolved.
    """
    check_options(data, MELD_OPTIONS, "meld")
    encoding = (data.options or {}).get("encoding", "utf-8")
    target = (data.options or {}).get("target", "emotion")
    if target not in MELD_TARGETS:
        raise ErcgraphError(
            f"config: data.options.target must be one of {list(MELD_TARGETS)}, got {target!r}"
        )
    if target == "sentiment":
        labels = tuple(data.labels) if data.labels else MELD_SENTIMENTS
        unknown = sorted(set(labels) - set(MELD_SENTIMENTS))
        if unknown:
            raise ErcgraphError(
                f"config: data.labels {unknown} are not MELD sentiments {list(MELD_SENTIMENTS)}"
            )
        emotions = MELD_LABELS
    else:
        labels = emotions = tuple(data.labels) if data.labels else MELD_LABELS
    paths = meld_paths(data, root)
    frames = [read_meld_file(path, split, encoding, emotions) for split, path in paths.items()]
    df = pd.concat(frames, ignore_index=True)
    if target == "sentiment":  # the 3-class task: the sentiment is the label
        df["emotion"] = df["label"]
        df["label"] = df["sentiment"]
    source = ", ".join(str(p) for p in paths.values())
    meta: dict = {"reader": "meld"}
    clips = (data.options or {}).get("clips")
    if clips is not None:
        df["video_path"], meta["missing_clips"] = meld_clip_paths(df, clips, root)
    return Corpus(df, data.name or "meld", labels, source, meta)


def meld_clip_paths(df: pd.DataFrame, clips: str, root: Path | None) -> tuple[pd.Series, list]:
    """The clip ``dia{D}_utt{U}.mp4`` of every row in the MELD.Raw split folders.

    A clip that is not there is reported (logged with its path) and left empty, so its audio and
    visual nodes are masked as missing, never zero-filled.
    """
    import logging

    folder = resolve_data_path(clips, root, "data.options.clips")
    for split, sub in MELD_CLIP_FOLDERS.items():
        if split in set(df["split"]) and not (folder / sub).is_dir():
            layout = ", ".join(MELD_CLIP_FOLDERS.values())
            raise ErcgraphError(
                f"data.options.clips: {str(folder)!r} has no {sub!r} folder "
                f"(the MELD.Raw layout has {layout})"
            )
    paths = [
        folder / MELD_CLIP_FOLDERS[sp] / f"dia{d}_utt{u}.mp4"
        for sp, d, u in zip(df["split"], df["meld_dialogue_id"], df["meld_utterance_id"])
    ]
    exists = [p.is_file() for p in paths]
    missing = [str(p) for p, ok in zip(paths, exists) if not ok]
    if missing:
        logging.getLogger(__name__).warning(
            "%d of %d MELD clips are missing (masked), e.g. %s",
            len(missing),
            len(paths),
            ", ".join(missing[:3]),
        )
    return pd.Series(
        [str(p) if ok else None for p, ok in zip(paths, exists)], index=df.index, dtype=object
    ), missing
