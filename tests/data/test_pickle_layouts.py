"""Feature-pickle layouts: every one reads into the right Corpus and FeatureStore."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from ercgraph.config import DataConfig
from ercgraph.data.corpus import Corpus
from ercgraph.data.pickles import LAYOUTS, read_pickle_features

from .helpers import expect_error, read
from .pickle_fixtures import ROBERTA, WRITERS, Fixture, data_kwargs, dump, write_cosmic_text

COSMIC = "meld/cosmic/meld_cosmic_text_labels.pkl"


def read_features(root: Path | None = None, **data):
    return read_pickle_features(DataConfig(reader="pickle", **data), root)


def expected_rows(fx: Fixture) -> dict[str, list]:
    """The Corpus columns the fixture must produce, in Corpus row order."""
    d = fx.dialogues
    rows: dict[str, list] = {
        c: [] for c in ("split", "dialogue_id", "turn", "speaker", "label", "text", "pickle_key")
    }
    for split in ("train", "dev", "test"):
        for key in d.splits[split]:
            n = len(d.labels[key])
            rows["split"] += [split] * n
            rows["dialogue_id"] += [d.dialogue_ids[key]] * n
            rows["turn"] += list(range(n))
            rows["speaker"] += d.speaker_names[key]
            rows["label"] += [d.label_names[i] for i in d.labels[key]]
            rows["text"] += [s.replace("\x92", "’") for s in d.sentences[key]]
            rows["pickle_key"] += [key] * n
    return rows


def expected_matrix(fx: Fixture, corpus: Corpus, field: str) -> np.ndarray:
    keys = corpus.df.drop_duplicates("dialogue_id")["pickle_key"].tolist()
    return np.concatenate([fx.arrays[field][k] for k in keys])


def check_corpus(fx: Fixture, corpus: Corpus) -> None:
    for column, values in expected_rows(fx).items():
        assert corpus.df[column].tolist() == values, column
    assert corpus.name == fx.dialogues.dataset
    assert corpus.labels == fx.dialogues.label_names
    assert corpus.meta["layout"] == fx.layout


@pytest.mark.parametrize("name", list(WRITERS))
def test_every_layout_reads_its_corpus_and_features(tmp_path: Path, name: str) -> None:
    fx = WRITERS[name](tmp_path)
    corpus, store = read_features(**data_kwargs(fx))
    check_corpus(fx, corpus)
    assert store is not None and sorted(store.modalities) == sorted(fx.modalities)
    for modality, field in fx.modalities.items():
        x = store.features[modality]
        assert x.dtype == torch.float32
        assert torch.equal(x, torch.from_numpy(expected_matrix(fx, corpus, field)))
        assert store.present[modality].all()
        source = fx.extra_files.get(modality, fx.path)
        layout = "multiemo" if fx.extra_files else fx.layout
        assert store.manifest[modality] == {
            "encoder": f"pickle:{layout}:{field}",
            "file": source.name,
            "sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
            "dim": next(iter(fx.arrays[field].values())).shape[1],
            "corpus": corpus.fingerprint(),
        }
    # the registered reader returns the same Corpus, without features
    plain = read("pickle", None, **data_kwargs(fx))
    assert isinstance(plain, Corpus) and plain.df.equals(corpus.df)


def test_published_dims_are_inferred_from_the_arrays(tmp_path: Path) -> None:
    # DialogueGCN's and MMGCN's IEMOCAP_features.pkl share a name, not their widths
    dims = {}
    for name in ("dialoguegcn", "mmgcn_iemocap", "mmgcn_meld", "sdt_iemocap", "graphsmile_meld"):
        folder = tmp_path / name
        folder.mkdir()
        _, store = read_features(**data_kwargs(WRITERS[name](folder)))
        dims[name] = store.dims()
    assert dims["dialoguegcn"] == {"text": 100, "audio": 100, "visual": 512}
    assert dims["mmgcn_iemocap"] == {"text": 100, "audio": 1582, "visual": 342}
    assert dims["mmgcn_meld"] == {"text": 600, "audio": 300, "visual": 342}
    assert dims["sdt_iemocap"] == {"text": 1024, "audio": 1582, "visual": 342}
    assert dims["graphsmile_meld"] == {"text": 1024, "audio": 300, "visual": 342}


def test_meld_extras_sentiment_and_ids(tmp_path: Path) -> None:
    fx = WRITERS["graphsmile_meld"](tmp_path)
    corpus, _ = read_features(path=str(fx.path))
    df = corpus.df
    sentiments = [s for k in fx.dialogues.keys for s in fx.dialogues.sentiments[k]]
    assert df.sentiment.tolist() == [("neutral", "positive", "negative")[i] for i in sentiments]
    assert df.meld_dialogue_id.tolist() == [int(d.split("_")[1]) for d in df.dialogue_id]
    assert df.utterance_id.tolist() == [u for k in fx.dialogues.keys for u in fx.dialogues.ids[k]]


# -- splits ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fraction, dev",
    [
        (None, ["Ses02F_impro03"]),  # default 0.1 of 3 keys rounds to 0: at least one
        (0.5, ["Ses01M_script02_1", "Ses02F_impro03"]),  # round(1.5) = 2, the last sorted keys
        (0.0, []),
    ],
)
def test_iemocap_dev_is_the_last_sorted_train_keys(tmp_path: Path, fraction, dev) -> None:
    fx = WRITERS["mmgcn_iemocap"](tmp_path)
    options = {} if fraction is None else {"dev_fraction": fraction}
    corpus, _ = read_features(path=str(fx.path), options=options)
    by_split = corpus.df.drop_duplicates("dialogue_id").groupby("split").dialogue_id.apply(list)
    assert by_split.get("dev", []) == dev
    assert by_split["test"] == ["Ses05M_impro04"]
    assert sorted(by_split["train"] + dev) == sorted(fx.dialogues.pool)


@pytest.mark.parametrize("value", [1.0, -0.1, "0.1", True])
def test_bad_dev_fraction(tmp_path: Path, value) -> None:
    fx = WRITERS["mmgcn_iemocap"](tmp_path)
    expect_error(
        lambda: read_features(path=str(fx.path), options={"dev_fraction": value}),
        "data.options.dev_fraction",
        "[0.0, 1.0)",
    )


def test_meld_train_pool_without_dev_keys_gets_a_carved_dev(tmp_path: Path) -> None:
    fx = WRITERS["mmgcn_meld"](tmp_path)
    obj = list(pickle.loads(fx.path.read_bytes()))
    obj[7] = [0, 7]  # trainVid without dev-range keys
    for table in obj[:7]:
        for key in (1039, 1041):
            del table[key]
    dump(fx.path, tuple(obj))
    corpus, store = read_features(path=str(fx.path))
    first = corpus.df.drop_duplicates("dialogue_id")
    assert first.dialogue_id.tolist() == ["train_0", "train_7", "test_0", "test_7"]
    assert first.split.tolist() == ["train", "dev", "test", "test"]
    assert store.num_rows() == corpus.num_utterances


def test_meld_key_in_the_wrong_list(tmp_path: Path) -> None:
    fx = WRITERS["sdt_meld"](tmp_path)
    obj = list(pickle.loads(fx.path.read_bytes()))
    obj[10], obj[11] = [0, 7, 1039, 1041, 1153], [1160]
    dump(fx.path, tuple(obj))
    expect_error(
        lambda: read_features(path=str(fx.path)), str(fx.path), "key 1153", "'trainVid'", "'test'"
    )


# -- text fields ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, fields",
    [
        ("sdt_meld", ["roberta1", "roberta2", "roberta3", "roberta4"]),
        ("graphsmile_meld", ["videoText1", "roberta3"]),
        ("cosmic_meld_roberta", ["roberta4"]),
    ],
)
@pytest.mark.parametrize("combine", ["concat", "mean"])
def test_text_fields_are_concatenated_or_averaged(
    tmp_path: Path, name: str, fields: list, combine: str
) -> None:
    fx = WRITERS[name](tmp_path)
    corpus, store = read_features(
        path=str(fx.path), options={"text_fields": fields, "text_combine": combine}
    )
    own = {
        "sdt_meld": ("videoText", "roberta2", "roberta3", "roberta4"),
        "graphsmile_meld": tuple(f"videoText{i}" for i in range(4)),
        "cosmic_meld_roberta": ROBERTA,
    }[name]
    alias = dict(zip(ROBERTA, own))
    resolved = [alias.get(f, f) for f in fields]
    parts = [expected_matrix(fx, corpus, f) for f in resolved]
    if combine == "concat" or len(parts) == 1:
        want = np.concatenate(parts, axis=1)
        what = "+".join(resolved)
    else:
        want = np.mean(parts, axis=0, dtype=np.float32)
        what = f"mean({','.join(resolved)})"
    assert torch.allclose(store.features["text"], torch.from_numpy(want))
    assert store.manifest["text"]["dim"] == want.shape[1]
    assert store.manifest["text"]["encoder"] == f"pickle:{name}:{what}"


def test_text_field_errors(tmp_path: Path, data_root: Path) -> None:
    fx = WRITERS["sdt_iemocap"](tmp_path)
    expect_error(
        lambda: read_features(path=str(fx.path), options={"text_fields": ["roberta5"]}),
        "'roberta5'",
        "sdt_iemocap",
        "roberta1",
        "videoText",
    )
    expect_error(
        lambda: read_features(path=str(fx.path), options={"text_combine": "max"}),
        "text_combine",
        "concat, mean",
        "'max'",
    )
    expect_error(
        lambda: read_features(path=str(fx.path), options={"text_fields": [1]}),
        "text_fields",
        "list of field names",
    )
    expect_error(
        lambda: read_features(data_root, path=COSMIC, options={"text_fields": "x"}),
        "data.options.text_fields",
        "cosmic_meld_text",
        "holds no features",
    )


# -- datasets -------------------------------------------------------------------------------------
def _renamed_iemocap(tmp_path: Path) -> Path:
    """An IEMOCAP-layout pickle whose keys are not IEMOCAP's (an AVEC-like dataset)."""
    fx = WRITERS["mmgcn_iemocap"](tmp_path)
    obj = list(pickle.loads(fx.path.read_bytes()))
    rename = {k: f"chat_{i}" for i, k in enumerate(fx.dialogues.keys)}
    obj[:7] = [{rename[k]: v for k, v in t.items()} for t in obj[:7]]
    obj[1] = {k: ["user" if s == "M" else "agent" for s in v] for k, v in obj[1].items()}
    obj[7:] = [[rename[k] for k in keys] for keys in obj[7:]]
    return dump(tmp_path / "avec_like.pkl", tuple(obj))


def test_other_datasets_need_label_names(tmp_path: Path) -> None:
    path = _renamed_iemocap(tmp_path)
    expect_error(lambda: read_features(path=str(path)), str(path), "set data.labels")
    names = ["a", "b", "c", "d", "e", "f"]
    corpus, store = read_features(path=str(path), labels=names, name="chat")
    assert corpus.name == "chat" and corpus.labels == tuple(names)
    assert corpus.dialogue_ids() == ["chat_0", "chat_1", "chat_2", "chat_3"]
    assert corpus.df.drop_duplicates("dialogue_id").split.tolist() == [
        "train",
        "train",
        "dev",
        "test",
    ]
    assert set(corpus.df.speaker) == {"user", "agent"}
    assert store.dims() == {"text": 100, "audio": 1582, "visual": 342}


def test_label_names_can_be_overridden_and_out_of_range_ids_are_errors(tmp_path: Path) -> None:
    fx = WRITERS["sdt_iemocap"](tmp_path)
    corpus, _ = read_features(path=str(fx.path), labels=["h", "s", "n", "a", "e", "f"])
    assert corpus.df.label.tolist() == [
        "hsnaef"[i]
        for s in ("train", "dev", "test")
        for k in fx.dialogues.splits[s]
        for i in fx.dialogues.labels[k]
    ]
    obj = list(pickle.loads(fx.path.read_bytes()))
    obj[2]["Ses05M_impro04"][1] = 6
    dump(fx.path, tuple(obj))
    expect_error(
        lambda: read_features(path=str(fx.path)),
        str(fx.path),
        "key 'Ses05M_impro04', utterance 1",
        "emotion id 6",
        "0..5",
    )


def test_real_cosmic_pickle_has_no_features(data_root: Path) -> None:
    corpus, store = read_features(data_root, path=COSMIC)
    assert store is None
    assert corpus.meta["layout"] == "cosmic_meld_text" and corpus.num_utterances > 13000
    assert corpus.splits == ["train", "dev", "test"]
    assert corpus.df.equals(read("pickle", data_root, path=COSMIC).df)


# -- COSMIC's IEMOCAP text pickle (6 items, no features) -------------------------------------------
@pytest.mark.parametrize("container", [list, tuple])
def test_cosmic_iemocap_text_pickle(tmp_path: Path, container) -> None:
    fx = write_cosmic_text(tmp_path)
    dump(fx.path, container(pickle.loads(fx.path.read_bytes())))
    corpus, store = read_features(path=str(fx.path))
    assert store is None
    check_corpus(fx, corpus)
    df = corpus.df
    assert corpus.name == "iemocap" and corpus.meta["dataset"] == "iemocap"
    # ids 0..5 are COSMIC's IEMOCAP order
    assert df.label.tolist()[:6] == ["hap", "sad", "neu", "ang", "exc", "fru"]
    # valid_ids is dev as given (not the last sorted train key), train_ids train, test_ids test
    dialogues = df.drop_duplicates("dialogue_id")
    assert dict(zip(dialogues.dialogue_id, dialogues.split)) == {
        "Ses01M_script02_1": "train",
        "Ses02F_impro03": "train",
        "Ses01F_impro01": "dev",
        "Ses05M_impro04": "test",
    }
    assert corpus.splits == ["train", "dev", "test"]
    dev = df[df.split == "dev"]
    assert dev.speaker.tolist() == ["F", "M", "F"]
    assert dev.text.tolist() == ["I’m fine", "Ses01F_impro01 line 1", "Ses01F_impro01 line 2"]
    assert dev.turn.tolist() == [0, 1, 2]
    assert corpus.df.equals(read("pickle", None, path=str(fx.path)).df)


def test_cosmic_text_pickle_of_other_keys_needs_label_names(tmp_path: Path) -> None:
    # EmoryNLP's emorynlp.pkl has the same six fields, keyed "season_episode_scene"
    hot = [[1] + [0] * 8, [0, 1] + [0] * 7]
    obj = [
        {"1_1_0": hot, "1_2_0": hot[:1], "2_1_3": hot[::-1]},
        {"1_1_0": [0, 6], "1_2_0": [3], "2_1_3": [1, 2]},
        {"1_1_0": ["a", "b"], "1_2_0": ["c"], "2_1_3": ["d", "e"]},
        ["1_1_0"],
        ["2_1_3"],
        ["1_2_0"],
    ]
    path = dump(tmp_path / "emorynlp.pkl", obj)
    expect_error(lambda: read_features(path=str(path)), str(path), "set data.labels")
    names = ["joyful", "mad", "neutral", "peaceful", "powerful", "sad", "scared"]
    corpus, store = read_features(path=str(path), labels=names)
    assert store is None and corpus.meta["layout"] == "cosmic_text"
    assert corpus.name == "emorynlp" and corpus.meta["dataset"] == "other"
    assert corpus.df.label.tolist() == ["joyful", "scared", "peaceful", "mad", "neutral"]
    assert corpus.df.split.tolist() == ["train", "train", "dev", "test", "test"]
    assert corpus.df.speaker.tolist() == ["spk0", "spk1", "spk0", "spk1", "spk0"]


def test_cosmic_text_pickle_rejects_feature_options(tmp_path: Path) -> None:
    fx = write_cosmic_text(tmp_path)
    expect_error(
        lambda: read_features(path=str(fx.path), options={"text_fields": ["roberta1"]}),
        "data.options.text_fields",
        "cosmic_text layout",
        "holds no features",
    )


# -- errors ---------------------------------------------------------------------------------------
def _edit(fx: Fixture, index: int, key, value) -> None:
    obj = list(pickle.loads(fx.path.read_bytes()))
    obj[index][key] = value
    dump(fx.path, tuple(obj))


@pytest.mark.parametrize(
    "index, value, fragments",
    [
        (4, np.zeros((4, 1582), np.float32), ["'videoAudio'", "has 4 feature rows, expected 3"]),
        (4, np.zeros((3, 12), np.float32), ["'videoAudio'", "has 12-d", "has 1582-d"]),
        (5, np.zeros(3, np.float32), ["'videoVisual'", "[utterances, dim]", "(3,)"]),
        (3, [[0.0] * 100, [0.0] * 100, ["x"] * 100], ["'videoText'", "not a numeric"]),
        (3, np.full((3, 100), np.nan, np.float32), ["utterance 0", "'videoText'", "non-finite"]),
    ],
)
def test_bad_feature_arrays_name_file_key_and_field(
    tmp_path: Path, index: int, value, fragments: list
) -> None:
    fx = WRITERS["mmgcn_iemocap"](tmp_path)
    _edit(fx, index, "Ses01F_impro01", value)
    expect_error(
        lambda: read_features(path=str(fx.path)),
        str(fx.path),
        "dialogue key 'Ses01F_impro01'",
        *fragments,
        unchanged=(fx.path,),
    )


def test_feature_dict_missing_a_dialogue(tmp_path: Path) -> None:
    fx = WRITERS["multiemo_meld"](tmp_path)
    table = dict(fx.arrays["audio"])
    del table[1160]
    dump(fx.extra_files["audio"], table)
    expect_error(
        lambda: read_features(**data_kwargs(fx)),
        str(fx.extra_files["audio"]),
        "dialogue key 1160",
        "missing from 'audio'",
    )


def test_per_utterance_field_lengths_must_agree(tmp_path: Path) -> None:
    fx = WRITERS["sdt_meld"](tmp_path)
    _edit(fx, 1, 7, fx.dialogues.speakers[7][:1])
    expect_error(
        lambda: read_features(path=str(fx.path)),
        str(fx.path),
        "dialogue key 7",
        "'videoSpeakers' has 1 entries but 'videoSentence' has 2",
    )


@pytest.mark.parametrize(
    "obj, found",
    [
        (tuple(range(5)), "a tuple of 5 items"),
        (list(range(8)), "a list of 8 items"),
    ],
)
def test_unknown_layout_lists_every_known_one(tmp_path: Path, obj, found: str) -> None:
    path = dump(tmp_path / "odd.pkl", obj)
    msg = expect_error(
        lambda: read_features(path=str(path)),
        str(path),
        "unknown pickle layout",
        found,
        "known layouts",
    )
    for length in (6, 7, 9, 10, 11, 12, 13, 14):
        assert f"{length} items ({LAYOUTS[length].name}:" in msg
    for name in (
        "cosmic_text",
        "cosmic_meld_text",
        "dialoguegcn",
        "meld_features_raw",
        "mmgcn_meld",
        "cosmic_roberta",
        "cosmic_meld_roberta",
        "sdt_iemocap",
        "sdt_meld",
        "graphsmile_meld",
    ):
        assert f"{name}: " in msg


def test_known_length_with_wrong_items_is_an_unknown_layout(tmp_path: Path) -> None:
    path = dump(tmp_path / "odd.pkl", [{}] * 12)
    expect_error(
        lambda: read_features(path=str(path)),
        str(path),
        "unknown pickle layout",
        "a list of 12 items",
        "item 10 is a dict",
        "'trainVid'",
        "known layouts",
    )


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_forbidden_classes_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    fx = WRITERS["mmgcn_meld"](tmp_path)
    _edit(fx, 5, 0, _Evil(marker))
    expect_error(
        lambda: read_features(path=str(fx.path)),
        str(fx.path),
        "pickle tries to import",
        "only builtins and numpy are allowed",
    )
    multi = tmp_path / "multi"
    multi.mkdir()
    fx = WRITERS["multiemo_iemocap"](multi)
    dump(fx.extra_files["visual"], {"Ses01F_impro01": _Evil(marker)})
    expect_error(
        lambda: read_features(**data_kwargs(fx)),
        str(fx.extra_files["visual"]),
        "pickle tries to import",
    )
    assert not marker.exists()


def test_multiemo_config_errors(tmp_path: Path) -> None:
    fx = WRITERS["multiemo_iemocap"](tmp_path)
    paths = data_kwargs(fx)["paths"]
    speakers = {"speakers": paths["speakers"]}
    expect_error(
        lambda: read_features(paths={**paths, "faces": "x"}),
        "data.paths.faces",
        "speakers, text, audio, visual",
    )
    expect_error(lambda: read_features(paths={"text": paths["text"]}), "needs 'speakers'")
    expect_error(lambda: read_features(paths=speakers), "names no feature file")
    expect_error(lambda: read_features(paths=paths, path=paths["speakers"]), "not both")
    expect_error(
        lambda: read_features(paths=paths, options={"text_fields": ["text"]}),
        "text_fields",
        "MultiEMO",
    )
    expect_error(
        lambda: read_features(paths={**speakers, "audio": str(tmp_path)}),
        "data.paths.audio",
        "not a file",
    )
    # only the modalities given are read
    _, store = read_features(paths={**speakers, "audio": paths["audio"]})
    assert store.dims() == {"audio": 512}


def test_variants_of_one_length_are_told_apart_by_content(tmp_path: Path) -> None:
    # a MELD_features_raw pickle whose dialogues' sentence lists lead with an empty dialogue
    # still reads as meld_features_raw through its last item (a sentiment dict)
    fx = WRITERS["meld_features_raw"](tmp_path)
    obj = list(pickle.loads(fx.path.read_bytes()))
    obj[5] = {"empty": [], **obj[5]}
    dump(fx.path, tuple(obj))
    corpus, store = read_features(path=str(fx.path))
    assert corpus.meta["layout"] == "meld_features_raw"
    assert store.dims() == {"text": 600, "audio": 300}
