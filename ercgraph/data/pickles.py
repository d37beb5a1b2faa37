"""The ``pickle`` reader: the conversation and feature pickles of the ERC literature.

Pickles are loaded through :func:`~ercgraph.data.safe_pickle.safe_load` (no code runs) and
recognised by their layout (see ``shared/data/FEATURE_PICKLES.md``): the top-level object is a
list/tuple whose length tells the layout apart; where two layouts share a length, the content
decides (below). :data:`LAYOUTS` maps a length to its layout; a length that is not there, or
items of the wrong kind (a dict expected, say), is an error listing the known layouts.
:func:`read_pickle_features` returns the Corpus and a
:class:`~ercgraph.data.features.FeatureStore`; the registered ``pickle`` reader
(:func:`read_pickle`) returns the Corpus only and never builds feature matrices.

Known layouts (dicts keyed by dialogue, one entry per utterance, in order):

* 7, ``cosmic_meld_text``: COSMIC's MELD text/label input (``meld.pkl``): ``speakers,
  emotion_labels, sentiment_labels, sentences, train_ids, test_ids, valid_ids``. No features.
* 9, ``dialoguegcn``: DialogueRNN/DialogueGCN/bc-LSTM and MMGCN ``IEMOCAP_features(_raw).pkl``:
  ``videoIDs, videoSpeakers, videoLabels, videoText, videoAudio, videoVisual, videoSentence,
  trainVid, testVid`` (text 100/audio 100/visual 512 or text 100/audio 1582/visual 342, and
  GraphSmile's IEMOCAP4 with 1024-d text: dims are read from the arrays, never the file name).
* 9, ``meld_features_raw``: DialogueRNN's ``MELD_features_raw.pkl``, no visual: ``videoIDs,
  videoSpeakers, videoLabels, videoText, videoAudio, videoSentence, trainVid, testVid,
  videoSentiment``. Told from ``dialoguegcn`` by item 5: sentences (lists of strings) here,
  visual vectors there; when item 5 is empty, by item 8 being a dict (sentiments) rather than a
  key list.
* 10, ``mmgcn_meld``: MMGCN/MM-DFN/M3Net ``MELD_features_raw1.pkl``: ``videoIDs, videoSpeakers,
  videoLabels, videoText, videoAudio, videoVisual, videoSentence, trainVid, testVid, _`` (the
  last item is ignored, as the reference loaders do).
* 10, ``cosmic_roberta``: COSMIC ``iemocap/emorynlp/dailydialog_features_roberta.pkl``:
  ``speakers, labels, roberta1, roberta2, roberta3, roberta4, sentences, trainIds, testIds,
  validIds``. Told from ``mmgcn_meld`` by item 2: vectors (roberta1) here, label ids there.
* 11, ``cosmic_meld_roberta``: COSMIC ``meld_features_roberta.pkl``: ``speakers,
  emotion_labels, sentiment_labels, roberta1..4, sentences, trainIds, testIds, validIds``.
* 12, ``sdt_iemocap``: SDT/CFN-ESA/GraphSmile ``iemocap_multimodal_features.pkl``: ``videoIDs,
  videoSpeakers, videoLabels, videoText, roberta2, roberta3, roberta4, videoAudio, videoVisual,
  videoSentence, trainVid, testVid`` (``videoText`` is roberta1).
* 13, ``sdt_meld``: SDT-style ``meld_multimodal_features.pkl``: as ``sdt_iemocap`` plus ``_``.
* 14, ``graphsmile_meld``: GraphSmile/CFN-ESA ``meld_multimodal_features.pkl``: ``videoIDs,
  videoSpeakers, videoLabels, videoSentiments, videoText0..3, videoAudio, videoVisual,
  videoSentence, trainVid, testVid, _``.
* MultiEMO (separate files): ``data.paths`` = ``{speakers: Speakers.pkl, text: TextFeatures.pkl,
  audio: AudioFeatures.pkl, visual: VisualFeatures.pkl}`` (any of text/audio/visual). The
  speakers file is read as one of the layouts above (MultiEMO ships the 9/10-item ones); only
  its utterances, speakers, labels and splits are used. Each modality file is a dict keyed by
  the same dialogue keys.

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

**Features.** Modalities are ``text``, ``audio`` and ``visual`` (those the layout has), float32
``[utterances, dim]`` in Corpus row order, all present. Every dialogue's array must have one row
per utterance and the same width as the others; dims are inferred from the arrays. ``text`` is
``roberta1`` (``videoText`` / ``videoText0``) by default; ``data.options.text_fields`` (a list, or
one name) names one or more text fields (``roberta1``..``roberta4`` work for every RoBERTa layout,
as do the layout's own names), combined by ``data.options.text_combine``: ``concat`` (default; dims
add up, 4096 for all four) or ``mean`` (element-wise average; dims must agree). The manifest of a
modality is ``{"encoder": "pickle:<layout>:<field>", "file", "sha256", "dim", "corpus"}`` where
``<field>`` is ``roberta1+roberta2`` for a concatenation and ``mean(roberta1,roberta2)`` for an
average, and ``corpus`` is the Corpus fingerprint.

``data.options``: ``encoding`` (of Python-2 strings, default ``latin1`` as the reference
loaders), ``dev_fraction`` (default 0.1; always checked, used where the layout has no
validation list), ``text_fields``, ``text_combine`` (an error for a layout without features).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ercgraph.config import DataConfig, resolve_data_path
from ercgraph.data.corpus import IEMOCAP_LABELS, MELD_LABELS, MELD_SENTIMENTS, Corpus
from ercgraph.data.meld import meld_dialogue_id, meld_pickle_key_to_id
from ercgraph.data.safe_pickle import safe_load
from ercgraph.data.table import check_options, repair_text_column
from ercgraph.errors import ErcgraphError
from ercgraph.registry import READERS

if TYPE_CHECKING:  # FeatureStore imports torch; reading a corpus must not
    from ercgraph.data.features import FeatureStore

PICKLE_OPTIONS = ("encoding", "dev_fraction", "text_fields", "text_combine")
MULTIEMO_PATHS = ("speakers", "text", "audio", "visual")
TEXT_COMBINE = ("concat", "mean")
IEMOCAP_KEY = re.compile(r"^Ses\d{2}[MF]_")
_ROBERTA = tuple(f"roberta{i}" for i in range(1, 5))


@dataclass(frozen=True)
class PickleLayout:
    """One known pickle layout: its fields and the role each one plays.

    Args:
        name: Short name (``dialoguegcn``), used in messages and manifests.
        fields: The field names in order, as the reference loaders call them.
        title: What it is, for messages (``COSMIC MELD text/label``).
        speakers, labels, train, test: Names of the fields holding those.
        dev: The validation key list, or None when ``train`` holds train ∪ dev.
        sentiments, sentences, ids: Optional per-utterance fields.
        text: Text feature fields; the first is the default ``text`` modality.
        audio, visual: Audio/visual feature fields (None: the layout has none).
        aliases: ``(alias, field)`` pairs accepted in ``data.options.text_fields``.
        meld: The layout is MELD-only (keys must follow the MELD convention).
        alternatives: Layouts of the same length, chosen when their ``matches`` says so.
        matches: ``obj -> bool``, whether an object of this length is this layout.
    """

    name: str
    fields: tuple[str, ...]
    title: str
    speakers: str
    labels: str
    train: str
    test: str
    dev: str | None = None
    sentiments: str | None = None
    sentences: str | None = None
    ids: str | None = None
    text: tuple[str, ...] = ()
    audio: str | None = None
    visual: str | None = None
    aliases: tuple[tuple[str, str], ...] = ()
    meld: bool = False
    alternatives: tuple[PickleLayout, ...] = ()
    matches: Callable[[Sequence[Any]], bool] | None = None

    def describe(self) -> str:
        variants = (self, *self.alternatives)
        inner = " | ".join(f"{v.name}: {', '.join(v.fields)}" for v in variants)
        return f"{len(self.fields)} items ({inner})"

    def index(self, field: str) -> int:
        return self.fields.index(field)

    @property
    def table_fields(self) -> tuple[str, ...]:
        """Fields that must be dicts keyed by dialogue."""
        named = (
            self.speakers,
            self.labels,
            self.sentiments,
            self.sentences,
            self.ids,
            *self.text,
            self.audio,
            self.visual,
        )
        return tuple(f for f in named if f is not None)

    @property
    def key_fields(self) -> tuple[str, ...]:
        return tuple(f for f in (self.train, self.test, self.dev) if f is not None)

    def resolve_text(self, names: Sequence[str]) -> list[str]:
        """Field names for ``data.options.text_fields`` entries (aliases resolved)."""
        alias = dict(self.aliases)
        out = []
        for name in names:
            field = alias.get(name, name)
            if field not in self.text:
                known = sorted(set(self.text) | {a for a, f in self.aliases if f in self.text})
                raise ErcgraphError(
                    f"config: data.options.text_fields: {name!r} is not a text field of the "
                    f"{self.name} layout; available: {', '.join(known)}"
                )
            out.append(field)
        return out


# -- content probes (choose between layouts of one length) ---------------------------------------
def _first_value(table: Any) -> Any:
    if isinstance(table, dict):
        for value in table.values():
            return value
    return None


def _kind(table: Any) -> str:
    """What the first dialogue of a table holds: ``str``, ``vectors``, ``scalars`` or ``other``."""
    value = _first_value(table)
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "US":
            return "str"
        if value.dtype.kind in "biuf":
            return {1: "scalars", 2: "vectors"}.get(value.ndim, "other")
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not value:
        return "other"
    first = value[0]
    if isinstance(first, (str, bytes)):
        return "str"
    if isinstance(first, (list, tuple, np.ndarray)):
        return "vectors"
    if isinstance(first, (int, float, np.integer, np.floating)):
        return "scalars"
    return "other"


def _is_meld_features_raw(obj: Sequence[Any]) -> bool:
    kind = _kind(obj[5])
    if kind in ("str", "vectors"):
        return kind == "str"
    return isinstance(obj[8], dict)


def _is_cosmic_roberta(obj: Sequence[Any]) -> bool:
    return _kind(obj[2]) == "vectors"


# -- field helpers --------------------------------------------------------------------------------
def _as_keys(obj: Any, field: str, path: Path) -> list:
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    if isinstance(obj, (set, frozenset)):
        obj = sorted(obj, key=_sort_key)
    if not isinstance(obj, (list, tuple)):
        raise ErcgraphError(
            f"{path}: field {field!r} should be a list of dialogue keys, got {type(obj).__name__}"
        )
    return list(obj)


def _sort_key(key: Any) -> tuple[int, int, str]:
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return 0, int(key), ""
    return 1, 0, str(key)


def _flat_ints(table: dict, keys: list, field: str, path: Path) -> np.ndarray:
    """All dialogues' integer ids of one field, concatenated in key order."""
    try:
        values = np.asarray([v for k in keys for v in table[k]])
        if values.dtype.kind not in "iu":
            raise TypeError(values.dtype)
    except (TypeError, ValueError):
        raise ErcgraphError(f"{path}: field {field!r} should hold integer ids") from None
    return values.astype(np.int64)


def _ids_to_names(
    ids: np.ndarray, names: Sequence[str], field: str, path: Path, where: Callable[[int], str]
) -> np.ndarray:
    bad = (ids < 0) | (ids >= len(names))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ErcgraphError(
            f"{path}: {where(i)}: {field} id {int(ids[i])} is outside 0..{len(names) - 1} "
            f"({list(names)})"
        )
    return np.asarray(names, dtype=object)[ids]


def _length(value: Any) -> int | None:
    try:
        return len(value)
    except TypeError:
        return None


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 4 MiB chunks."""
    h = hashlib.sha256()
    buf = bytearray(4 << 20)
    view = memoryview(buf)
    with path.open("rb") as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


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
            try:
                block = np.asarray(table[key], dtype=np.float32)
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


def _check_float(value: Any, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value < high):
        raise ErcgraphError(f"config: {what} must be a number in [{low}, {high}), got {value!r}")
    return float(value)


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
    try:
        hot = np.asarray(flat, dtype=np.float64)
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


# -- the layouts ----------------------------------------------------------------------------------
_ROBERTA_ALIASES = tuple(zip(_ROBERTA, _ROBERTA))
_SDT_TEXT = ("videoText", "roberta2", "roberta3", "roberta4")
_GRAPHSMILE_TEXT = tuple(f"videoText{i}" for i in range(4))
_DGCN_FIELDS = (
    "videoIDs",
    "videoSpeakers",
    "videoLabels",
    "videoText",
    "videoAudio",
    "videoVisual",
    "videoSentence",
    "trainVid",
    "testVid",
)
_VIDEO = {
    "speakers": "videoSpeakers",
    "labels": "videoLabels",
    "train": "trainVid",
    "test": "testVid",
    "sentences": "videoSentence",
    "ids": "videoIDs",
}
_COSMIC = {
    "speakers": "speakers",
    "train": "trainIds",
    "test": "testIds",
    "dev": "validIds",
    "sentences": "sentences",
    "text": _ROBERTA,
    "aliases": _ROBERTA_ALIASES,
}

MELD_FEATURES_RAW = PickleLayout(
    "meld_features_raw",
    (
        "videoIDs",
        "videoSpeakers",
        "videoLabels",
        "videoText",
        "videoAudio",
        "videoSentence",
        "trainVid",
        "testVid",
        "videoSentiment",
    ),
    "DialogueRNN MELD_features_raw",
    sentiments="videoSentiment",
    text=("videoText",),
    audio="videoAudio",
    meld=True,
    matches=_is_meld_features_raw,
    **_VIDEO,
)
COSMIC_ROBERTA = PickleLayout(
    "cosmic_roberta",
    ("speakers", "labels", *_ROBERTA, "sentences", "trainIds", "testIds", "validIds"),
    "COSMIC RoBERTa features",
    labels="labels",
    matches=_is_cosmic_roberta,
    **_COSMIC,
)

#: Tuple length → layout (with its same-length alternatives).
LAYOUTS: dict[int, PickleLayout] = {
    7: PickleLayout(
        "cosmic_meld_text",
        (
            "speakers",
            "emotion_labels",
            "sentiment_labels",
            "sentences",
            "train_ids",
            "test_ids",
            "valid_ids",
        ),
        "COSMIC MELD text/label",
        speakers="speakers",
        labels="emotion_labels",
        sentiments="sentiment_labels",
        sentences="sentences",
        train="train_ids",
        test="test_ids",
        dev="valid_ids",
        meld=True,
    ),
    9: PickleLayout(
        "dialoguegcn",
        _DGCN_FIELDS,
        "DialogueGCN/MMGCN IEMOCAP_features",
        text=("videoText",),
        audio="videoAudio",
        visual="videoVisual",
        alternatives=(MELD_FEATURES_RAW,),
        **_VIDEO,
    ),
    10: PickleLayout(
        "mmgcn_meld",
        (*_DGCN_FIELDS, "_"),
        "MMGCN MELD_features_raw1",
        text=("videoText",),
        audio="videoAudio",
        visual="videoVisual",
        alternatives=(COSMIC_ROBERTA,),
        **_VIDEO,
    ),
    11: PickleLayout(
        "cosmic_meld_roberta",
        (
            "speakers",
            "emotion_labels",
            "sentiment_labels",
            *_ROBERTA,
            "sentences",
            "trainIds",
            "testIds",
            "validIds",
        ),
        "COSMIC MELD RoBERTa features",
        labels="emotion_labels",
        sentiments="sentiment_labels",
        meld=True,
        **_COSMIC,
    ),
    12: PickleLayout(
        "sdt_iemocap",
        (
            "videoIDs",
            "videoSpeakers",
            "videoLabels",
            *_SDT_TEXT,
            "videoAudio",
            "videoVisual",
            "videoSentence",
            "trainVid",
            "testVid",
        ),
        "SDT iemocap_multimodal_features",
        text=_SDT_TEXT,
        audio="videoAudio",
        visual="videoVisual",
        aliases=tuple(zip(_ROBERTA, _SDT_TEXT)),
        **_VIDEO,
    ),
    13: PickleLayout(
        "sdt_meld",
        (
            "videoIDs",
            "videoSpeakers",
            "videoLabels",
            *_SDT_TEXT,
            "videoAudio",
            "videoVisual",
            "videoSentence",
            "trainVid",
            "testVid",
            "_",
        ),
        "SDT meld_multimodal_features",
        text=_SDT_TEXT,
        audio="videoAudio",
        visual="videoVisual",
        aliases=tuple(zip(_ROBERTA, _SDT_TEXT)),
        meld=True,
        **_VIDEO,
    ),
    14: PickleLayout(
        "graphsmile_meld",
        (
            "videoIDs",
            "videoSpeakers",
            "videoLabels",
            "videoSentiments",
            *_GRAPHSMILE_TEXT,
            "videoAudio",
            "videoVisual",
            "videoSentence",
            "trainVid",
            "testVid",
            "_",
        ),
        "GraphSmile meld_multimodal_features",
        sentiments="videoSentiments",
        text=_GRAPHSMILE_TEXT,
        audio="videoAudio",
        visual="videoVisual",
        aliases=tuple(zip(_ROBERTA, _GRAPHSMILE_TEXT)),
        meld=True,
        **_VIDEO,
    ),
}


def known_layouts() -> str:
    """Every known layout, for messages."""
    return "; ".join(layout.describe() for _, layout in sorted(LAYOUTS.items()))


def detect_layout(obj: Any, path: Path) -> PickleLayout:
    """The layout of an unpickled object: by its length, then by content among same-length ones.

    Raises:
        ErcgraphError: for a non-sequence, an unknown length, or items of the wrong kind (a dict
            keyed by dialogue / a list of keys expected), listing the known layouts.
    """
    if not isinstance(obj, (list, tuple)):
        raise ErcgraphError(
            f"{path}: unknown pickle layout: the top level is a {type(obj).__name__}, expected a "
            f"list/tuple; known layouts: {known_layouts()}"
        )
    if len(obj) not in LAYOUTS:
        raise ErcgraphError(
            f"{path}: unknown pickle layout: a {type(obj).__name__} of {len(obj)} items; known "
            f"layouts: {known_layouts()}"
        )
    layout = LAYOUTS[len(obj)]
    layout = next((alt for alt in layout.alternatives if alt.matches(obj)), layout)
    for name in layout.table_fields:
        item = obj[layout.index(name)]
        if not isinstance(item, dict):
            raise ErcgraphError(
                f"{path}: unknown pickle layout: a {type(obj).__name__} of {len(obj)} items, but "
                f"item {layout.index(name)} is a {type(item).__name__} where the {layout.name} "
                f"layout has {name!r}, a dict keyed by dialogue; known layouts: "
                f"{known_layouts()}"
            )
    for name in layout.key_fields:
        item = obj[layout.index(name)]
        if not isinstance(item, (list, tuple, set, frozenset, np.ndarray)):
            raise ErcgraphError(
                f"{path}: unknown pickle layout: a {type(obj).__name__} of {len(obj)} items, but "
                f"item {layout.index(name)} is a {type(item).__name__} where the {layout.name} "
                f"layout has {name!r}, a list of dialogue keys; known layouts: "
                f"{known_layouts()}"
            )
    return layout


# -- features -------------------------------------------------------------------------------------
def _text_choice(data: DataConfig, layout: PickleLayout) -> tuple[list[str], str]:
    options = data.options or {}
    names = options.get("text_fields")
    if names is None:
        names = [layout.text[0]]
    elif isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ErcgraphError(
            f"config: data.options.text_fields must be a list of field names, got {names!r}"
        )
    combine = options.get("text_combine", "concat")
    if combine not in TEXT_COMBINE:
        raise ErcgraphError(
            f"config: data.options.text_combine must be one of "
            f"{', '.join(TEXT_COMBINE)}, got {combine!r}"
        )
    return layout.resolve_text(names), combine


def _layout_features(
    parsed: ParsedPickle,
    data: DataConfig,
    corpus_fp: str,
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
    layout, obj, path = parsed.layout, parsed.obj, parsed.path
    sha = file_sha256(path)
    feats: dict[str, np.ndarray] = {}
    manifest: dict[str, dict[str, Any]] = {}

    def add(modality: str, x: np.ndarray, what: str) -> None:
        feats[modality] = x
        manifest[modality] = {
            "encoder": f"pickle:{layout.name}:{what}",
            "file": path.name,
            "sha256": sha,
            "dim": int(x.shape[1]),
            "corpus": corpus_fp,
        }

    if layout.text:
        names, combine = _text_choice(data, layout)
        parts = [parsed.feature_matrix(obj[layout.index(n)], n, path) for n in names]
        if len(parts) == 1:
            add("text", parts[0], names[0])
        elif combine == "concat":
            add("text", np.concatenate(parts, axis=1), "+".join(names))
        else:
            dims = {n: p.shape[1] for n, p in zip(names, parts)}
            if len(set(dims.values())) > 1:
                raise ErcgraphError(
                    f"{path}: data.options.text_combine 'mean' needs text fields "
                    f"of one width, got {dims}"
                )
            add("text", np.mean(parts, axis=0, dtype=np.float32), f"mean({','.join(names)})")
    for modality, name in (("audio", layout.audio), ("visual", layout.visual)):
        if name is not None:
            add(modality, parsed.feature_matrix(obj[layout.index(name)], name, path), name)
    return feats, manifest


def _store(feats: dict[str, np.ndarray], manifest: dict[str, dict[str, Any]]) -> FeatureStore:
    import torch

    from ercgraph.data.features import FeatureStore

    return FeatureStore(
        {m: torch.from_numpy(np.ascontiguousarray(x)) for m, x in feats.items()}, manifest=manifest
    )


# -- entry points ---------------------------------------------------------------------------------
def _load(path: Path, data: DataConfig) -> tuple[Any, PickleLayout]:
    obj = safe_load(path, encoding=(data.options or {}).get("encoding", "latin1"))
    return obj, detect_layout(obj, path)


def _file(rel: str | None, root: Path | None, what: str, hint: str) -> Path:
    path = resolve_data_path(rel, root, what)
    if not path.is_file():
        raise ErcgraphError(f"{what}: {str(path)!r} is not a file ({hint})")
    return path


def read_pickle_features(
    data: DataConfig,
    root: Path | None,
    *,
    features: bool = True,
) -> tuple[Corpus, FeatureStore | None]:
    """Read a conversation/feature pickle: the Corpus and its features (see the module docstring).

    Args:
        data: The ``data`` config section: ``path`` is the pickle file, or ``paths`` maps
            ``speakers``/``text``/``audio``/``visual`` to MultiEMO's separate files.
        root: Data root against which relative paths are resolved.
        features: Build the FeatureStore (False: the Corpus only, without importing torch).

    Returns:
        The Corpus and a FeatureStore aligned to its rows (float32, all present), or None when
        the layout holds no features (COSMIC's text/label pickle) or ``features`` is False.

    Raises:
        ErcgraphError: for a disallowed/corrupt pickle, an unknown layout, inconsistent fields,
            feature rows that do not match a dialogue's utterances, or bad options.
    """
    check_options(data, PICKLE_OPTIONS, "pickle")
    if data.paths:
        return _read_multiemo(data, root, features)
    path = _file(data.path, root, "data.path", "the pickle reader wants one .pkl file")
    obj, layout = _load(path, data)
    parsed = parse_layout(obj, path, data, layout)
    if not features:
        return parsed.corpus, None
    if not (layout.text or layout.audio or layout.visual):
        chosen = [k for k in ("text_fields", "text_combine") if k in (data.options or {})]
        if chosen:
            raise ErcgraphError(
                f"config: data.options.{chosen[0]}: the {layout.name} layout "
                f"of {str(path)!r} holds no features"
            )
        return parsed.corpus, None
    feats, manifest = _layout_features(parsed, data, parsed.corpus.fingerprint())
    return parsed.corpus, _store(feats, manifest)


def _read_multiemo(
    data: DataConfig,
    root: Path | None,
    features: bool,
) -> tuple[Corpus, FeatureStore | None]:
    paths = data.paths or {}
    if data.path:
        raise ErcgraphError(
            "config: the pickle reader takes data.path (one pickle) or "
            "data.paths (MultiEMO's separate files), not both"
        )
    unknown = [k for k in paths if k not in MULTIEMO_PATHS]
    if unknown:
        raise ErcgraphError(
            f"config: unknown key 'data.paths.{unknown[0]}' for the pickle reader "
            f"(MultiEMO files); allowed: {', '.join(MULTIEMO_PATHS)}"
        )
    if "speakers" not in paths:
        raise ErcgraphError(
            "config: data.paths needs 'speakers' (MultiEMO's Speakers.pkl: "
            "speakers, labels and splits) next to text/audio/visual"
        )
    modalities = [m for m in MULTIEMO_PATHS[1:] if m in paths]
    if not modalities:
        raise ErcgraphError(
            "config: data.paths names no feature file; give at least one of "
            "text, audio, visual next to speakers"
        )
    if "text_fields" in (data.options or {}):
        raise ErcgraphError(
            "config: data.options.text_fields does not apply to MultiEMO's "
            "separate files (data.paths.text is the text)"
        )
    hint = "MultiEMO's separate .pkl files"
    path = _file(paths["speakers"], root, "data.paths.speakers", hint)
    obj, layout = _load(path, data)
    parsed = parse_layout(obj, path, data, layout)
    corpus = parsed.corpus
    corpus.meta["layout"] = f"multiemo({layout.name})"
    if not features:
        return corpus, None
    fingerprint = corpus.fingerprint()
    feats, manifest = {}, {}
    for modality in modalities:
        file = _file(paths[modality], root, f"data.paths.{modality}", hint)
        table = safe_load(file, encoding=(data.options or {}).get("encoding", "latin1"))
        feats[modality] = parsed.feature_matrix(table, modality, file)
        manifest[modality] = {
            "encoder": f"pickle:multiemo:{modality}",
            "file": file.name,
            "sha256": file_sha256(file),
            "dim": int(feats[modality].shape[1]),
            "corpus": fingerprint,
        }
    return corpus, _store(feats, manifest)


@READERS.register("pickle")
def read_pickle(data: DataConfig, root: Path | None) -> Corpus:
    """Read a conversation pickle's Corpus (layout chosen by its length and content).

    The features, if any, are not built; :func:`read_pickle_features` returns them too.

    Args:
        data: The ``data`` config section; ``path`` is the pickle file (or ``paths``, MultiEMO).
        root: Data root against which a relative path is resolved.

    Raises:
        ErcgraphError: for a disallowed/corrupt pickle, an unknown layout, or inconsistent fields.
    """
    return read_pickle_features(data, root, features=False)[0]
