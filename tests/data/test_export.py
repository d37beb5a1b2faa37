"""export_mmgcn: our Corpus + features back into the MMGCN/DialogueGCN pickle layout."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ercgraph.config import DataConfig
from ercgraph.data.corpus import IEMOCAP_LABELS, MELD_LABELS, Corpus
from ercgraph.data.export import export_mmgcn
from ercgraph.data.features import FeatureStore
from ercgraph.data.pickles import read_pickle_features

from .helpers import expect_error
from .pickle_fixtures import WRITERS, data_kwargs

COLUMNS = ["split", "dialogue_id", "turn", "speaker", "label", "text"]


def read_features(**data):
    return read_pickle_features(DataConfig(reader="pickle", **data), None)


def _store(corpus: Corpus, dims: dict[str, int], seed: int = 0) -> FeatureStore:
    g = torch.Generator().manual_seed(seed)
    return FeatureStore(
        {m: torch.randn(corpus.num_utterances, d, generator=g) for m, d in dims.items()}
    )


@pytest.mark.parametrize(
    "name, layout",
    [
        ("mmgcn_iemocap", "dialoguegcn"),
        ("dialoguegcn", "dialoguegcn"),
        ("sdt_iemocap", "dialoguegcn"),
        ("mmgcn_meld", "mmgcn_meld"),
        ("sdt_meld", "mmgcn_meld"),
        ("graphsmile_meld", "mmgcn_meld"),
        ("multiemo_meld", "mmgcn_meld"),
    ],
)
def test_round_trip_keeps_corpus_and_tensors(tmp_path: Path, name: str, layout: str) -> None:
    corpus, store = read_features(**data_kwargs(WRITERS[name](tmp_path)))
    out = export_mmgcn(corpus, store, tmp_path / "out" / "export.pkl")
    again, store2 = read_features(path=str(out))
    assert again.meta["layout"] == layout
    assert again.df[COLUMNS].equals(corpus.df[COLUMNS])
    assert again.labels == corpus.labels and again.name == corpus.name
    assert store2.dims() == store.dims()
    for m in store.modalities:
        assert torch.equal(store2.features[m], store.features[m])
    assert [p.name for p in out.parent.iterdir()] == ["export.pkl"]  # no temp file left


def test_meld_export_is_the_raw1_layout(tmp_path: Path) -> None:
    fx = WRITERS["graphsmile_meld"](tmp_path)
    corpus, store = read_features(path=str(fx.path))
    out = export_mmgcn(corpus, store, tmp_path / "MELD_features_raw1.pkl")
    obj = pickle.loads(out.read_bytes())
    assert isinstance(obj, list) and len(obj) == 10
    ids, speakers, labels, text, audio, visual, sentences, train, test, sentiment = obj
    d = fx.dialogues
    assert train == [0, 7, 1039, 1041] and test == [1153, 1160]
    assert all(type(k) is int for k in train + test)
    assert speakers == {k: d.speakers[k] for k in d.keys}  # the 9-d one-hots written in
    assert labels == {k: d.labels[k] for k in d.keys}
    assert sentiment == {k: d.sentiments[k] for k in d.keys}
    assert sentences[0][0] == "It’s line 0 of 0"
    for table, dim in ((text, 1024), (audio, 300), (visual, 342)):
        for k in d.keys:
            assert type(table[k]) is np.ndarray and table[k].dtype == np.float32
            assert table[k].shape == (len(d.labels[k]), dim)
    assert np.array_equal(audio[1041], fx.arrays["videoAudio"][1041])
    assert ids[0] == d.ids[0]


def test_iemocap_export_is_the_9_item_layout(tmp_path: Path) -> None:
    fx = WRITERS["cosmic_roberta"](tmp_path)
    corpus, _ = read_features(path=str(fx.path))
    store = _store(corpus, {"text": 4, "audio": 3, "visual": 2})
    out = export_mmgcn(corpus, store, tmp_path / "IEMOCAP_features.pkl")
    obj = pickle.loads(out.read_bytes())
    assert len(obj) == 9
    d = fx.dialogues
    assert obj[7] == d.pool and obj[8] == d.splits["test"]
    assert obj[1] == d.speakers  # 'M'/'F' strings
    assert obj[0]["Ses01F_impro01"] == [0, 1, 2]  # no utterance_id column: the turns
    again, store2 = read_features(path=str(out))
    assert again.df[COLUMNS].equals(corpus.df[COLUMNS])
    assert torch.equal(store2.features["visual"], store.features["visual"])


def _csv_like_meld() -> Corpus:
    """A MELD corpus as the CSV reader gives it: speaker names, a gap in the turns."""
    df = pd.DataFrame(
        {
            "split": ["train"] * 4 + ["dev"] * 2 + ["test"],
            "dialogue_id": ["train_3"] * 4 + ["dev_113"] * 2 + ["test_0"],
            "turn": [0, 1, 3, 4, 0, 1, 0],
            "speaker": ["Joey", "Rachel", "Joey", "Monica", "Ross", "Ross", "Phoebe"],
            "label": ["joy", "neutral", "anger", "fear", "sadness", "disgust", "surprise"],
            "text": ["a", "b", "c", "d", "e", "f", "g"],
            "sentiment": [
                "positive",
                "neutral",
                "negative",
                "negative",
                "negative",
                "negative",
                "positive",
            ],
        }
    )
    return Corpus(df, "meld", MELD_LABELS)


def test_meld_speaker_names_become_one_hots_by_first_appearance(tmp_path: Path) -> None:
    corpus = _csv_like_meld()
    store = _store(corpus, {"text": 5, "audio": 4, "visual": 3})
    out = export_mmgcn(corpus, store, tmp_path / "m.pkl")
    obj = pickle.loads(out.read_bytes())
    assert obj[7] == [3, 1039 + 113] and obj[8] == [1153]
    assert [h.index(1) for h in obj[1][3]] == [0, 1, 0, 2]
    again, store2 = read_features(path=str(out))
    assert again.df.speaker.tolist() == ["spk0", "spk1", "spk0", "spk2", "spk0", "spk0", "spk0"]
    assert again.df.turn.tolist() == [0, 1, 2, 3, 0, 1, 0]  # positions: the gap is gone
    assert again.df.label.tolist() == corpus.df.label.tolist()
    assert again.dialogue_ids() == corpus.dialogue_ids()
    assert torch.equal(store2.features["text"], store.features["text"])


def test_other_corpora_export_with_string_keys(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "split": ["train", "train", "train", "dev", "test"],
            "dialogue_id": ["d1", "d1", "d2", "d3", "d4"],
            "turn": [0, 1, 0, 0, 0],
            "speaker": ["A", "B", "A", "C", "A"],
            "label": ["pos", "neg", "pos", "neg", "pos"],
        }
    )
    corpus = Corpus(df, "mine", ("neg", "pos"))
    store = _store(corpus, {"text": 2, "audio": 2, "visual": 2})
    out = export_mmgcn(corpus, store, tmp_path / "mine.pkl")
    obj = pickle.loads(out.read_bytes())
    assert len(obj) == 9 and obj[7] == ["d1", "d2", "d3"] and obj[2]["d1"] == [1, 0]
    assert obj[6]["d1"] == ["", ""]  # no text column
    again, store2 = read_features(path=str(out), labels=["neg", "pos"], name="mine")
    assert again.df[COLUMNS[:5]].equals(corpus.df[COLUMNS[:5]])  # d3, the last train key: dev
    assert torch.equal(store2.features["audio"], store.features["audio"])


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    corpus = _csv_like_meld()
    store = _store(corpus, {"text": 5, "audio": 4, "visual": 3})
    path = tmp_path / "exists.pkl"
    path.write_bytes(b"keep me")
    expect_error(
        lambda: export_mmgcn(corpus, store, path), str(path), "already exists", unchanged=(path,)
    )
    assert [p.name for p in tmp_path.iterdir()] == ["exists.pkl"]


def test_missing_or_partial_modalities_are_errors(tmp_path: Path) -> None:
    corpus, store = read_features(path=str(WRITERS["meld_features_raw"](tmp_path).path))
    out = tmp_path / "out.pkl"
    expect_error(
        lambda: export_mmgcn(corpus, store, out), "no 'visual' modality", "text, audio, visual"
    )
    full = _store(corpus, {"text": 5, "audio": 4, "visual": 3})
    full.present["audio"][2] = False
    expect_error(
        lambda: export_mmgcn(corpus, full, out),
        "modality 'audio'",
        "missing for 1 utterance",
        "dialogue 'train_0', turn 2",
    )
    short = FeatureStore({m: x[:-1] for m, x in full.features.items()})
    expect_error(lambda: export_mmgcn(corpus, short, out), "feature rows", "utterances")
    assert not out.exists()


def test_layout_constraints(tmp_path: Path) -> None:
    corpus = _csv_like_meld()
    store = _store(corpus, {"text": 5, "audio": 4, "visual": 3})
    out = tmp_path / "out.pkl"
    relabelled = Corpus(corpus.df, "meld", tuple(reversed(MELD_LABELS)))
    expect_error(
        lambda: export_mmgcn(relabelled, store, out), "label ids into", str(list(MELD_LABELS))
    )
    renamed = Corpus(
        corpus.df.assign(dialogue_id=corpus.df.dialogue_id.str.upper()), "meld", MELD_LABELS
    )
    expect_error(lambda: export_mmgcn(renamed, store, out), "'TRAIN_3'", "MELD convention")
    too_far = Corpus(
        corpus.df.replace({"dialogue_id": {"dev_113": "dev_114"}}), "meld", MELD_LABELS
    )
    expect_error(lambda: export_mmgcn(too_far, store, out), "'dev_114'", "stop at 113")
    crowd = Corpus(
        corpus.df.assign(speaker=[f"p{i}" for i in range(6)] + ["q"])
        .replace({"dialogue_id": {"dev_113": "train_3"}, "split": {"dev": "train"}})
        .assign(turn=[0, 1, 2, 3, 4, 5, 0]),
        "meld",
        MELD_LABELS,
    )
    store7 = _store(crowd, {"text": 1, "audio": 1, "visual": 1})
    assert export_mmgcn(crowd, store7, tmp_path / "six.pkl").exists()  # 6 speakers fit in 9
    many = Corpus(
        pd.DataFrame(
            {
                "split": "train",
                "dialogue_id": "train_0",
                "turn": range(10),
                "speaker": [f"p{i}" for i in range(10)],
                "label": "joy",
            }
        ),
        "meld",
        MELD_LABELS,
    )
    expect_error(
        lambda: export_mmgcn(many, _store(many, {"text": 1, "audio": 1, "visual": 1}), out),
        "'train_0'",
        "speaker index 9",
        "9-d",
    )
    iemocap = Corpus(corpus.df, "iemocap", MELD_LABELS)
    expect_error(lambda: export_mmgcn(iemocap, store, out), "iemocap", str(list(IEMOCAP_LABELS)))
    expect_error(
        lambda: export_mmgcn(corpus, store, out, dataset="avec"), "'avec'", "meld, iemocap, other"
    )
    unlabelled = Corpus(corpus.df.assign(split="unlabelled", label=None), "meld", MELD_LABELS)
    expect_error(lambda: export_mmgcn(unlabelled, store, out), "'unlabelled'")
    assert not out.exists()
