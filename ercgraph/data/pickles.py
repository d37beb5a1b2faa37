"""The ``pickle`` reader: the conversation pickles of the ERC literature.

Pickles are loaded through :func:`~ercgraph.data.safe_pickle.safe_load` (no code runs) and
recognised by their layout: the top-level object is a list/tuple whose length tells the layout
apart (see ``shared/data/FEATURE_PICKLES.md``). :data:`LAYOUTS` maps a length to a parser; a
length that is not there is an error listing the known layouts.

Known layouts:

* 7 items, COSMIC's MELD text/label input (``meld.pkl``): ``[speakers, emotion_labels,
  sentiment_labels, sentences, train_ids, test_ids, valid_ids]``; dicts keyed by the MELD pickle
  key (train ``D``, dev ``D + 1039``, test ``D + 1153``). Dialogue ids follow the meld reader
  (``train_0``, ``dev_0``, ...), so the CSVs and the pickle line up. ``turn`` is the position in
  the dialogue (0, 1, ...; the CSV's ``Utterance_ID`` has gaps in a few dialogues, the pickle
  does not keep it). ``speaker`` is ``spk{i}`` with ``i`` the hot index of the 9-dim one-hot
  (order of first appearance in the dialogue). Labels and sentiments are ids into
  :data:`~ercgraph.data.corpus.MELD_LABELS` / ``MELD_SENTIMENTS``; text is repaired from cp1252
  decoded as latin-1 (``\\x92`` → ’). Extra columns: ``meld_dialogue_id``, ``pickle_key``.

``data.options``: ``encoding`` (of Python-2 strings, default ``latin1`` as the reference loaders).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ercgraph.config import DataConfig, resolve_data_path
from ercgraph.data.corpus import MELD_LABELS, MELD_SENTIMENTS, Corpus
from ercgraph.data.meld import meld_dialogue_id, meld_pickle_key_to_id
from ercgraph.data.safe_pickle import safe_load
from ercgraph.data.table import check_options, repair_text_column
from ercgraph.errors import ErcgraphError
from ercgraph.registry import READERS

PICKLE_OPTIONS = ("encoding",)


@dataclass(frozen=True)
class PickleLayout:
    """One known pickle layout: how to recognise it in messages and how to parse it.

    Args:
        name: Short name (``cosmic_meld_text``).
        fields: The field names in order, as the reference loaders call them.
        parse: ``(obj, path, data) -> Corpus``.
    """

    name: str
    fields: tuple[str, ...]
    parse: Callable[[Sequence[Any], Path, DataConfig], Corpus]

    def describe(self) -> str:
        return f"{len(self.fields)} items ({self.name}: {', '.join(self.fields)})"


# -- COSMIC MELD text/labels (7 items) ------------------------------------------------------------
def _as_dict(obj: Any, field: str, path: Path) -> dict:
    if not isinstance(obj, dict):
        raise ErcgraphError(
            f"{path}: field {field!r} should be a dict keyed by dialogue, got {type(obj).__name__}")
    return obj


def _as_keys(obj: Any, field: str, path: Path) -> list:
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    if not isinstance(obj, (list, tuple, set, frozenset)):
        raise ErcgraphError(
            f"{path}: field {field!r} should be a list of dialogue keys, got {type(obj).__name__}")
    return list(obj)


def _flat_ints(table: dict, keys: list, field: str, path: Path) -> np.ndarray:
    """All dialogues' integer ids of one field, concatenated in key order."""
    try:
        values = np.asarray([v for k in keys for v in table[k]])
        if values.dtype.kind not in "iu":
            raise TypeError(values.dtype)
    except (TypeError, ValueError):
        raise ErcgraphError(f"{path}: field {field!r} should hold integer ids") from None
    return values.astype(np.int64)


def _ids_to_names(ids: np.ndarray, names: Sequence[str], field: str, path: Path,
                  where: Callable[[int], str]) -> np.ndarray:
    bad = (ids < 0) | (ids >= len(names))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ErcgraphError(
            f"{path}: {where(i)}: {field} id {int(ids[i])} is outside 0..{len(names) - 1} "
            f"({list(names)})")
    return np.asarray(names, dtype=object)[ids]


def _parse_cosmic_meld(obj: Sequence[Any], path: Path, data: DataConfig) -> Corpus:
    fields = LAYOUTS[7].fields
    speakers, emotions, sentiments, sentences = (
        _as_dict(obj[i], fields[i], path) for i in range(4))
    split_keys = {"train": _as_keys(obj[4], fields[4], path),
                  "test": _as_keys(obj[5], fields[5], path),
                  "dev": _as_keys(obj[6], fields[6], path)}

    # every key: its split from the id lists, checked against the MELD key ranges
    order: list[tuple[str, Any]] = []
    owner: dict[Any, str] = {}
    for split in ("train", "dev", "test"):
        field = {"train": fields[4], "dev": fields[6], "test": fields[5]}[split]
        for key in split_keys[split]:
            if key in owner:
                raise ErcgraphError(
                    f"{path}: dialogue key {key!r} is in both {owner[key]!r} and {split!r} ids")
            owner[key] = split
            for name, table in zip(fields[:4], (speakers, emotions, sentiments, sentences)):
                if key not in table:
                    raise ErcgraphError(
                        f"{path}: dialogue key {key!r} of {field!r} is missing from {name!r}")
            try:
                range_split, _ = meld_pickle_key_to_id(key)
            except ErcgraphError as exc:
                raise ErcgraphError(f"{path}: {exc}; expected the COSMIC MELD layout") from None
            if range_split != split:
                raise ErcgraphError(
                    f"{path}: dialogue key {key!r} is listed in {field!r} but MELD keys of that "
                    f"range belong to {range_split!r} (train D, dev D+1039, test D+1153)")
            order.append((split, key))
    if not order:
        raise ErcgraphError(f"{path}: the pickle lists no dialogue keys")

    lengths = []
    for _, key in order:
        n = len(sentences[key])
        for name, table in zip(fields[:3], (speakers, emotions, sentiments)):
            if len(table[key]) != n:
                raise ErcgraphError(
                    f"{path}: dialogue key {key!r}: {name!r} has {len(table[key])} entries but "
                    f"{fields[3]!r} has {n}")
        if n == 0:
            raise ErcgraphError(f"{path}: dialogue key {key!r} has no utterances")
        lengths.append(n)
    lengths_arr = np.asarray(lengths, dtype=np.int64)
    keys = [k for _, k in order]
    row_key = np.repeat(np.arange(len(keys)), lengths_arr)
    turn = np.arange(len(row_key)) - np.repeat(np.cumsum(lengths_arr) - lengths_arr, lengths_arr)

    def where(i: int) -> str:
        return f"dialogue key {keys[row_key[i]]!r}, utterance {int(turn[i])}"

    try:
        hot = np.asarray([h for k in keys for h in speakers[k]], dtype=np.float64)
    except (TypeError, ValueError):
        raise ErcgraphError(
            f"{path}: {fields[0]!r} should hold one one-hot vector per utterance") from None
    if hot.ndim != 2:
        raise ErcgraphError(
            f"{path}: {fields[0]!r} should hold one one-hot vector per utterance, got shape "
            f"{hot.shape}")
    not_one_hot = ((hot != 0) & (hot != 1)).any(axis=1) | (hot.sum(axis=1) != 1)
    if not_one_hot.any():
        i = int(np.flatnonzero(not_one_hot)[0])
        raise ErcgraphError(
            f"{path}: {where(i)}: speaker {hot[i].tolist()} is not a one-hot vector")
    speaker = np.char.add("spk", hot.argmax(axis=1).astype(str))

    labels = tuple(data.labels) if data.labels else MELD_LABELS
    emo = _flat_ints(emotions, keys, fields[1], path)
    sent = _flat_ints(sentiments, keys, fields[2], path)
    text = pd.Series([s for k in keys for s in sentences[k]], dtype="str")

    splits = np.repeat(np.asarray([s for s, _ in order], dtype=object), lengths_arr)
    meld_ids = np.asarray([meld_pickle_key_to_id(k)[1] for k in keys], dtype=np.int64)
    dialogue_ids = np.asarray([meld_dialogue_id(s, d) for (s, _), d in zip(order, meld_ids)],
                              dtype=object)
    df = pd.DataFrame({
        "split": splits,
        "dialogue_id": dialogue_ids[row_key],
        "turn": turn,
        "speaker": speaker,
        "label": _ids_to_names(emo, labels, "emotion", path, where),
        "text": repair_text_column(text),
        "sentiment": _ids_to_names(sent, MELD_SENTIMENTS, "sentiment", path, where),
        "meld_dialogue_id": meld_ids[row_key],
        "pickle_key": np.asarray(keys)[row_key],
    })
    return Corpus(df, data.name or "meld", labels, str(path),
                  {"reader": "pickle", "layout": LAYOUTS[7].name})


#: Tuple length → layout. Feature-pickle layouts (9/10/12/13/14 items) are added here.
LAYOUTS: dict[int, PickleLayout] = {
    7: PickleLayout(
        "cosmic_meld_text",
        ("speakers", "emotion_labels", "sentiment_labels", "sentences", "train_ids", "test_ids",
         "valid_ids"),
        _parse_cosmic_meld,
    ),
}


def detect_layout(obj: Any, path: Path) -> PickleLayout:
    """The layout of an unpickled object, by its length.

    Raises:
        ErcgraphError: for a non-sequence or an unknown length, listing the known layouts.
    """
    known = "; ".join(layout.describe() for _, layout in sorted(LAYOUTS.items()))
    if not isinstance(obj, (list, tuple)):
        raise ErcgraphError(
            f"{path}: unknown pickle layout: the top level is a {type(obj).__name__}, expected a "
            f"list/tuple; known layouts: {known}")
    if len(obj) not in LAYOUTS:
        raise ErcgraphError(
            f"{path}: unknown pickle layout: a {type(obj).__name__} of {len(obj)} items; known "
            f"layouts: {known}")
    return LAYOUTS[len(obj)]


@READERS.register("pickle")
def read_pickle(data: DataConfig, root: Path | None) -> Corpus:
    """Read a conversation pickle (layout chosen by its length; see the module docstring).

    Args:
        data: The ``data`` config section; ``path`` is the pickle file.
        root: Data root against which a relative path is resolved.

    Raises:
        ErcgraphError: for a disallowed/corrupt pickle, an unknown layout, or inconsistent fields.
    """
    check_options(data, PICKLE_OPTIONS, "pickle")
    if data.paths:
        raise ErcgraphError("config: the pickle reader reads one file: set data.path, "
                            "not data.paths")
    path = resolve_data_path(data.path, root, "data.path")
    if not path.is_file():
        raise ErcgraphError(f"data.path: {str(path)!r} is not a file (the pickle reader wants "
                            f"one .pkl file)")
    obj = safe_load(path, encoding=(data.options or {}).get("encoding", "latin1"))
    layout = detect_layout(obj, path)
    return layout.parse(obj, path, data)
