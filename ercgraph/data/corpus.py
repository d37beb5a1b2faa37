"""The Corpus: one validated row per utterance, the contract every reader produces.

Required columns: ``split``, ``dialogue_id`` (str), ``turn`` (int order inside the dialogue),
``speaker`` (str), ``label`` (emotion name, may be missing for prediction). Optional columns
(``text``, ``sentiment``, ``audio_path``, ``video_path``, ``start``/``end``,
``valence``/``arousal``/``dominance``) and any extra column are kept untouched. The utterance key
is ``(dialogue_id, turn)``; rows are ordered by split, dialogue (first appearance) and turn.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ercgraph.errors import ErcgraphError

REQUIRED_COLUMNS = ("split", "dialogue_id", "turn", "speaker", "label")
SPLITS = ("train", "dev", "test", "unlabelled")

#: Label orders used by the reference loaders (COSMIC, DialogueRNN, MMGCN), so confusion matrices
#: line up with published ones.
MELD_LABELS = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")
MELD_SENTIMENTS = ("neutral", "positive", "negative")
IEMOCAP_LABELS = ("hap", "sad", "neu", "ang", "exc", "fru")


def plain(value: object) -> object:
    """A table cell as a plain Python value, so that a message shows ``1.5``, not numpy's
    ``np.float64(1.5)`` (numpy 2 reprs its scalars with the type)."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass
class Corpus:
    """A validated utterance table plus its metadata.

    Args:
        df: One row per utterance (see module docstring for the columns).
        name: Dataset name (``meld``, ``iemocap``, or the user's).
        labels: The label vocabulary in a fixed order; label ids index into it.
        source: Where the corpus was read from (for messages).
    """

    df: pd.DataFrame
    name: str
    labels: tuple[str, ...]
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = tuple(self.labels)
        self.df = validate_frame(self.df, self.labels, self.source or self.name)

    # -- views ---------------------------------------------------------------------------
    @property
    def num_utterances(self) -> int:
        return len(self.df)

    @property
    def splits(self) -> list[str]:
        present = set(self.df["split"])
        return [s for s in SPLITS if s in present]

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def subset(
        self, splits: Iterable[str] | None = None, dialogues: Iterable[str] | None = None
    ) -> Corpus:
        """A new Corpus holding only some splits and/or dialogues (row order kept)."""
        mask = np.ones(len(self.df), dtype=bool)
        if splits is not None:
            mask &= self.df["split"].isin(list(splits)).to_numpy()
        if dialogues is not None:
            mask &= self.df["dialogue_id"].isin(list(dialogues)).to_numpy()
        return Corpus(
            self.df[mask].reset_index(drop=True),
            self.name,
            self.labels,
            self.source,
            dict(self.meta),
        )

    def with_splits(self, split: Sequence[str] | np.ndarray | pd.Series) -> Corpus:
        """A new Corpus with another split per row and the **same row order** (cross-validation
        folds re-split one corpus, and its features and graph edges stay aligned row for row).

        Unlike a Corpus built from a frame, the rows are not re-sorted by split; they stay grouped
        by dialogue in turn order, which is all the graphs need.

        Raises:
            ErcgraphError: on a split name outside ``SPLITS``, a length mismatch, or a dialogue
                given two splits.
        """
        values = pd.Series(np.asarray(split, dtype=object), index=self.df.index)
        if len(values) != len(self.df):
            raise ErcgraphError(f"with_splits: {len(values)} splits for {len(self.df)} utterances")
        bad = ~values.isin(SPLITS)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ErcgraphError(
                f"with_splits: row {i}: split {plain(values.iloc[i])!r} is not one of "
                f"{list(SPLITS)}"
            )
        per_dialogue = values.groupby(self.df["dialogue_id"]).nunique()
        if (per_dialogue > 1).any():
            raise ErcgraphError(
                f"with_splits: dialogue {plain(per_dialogue[per_dialogue > 1].index[0])!r} would "
                "lie in more than one split"
            )
        df = self.df.copy()
        df["split"] = values.to_numpy()
        new = object.__new__(Corpus)
        new.df, new.name, new.labels = df, self.name, self.labels
        new.source, new.meta = self.source, dict(self.meta)
        return new

    def label_ids(self) -> np.ndarray:
        """Label index per row; -1 where the label is missing."""
        codes = pd.Categorical(self.df["label"], categories=list(self.labels)).codes
        return codes.astype(np.int64)

    def dialogue_index(self) -> np.ndarray:
        """Consecutive dialogue number (0..D-1) per row, in row order."""
        d = self.df["dialogue_id"].to_numpy()
        change = np.r_[True, d[1:] != d[:-1]]
        return np.cumsum(change) - 1

    def dialogue_ids(self) -> list[str]:
        return list(dict.fromkeys(self.df["dialogue_id"]))

    def local_speakers(self) -> np.ndarray:
        """Speaker index by order of first appearance inside each dialogue (0 = first speaker)."""
        keys = pd.MultiIndex.from_arrays([self.df["dialogue_id"], self.df["speaker"]])
        first = pd.Series(np.arange(len(keys)), index=keys).groupby(level=[0, 1], sort=False).min()
        # rank speakers of a dialogue by the row of their first turn
        ranks = first.groupby(level=0, sort=False).rank(method="first").astype(int) - 1
        return ranks.reindex(keys).to_numpy().astype(np.int64)

    def fingerprint(
        self, columns: Sequence[str] = ("split", "dialogue_id", "turn", "speaker", "text")
    ) -> str:
        """A hash of the listed columns' content (used as part of every cache key)."""
        h = hashlib.sha256()
        for col in columns:
            if col not in self.df.columns:
                continue
            h.update(col.encode())
            h.update(
                pd.util.hash_pandas_object(self.df[col].astype(str), index=False)
                .to_numpy()
                .tobytes()
            )
        return h.hexdigest()[:16]

    def __repr__(self) -> str:
        counts = self.df.groupby("split", sort=False).size().to_dict()
        return (
            f"Corpus(name={self.name!r}, utterances={len(self.df)}, "
            f"dialogues={self.df['dialogue_id'].nunique()}, splits={counts}, "
            f"labels={list(self.labels)})"
        )


def validate_frame(df: pd.DataFrame, labels: Sequence[str], source: str) -> pd.DataFrame:
    """Check the Corpus contract and return a normalised, ordered copy.

    Raises:
        ErcgraphError: naming the source, column, row or key that breaks the contract.
    """
    if len(df) == 0:
        raise ErcgraphError(f"{source}: the corpus is empty (no utterance rows)")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ErcgraphError(
            f"{source}: missing required column(s) {missing}; "
            f"the corpus needs {list(REQUIRED_COLUMNS)}"
        )
    df = df.copy()
    bad_split = ~df["split"].isin(SPLITS)
    if bad_split.any():
        i = int(np.flatnonzero(bad_split.to_numpy())[0])
        raise ErcgraphError(
            f"{source}: row {i}: split {plain(df['split'].iloc[i])!r} is not one of {list(SPLITS)}"
        )
    for col in ("dialogue_id", "speaker"):
        null = df[col].isna()
        if null.any():
            i = int(np.flatnonzero(null.to_numpy())[0])
            raise ErcgraphError(f"{source}: row {i}: column {col!r} is empty")
        df[col] = df[col].astype(str)
    turn = pd.to_numeric(df["turn"], errors="coerce")
    if turn.isna().any() or (turn % 1 != 0).any():
        i = int(np.flatnonzero((turn.isna() | (turn % 1 != 0)).to_numpy())[0])
        raise ErcgraphError(
            f"{source}: row {i}: column 'turn' must be an integer, got "
            f"{plain(df['turn'].iloc[i])!r}"
        )
    df["turn"] = turn.astype(np.int64)
    dup = df.duplicated(["dialogue_id", "turn"], keep="first")
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise ErcgraphError(
            f"{source}: row {i}: duplicate utterance key "
            f"(dialogue_id={df['dialogue_id'].iloc[i]!r}, turn={int(df['turn'].iloc[i])}); "
            "each (dialogue, turn) must appear once"
        )
    split_per_dialogue = df.groupby("dialogue_id")["split"].nunique()
    if (split_per_dialogue > 1).any():
        d = split_per_dialogue[split_per_dialogue > 1].index[0]
        raise ErcgraphError(f"{source}: dialogue {d!r} appears in more than one split")
    known = set(labels)
    lab = df["label"]
    present = lab.notna() & (lab.astype(str) != "")
    unknown = present & ~lab.astype(str).isin(known)
    if unknown.any():
        i = int(np.flatnonzero(unknown.to_numpy())[0])
        raise ErcgraphError(
            f"{source}: row {i}: unknown label {plain(lab.iloc[i])!r} in column 'label'; "
            f"expected one of {sorted(known)}"
        )
    df["label"] = lab.where(present, None)
    labelled = df["split"].isin(["train", "dev", "test"])
    if known and (labelled & ~present).any():  # an empty vocabulary: a corpus without emotions
        i = int(np.flatnonzero((labelled & ~present).to_numpy())[0])
        raise ErcgraphError(
            f"{source}: row {i}: split {plain(df['split'].iloc[i])!r} needs a label, but 'label' "
            "is empty"
        )
    # order: split, dialogue by first appearance, turn
    split_rank = df["split"].map({s: i for i, s in enumerate(SPLITS)})
    dia_rank = df["dialogue_id"].map({d: i for i, d in enumerate(dict.fromkeys(df["dialogue_id"]))})
    order = np.lexsort((df["turn"].to_numpy(), dia_rank.to_numpy(), split_rank.to_numpy()))
    return df.iloc[order].reset_index(drop=True)
