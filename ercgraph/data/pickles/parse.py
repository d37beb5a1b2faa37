"""The Corpus of a pickle in a known layout: :func:`parse_layout` and :class:`ParsedPickle`.

**Dataset.** MELD when the layout is MELD-only (7, 9 ``meld_features_raw``, 11, 13, 14) or the
keys are integers (``mmgcn_meld``, MultiEMO's MELD files): keys follow the MELD convention (train
``D``, dev ``D + 1039``, test ``D + 1153``), dialogue ids are those of the meld reader
(``train_12``, ``dev_3``, ``test_0``), speakers are 9-d one-hots read as ``spk{i}`` (``i`` the
hot index, the order of first appearance), labels index
:data:`~ercgraph.data.corpus.MELD_LABELS`, sentiments ``MELD_SENTIMENTS``; extra column
``meld_dialogue_id``. IEMOCAP when every key looks like ``Ses01F_impro01``: the dialogue id is
the key, speakers are the strings (``M``/``F``), labels index
:data:`~ercgraph.data.corpus.IEMOCAP_LABELS` (hap, sad, neu, ang, exc, fru). Anything else
(EmoryNLP, AVEC, your own): the dialogue id is ``str(key)`` and ``data.labels`` must name the
label ids. ``data.labels`` always overrides the default vocabulary; ``data.name`` the dataset
name. In every case ``turn`` is the position in the dialogue, text (``videoSentence`` /
``sentences``) is repaired from cp1252-as-latin-1 mojibake, and extra columns ``pickle_key``
(the raw key) and, when ``videoIDs`` has one entry per utterance, ``utterance_id`` are kept.

**Splits.** Layouts with a validation list use it. Otherwise ``testVid`` is test and
``trainVid`` is train ∪ dev: MELD keys of the dev range (1039 ≤ key < 1153) are dev; for IEMOCAP
and other keys (or a MELD ``trainVid`` without dev-range keys), dev is the *last*
``round(dev_fraction × n)`` train keys in sorted order (at least one when there are two or more
train dialogues; ``dev_fraction`` 0 gives no dev split). With the default 0.1 and the usual
IEMOCAP 120 train dialogues that is the 12 last keys (Session 4 dialogues), a fixed, documented
subset where the reference loaders draw a random one. Key lists that are sets are read sorted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ercgraph.config import DataConfig
from ercgraph.data.corpus import IEMOCAP_LABELS, MELD_LABELS, MELD_SENTIMENTS, Corpus
from ercgraph.data.meld import meld_dialogue_id, meld_pickle_key_to_id
from ercgraph.data.pickles.common import (
    IEMOCAP_KEY,
    _as_keys,
    _check_float,
    _flat_ints,
    _ids_to_names,
    _length,
    _sort_key,
    real_matrix_problem,
)
from ercgraph.data.pickles.layout import PickleLayout
from ercgraph.data.table import repair_text_column
from ercgraph.errors import ErcgraphError


# -- the common parser ----------------------------------------------------------------------------
@dataclass
class ParsedPickle:
    """A parsed pickle: its Corpus plus what is needed to align feature tables to it.

    Args:
        corpus: The Corpus.
        layout: The layout it was read as.
        obj: The unpickled object.
        path: The pickle file.
        keys: Raw dialogue keys in parse order.
        lengths: Utterances per key.
        rows: For each Corpus row, its row in parse order (keys concatenated).
    """

    corpus: Corpus
    layout: PickleLayout
    obj: Sequence[Any]
    path: Path
    keys: list
    lengths: np.ndarray
    rows: np.ndarray

    def feature_matrix(self, table: Any, field: str, source: Path) -> np.ndarray:
        """A per-dialogue feature table as one float32 ``[utterances, dim]`` array in Corpus order.

        Raises:
            ErcgraphError: naming the file, key and field for a missing dialogue, a non-numeric
                or non-2-D array, a row count other than the dialogue's utterance count, a width
                unlike the other dialogues', or a non-finite value.
        """
        if not isinstance(table, dict):
            raise ErcgraphError(
                f"{source}: field {field!r} should be a dict keyed by dialogue, "
                f"got {type(table).__name__}"
            )
        blocks, dim, first = [], None, None
        for key, n in zip(self.keys, self.lengths.tolist()):
            if key not in table:
                raise ErcgraphError(f"{source}: dialogue key {key!r} is missing from {field!r}")
            problem = real_matrix_problem(table[key])
            if problem:
                raise ErcgraphError(
                    f"{source}: dialogue key {key!r}: field {field!r} is not a numeric "
                    f"[utterances, dim] array: it holds {problem}; features are real numbers"
                )
            try:
                with np.errstate(over="ignore"):  # too large for float32: refused below
                    block = np.asarray(table[key]).astype(np.float32, copy=False)
            except (TypeError, ValueError):
                raise ErcgraphError(
                    f"{source}: dialogue key {key!r}: field {field!r} is not a numeric "
                    f"[utterances, dim] array"
                ) from None
            if block.ndim != 2:
                raise ErcgraphError(
                    f"{source}: dialogue key {key!r}: field {field!r} should be an [utterances, "
                    f"dim] array, got shape {block.shape}"
                )
            if block.shape[0] != n:
                raise ErcgraphError(
                    f"{source}: dialogue key {key!r}: field {field!r} has {block.shape[0]} "
                    f"feature rows, expected {n} (one per utterance)"
                )
            if dim is None:
                dim, first = block.shape[1], key
            elif block.shape[1] != dim:
                raise ErcgraphError(
                    f"{source}: field {field!r}: dialogue key {key!r} has {block.shape[1]}-d "
                    f"features but dialogue key {first!r} has {dim}-d (one width per field)"
                )
            blocks.append(block)
        x = np.concatenate(blocks)
        finite = np.isfinite(x).all(axis=1)
        if not finite.all():
            i = int(np.flatnonzero(~finite)[0])
            starts = np.cumsum(self.lengths) - self.lengths
            k = int(np.searchsorted(starts, i, side="right") - 1)
            raise ErcgraphError(
                f"{source}: dialogue key {self.keys[k]!r}, utterance {i - int(starts[k])}: field "
                f"{field!r} has a non-finite value"
            )
        return x[self.rows]


def _carve_dev(train: list, fraction: float) -> tuple[list, list]:
    """Split train keys into (train, dev): dev = the last ``round(fraction * n)`` sorted keys."""
    n = len(train)
    n_dev = int(np.floor(fraction * n + 0.5))
    if fraction > 0 and n >= 2:
        n_dev = min(max(n_dev, 1), n - 1)
    else:
        n_dev = 0
    dev = set(sorted(train, key=_sort_key)[n - n_dev :]) if n_dev else set()
    return [k for k in train if k not in dev], [k for k in train if k in dev]


def parse_layout(
    obj: Sequence[Any], path: Path, data: DataConfig, layout: PickleLayout
) -> ParsedPickle:
    """Build the Corpus of an object known to be in ``layout`` (see the module docstring).

    Raises:
        ErcgraphError: naming the file, field and dialogue key of any inconsistency.
    """
    fraction = _check_float(
        (data.options or {}).get("dev_fraction", 0.1), "data.options.dev_fraction", 0.0, 1.0
    )
    field = {name: obj[i] for i, name in enumerate(layout.fields)}
    tables = [
        (name, field[name])
        for name in (layout.speakers, layout.labels, layout.sentiments, layout.sentences)
        if name is not None
    ]
    lists = {
        "train": _as_keys(field[layout.train], layout.train, path),
        "test": _as_keys(field[layout.test], layout.test, path),
    }
    if layout.dev is not None:
        lists["dev"] = _as_keys(field[layout.dev], layout.dev, path)
    list_field = {"train": layout.train, "test": layout.test, "dev": layout.dev}
    all_keys = [k for keys in lists.values() for k in keys]
    if not all_keys:
        raise ErcgraphError(f"{path}: the pickle lists no dialogue keys")
    if layout.meld or all(_sort_key(k)[0] == 0 for k in all_keys):
        dataset = "meld"
    elif all(isinstance(k, str) and IEMOCAP_KEY.match(k) for k in all_keys):
        dataset = "iemocap"
    else:
        dataset = "other"

    # every key: its split, from the lists (and the MELD key ranges)
    owner: dict[Any, str] = {}
    split_of: dict[Any, str] = {}
    range_of: dict[Any, tuple[str, int]] = {}
    for split in ("train", "dev", "test"):
        for key in lists.get(split, ()):
            name = list_field[split]
            if key in owner:
                raise ErcgraphError(
                    f"{path}: dialogue key {key!r} is in both {owner[key]!r} and {split!r} ids"
                )
            owner[key] = split
            for table_name, table in tables:
                if key not in table:
                    raise ErcgraphError(
                        f"{path}: dialogue key {key!r} of {name!r} is missing from {table_name!r}"
                    )
            if dataset == "meld":
                try:
                    range_of[key] = meld_pickle_key_to_id(key)
                except ErcgraphError as exc:
                    raise ErcgraphError(
                        f"{path}: {exc}; expected the {layout.title} layout (MELD integer keys)"
                    ) from None
                in_range = range_of[key][0]
                allowed = (
                    (split,) if layout.dev is not None or split == "test" else ("train", "dev")
                )
                if in_range not in allowed:
                    raise ErcgraphError(
                        f"{path}: dialogue key {key!r} is listed in {name!r} but MELD keys of "
                        f"that range belong to {in_range!r} (train D, dev D+1039, test D+1153)"
                    )
                split_of[key] = in_range
            else:
                split_of[key] = split
    train = [k for k in lists["train"] if split_of[k] == "train"]
    dev = [k for k in lists.get("dev", lists["train"]) if split_of[k] == "dev"]
    if layout.dev is None and not dev:
        train, dev = _carve_dev(train, fraction)
    order = (
        [("train", k) for k in train]
        + [("dev", k) for k in dev]
        + [("test", k) for k in lists["test"]]
    )
    keys = [k for _, k in order]

    # one entry per utterance in every per-utterance field
    ref_name = layout.sentences or layout.labels
    ref = field[ref_name]
    lengths = []
    for key in keys:
        n = _length(ref[key])
        if n is None:
            raise ErcgraphError(
                f"{path}: dialogue key {key!r}: {ref_name!r} should be a list "
                f"with one entry per utterance"
            )
        for name, table in tables:
            m = _length(table[key])
            if m != n:
                raise ErcgraphError(
                    f"{path}: dialogue key {key!r}: {name!r} has {m} entries but {ref_name!r} "
                    f"has {n}"
                )
        if n == 0:
            raise ErcgraphError(f"{path}: dialogue key {key!r} has no utterances")
        lengths.append(n)
    lengths_arr = np.asarray(lengths, dtype=np.int64)
    row_key = np.repeat(np.arange(len(keys)), lengths_arr)
    turn = np.arange(len(row_key)) - np.repeat(np.cumsum(lengths_arr) - lengths_arr, lengths_arr)

    def where(i: int) -> str:
        return f"dialogue key {keys[row_key[i]]!r}, utterance {int(turn[i])}"

    speaker = _speakers(field[layout.speakers], keys, layout.speakers, path, where)
    labels = _label_names(data, dataset, path)
    columns: dict[str, Any] = {
        "split": np.repeat(np.asarray([s for s, _ in order], dtype=object), lengths_arr),
        "dialogue_id": None,
        "turn": turn,
        "speaker": speaker,
        "label": _ids_to_names(
            _flat_ints(field[layout.labels], keys, layout.labels, path),
            labels,
            "emotion",
            path,
            where,
        ),
    }
    if layout.sentences is not None:
        text = pd.Series([str(s) for k in keys for s in field[layout.sentences][k]], dtype="str")
        columns["text"] = repair_text_column(text)
    if layout.sentiments is not None:
        sent = _flat_ints(field[layout.sentiments], keys, layout.sentiments, path)
        columns["sentiment"] = _ids_to_names(sent, MELD_SENTIMENTS, "sentiment", path, where)
    if dataset == "meld":
        meld_ids = np.asarray([range_of[k][1] for k in keys], dtype=np.int64)
        dialogue_ids = np.asarray(
            [meld_dialogue_id(range_of[k][0], d) for k, d in zip(keys, meld_ids)], dtype=object
        )
        columns["meld_dialogue_id"] = meld_ids[row_key]
    else:
        dialogue_ids = np.asarray([str(k) for k in keys], dtype=object)
    columns["dialogue_id"] = dialogue_ids[row_key]
    pickle_keys = np.empty(len(keys), dtype=object)
    pickle_keys[:] = keys
    columns["pickle_key"] = pickle_keys[row_key]
    ids = field.get(layout.ids) if layout.ids is not None else None
    if isinstance(ids, dict) and all(
        k in ids and _length(ids[k]) == n for k, n in zip(keys, lengths)
    ):
        columns["utterance_id"] = [str(u) for k in keys for u in ids[k]]

    name = data.name or (dataset if dataset != "other" else path.stem)
    corpus = Corpus(
        pd.DataFrame(columns),
        name,
        labels,
        str(path),
        {"reader": "pickle", "layout": layout.name, "dataset": dataset},
    )
    raw = pd.MultiIndex.from_arrays([columns["dialogue_id"], turn])
    rows = raw.get_indexer(
        pd.MultiIndex.from_arrays(
            [corpus.df["dialogue_id"].to_numpy(), corpus.df["turn"].to_numpy()]
        )
    )
    return ParsedPickle(corpus, layout, obj, path, keys, lengths_arr, rows)


def _speakers(
    table: dict, keys: list, field: str, path: Path, where: Callable[[int], str]
) -> np.ndarray:
    """Speaker names per utterance: the strings themselves, or ``spk{i}`` for one-hot vectors."""
    flat = [h for k in keys for h in table[k]]
    if all(isinstance(s, str) for s in flat):
        return np.asarray(flat, dtype=object)
    try:  # checked before numpy follows nested lists (a list containing itself)
        hot = np.zeros(0) if real_matrix_problem(flat) else np.asarray(flat, dtype=np.float64)
    except (TypeError, ValueError):
        hot = np.zeros(0)
    if hot.ndim != 2:
        raise ErcgraphError(
            f"{path}: {field!r} should hold one speaker name or one-hot vector per utterance"
        )
    not_one_hot = ((hot != 0) & (hot != 1)).any(axis=1) | (hot.sum(axis=1) != 1)
    if not_one_hot.any():
        i = int(np.flatnonzero(not_one_hot)[0])
        raise ErcgraphError(
            f"{path}: {where(i)}: speaker {hot[i].tolist()} is not a one-hot vector"
        )
    return np.char.add("spk", hot.argmax(axis=1).astype(str)).astype(object)


def _label_names(data: DataConfig, dataset: str, path: Path) -> tuple[str, ...]:
    if data.labels:
        return tuple(data.labels)
    if dataset == "meld":
        return MELD_LABELS
    if dataset == "iemocap":
        return IEMOCAP_LABELS
    raise ErcgraphError(
        f"{path}: the dialogue keys are neither MELD's (integers) nor IEMOCAP's "
        f"('Ses01F_impro01'), so the label names are unknown; set data.labels to the names of "
        f"the label ids in order"
    )
