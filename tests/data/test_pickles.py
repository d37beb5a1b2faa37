"""The pickle reader: COSMIC's MELD pickle lines up with the official CSVs."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from ercgraph.data.corpus import MELD_LABELS
from ercgraph.data.pickles import LAYOUTS

from .helpers import expect_error, read

COSMIC = "meld/cosmic/meld_cosmic_text_labels.pkl"


@pytest.fixture(scope="module")
def both(data_root: Path):
    return read("meld", data_root), read("pickle", data_root, path=COSMIC)


def test_same_dialogues_splits_and_sizes(both) -> None:
    csv, pkl = both
    assert pkl.name == "meld" and pkl.labels == MELD_LABELS
    assert pkl.dialogue_ids() == csv.dialogue_ids()  # same ids, same order
    assert (
        pkl.df.groupby("dialogue_id", sort=False)
        .size()
        .equals(csv.df.groupby("dialogue_id", sort=False).size())
    )
    assert (pkl.df.split.to_numpy() == csv.df.split.to_numpy()).all()
    assert (pkl.df.meld_dialogue_id.to_numpy() == csv.df.meld_dialogue_id.to_numpy()).all()


def test_label_sentiment_and_speaker_sequences_match_for_every_dialogue(both) -> None:
    csv, pkl = both
    # rows are ordered by split, dialogue, turn in both, so equal rows mean equal sequences
    assert (pkl.df.label.to_numpy() == csv.df.label.to_numpy()).all()
    assert (pkl.df.sentiment.to_numpy() == csv.df.sentiment.to_numpy()).all()
    # spk{i}: i is the order of first appearance, as the CSV speakers give it
    assert (pkl.df.speaker.to_numpy() == np.char.add("spk", csv.local_speakers().astype(str))).all()


def test_text_is_repaired_to_the_csv_text(both) -> None:
    csv, pkl = both
    text = pkl.df.text.str.replace("\xa0", " ")  # the pickle keeps a few no-break spaces
    assert (text.to_numpy() == csv.df.text.to_numpy()).all()
    assert not pkl.df.text.str.contains("[\x80-\x9f]").any()


def test_turns_are_positions_and_keys_are_kept(both) -> None:
    _, pkl = both
    df = pkl.df
    assert (df.turn == df.groupby("dialogue_id", sort=False).cumcount()).all()
    dev0 = df[df.dialogue_id == "dev_0"]
    assert set(dev0.pickle_key) == {1039}
    assert set(df[df.dialogue_id == "test_0"].pickle_key) == {1153}


def _cosmic(tmp_path: Path, **change) -> Path:
    """A tiny 7-item pickle: train dialogue 0 (2 turns), dev 0 (key 1039), test 0 (key 1153)."""
    one = [[1] + [0] * 8, [0, 1] + [0] * 7]
    fields = {
        "speakers": {0: one, 1039: one[:1], 1153: one[:1]},
        "emotions": {0: [4, 0], 1039: [6], 1153: [2]},
        "sentiments": {0: [1, 0], 1039: [2], 1153: [2]},
        "sentences": {0: ["It\x92s \x93fine\x94", "Ok"], 1039: ["Grr"], 1153: ["Eek"]},
        "train": [0],
        "test": [1153],
        "valid": [1039],
    }
    fields.update(change)
    path = tmp_path / "meld.pkl"
    path.write_bytes(
        pickle.dumps(
            [
                fields[k]
                for k in (
                    "speakers",
                    "emotions",
                    "sentiments",
                    "sentences",
                    "train",
                    "test",
                    "valid",
                )
            ]
        )
    )
    return path


def test_tiny_cosmic_pickle(tmp_path: Path) -> None:
    corpus = read("pickle", None, path=str(_cosmic(tmp_path)))
    df = corpus.df
    assert df.dialogue_id.tolist() == ["train_0", "train_0", "dev_0", "test_0"]
    assert df.split.tolist() == ["train", "train", "dev", "test"]
    assert df.label.tolist() == ["joy", "neutral", "anger", "fear"]
    assert df.sentiment.tolist() == ["positive", "neutral", "negative", "negative"]
    assert df.speaker.tolist() == ["spk0", "spk1", "spk0", "spk0"]
    assert df.text.iloc[0] == "It’s “fine”"
    assert corpus.meta["layout"] == "cosmic_meld_text"


@pytest.mark.parametrize(
    "change, fragments",
    [
        ({"emotions": {0: [4], 1039: [6], 1153: [2]}}, ["key 0", "'emotion_labels' has 1", "2"]),
        ({"emotions": {0: [4, 9], 1039: [6], 1153: [2]}}, ["key 0, utterance 1", "emotion id 9"]),
        (
            {
                "speakers": {
                    0: [[1, 1] + [0] * 7, [1] + [0] * 8],
                    1039: [[1] + [0] * 8],
                    1153: [[1] + [0] * 8],
                }
            },
            ["key 0, utterance 0", "not a one-hot"],
        ),
        ({"valid": [1153], "test": [1039]}, ["key 1153", "'valid_ids'", "'test'"]),
        ({"valid": [1039, 0]}, ["key 0", "both"]),
        ({"train": [0, 5]}, ["key 5", "missing from 'speakers'"]),
        ({"train": ["a"]}, ["'a'", "not a non-negative integer", "COSMIC MELD"]),
        ({"emotions": {0: ["joy", "x"], 1039: [6], 1153: [2]}}, ["'emotion_labels'", "integer"]),
    ],
)
def test_inconsistent_pickles_name_the_key(
    tmp_path: Path, change: dict, fragments: list[str]
) -> None:
    if change.get("train") == ["a"]:
        change = {
            **change,
            "speakers": {"a": [[1] + [0] * 8]},
            "emotions": {"a": [0]},
            "sentiments": {"a": [0]},
            "sentences": {"a": ["x"]},
            "valid": [],
            "test": [],
        }
    path = _cosmic(tmp_path, **change)
    expect_error(
        lambda: read("pickle", None, path=str(path)), str(path), *fragments, unchanged=(path,)
    )


@pytest.mark.parametrize(
    "obj, found",
    [
        (tuple(range(5)), "a tuple of 5 items"),
        (list(range(11)), "a list of 11 items"),
        ({"speakers": {}}, "the top level is a dict"),
    ],
)
def test_unknown_layout_lists_the_known_ones(tmp_path: Path, obj, found: str) -> None:
    path = tmp_path / "odd.pkl"
    path.write_bytes(pickle.dumps(obj))
    msg = expect_error(
        lambda: read("pickle", None, path=str(path)),
        str(path),
        "unknown pickle layout",
        found,
        "known layouts",
        unchanged=(path,),
    )
    for length, layout in LAYOUTS.items():
        assert f"{length} items ({layout.name}" in msg


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo",))


def test_reader_refuses_code_in_pickles(tmp_path: Path) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([_Evil()] * 7))
    expect_error(
        lambda: read("pickle", None, path=str(path)),
        str(path),
        "pickle tries to import",
        "only builtins and numpy are allowed",
        unchanged=(path,),
    )


def test_config_errors(tmp_path: Path, data_root: Path) -> None:
    expect_error(lambda: read("pickle", None), "data.path is not set")
    expect_error(lambda: read("pickle", None, path=str(tmp_path / "none.pkl")), "does not exist")
    expect_error(lambda: read("pickle", data_root, path="meld"), "not a file")
    expect_error(
        lambda: read("pickle", data_root, path=COSMIC, options={"layout": 7}),
        "data.options.layout",
        "encoding",
    )
