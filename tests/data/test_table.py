"""The table reader: CSV/TSV/JSONL/parquet with a column mapping, and its error messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ercgraph.data import table

from .helpers import expect_error, read, write

CSV = """conv,utt_no,who,emotion,utterance,mood
c1,0,ann,joy,Hello there,0.5
c1,1,bob,neutral,“Hi”,0.1
c2,0,ann,anger,Go away,-0.9
"""


def _split_file(tmp_path: Path) -> Path:
    return write(
        tmp_path / "all.csv",
        """dlg,turn,spk,emo,txt,part
d1,0,A,joy,hi,train
d1,1,B,neutral,yo,train
d2,0,A,sad,meh,valid
d3,0,C,joy,NA,test
""",
    )


COLS = {"dialogue_id": "dlg", "speaker": "spk", "label": "emo", "text": "txt", "split": "part"}


def test_split_column_with_aliases(tmp_path: Path) -> None:
    corpus = read(
        "table",
        None,
        path=str(_split_file(tmp_path)),
        columns=COLS,
        labels=["joy", "neutral", "sad"],
    )
    df = corpus.df
    assert df.split.tolist() == ["train", "train", "dev", "test"]
    assert df.dialogue_id.tolist() == ["d1", "d1", "d2", "d3"]
    assert df.turn.tolist() == [0, 1, 0, 0]
    assert df.text.tolist() == ["hi", "yo", "meh", "NA"]  # "NA" is text, not a missing value
    assert corpus.name == "all"


def test_label_inference_is_sorted_from_train(tmp_path: Path) -> None:
    path = write(
        tmp_path / "all.csv",
        """dlg,spk,emo,part
d1,A,joy,train
d1,B,anger,train
d1,A,neutral,train
d2,A,joy,test
""",
    )
    no_text = {k: v for k, v in COLS.items() if k != "text"}
    corpus = read("table", None, path=str(path), columns=no_text)
    assert corpus.labels == ("anger", "joy", "neutral")
    assert corpus.meta["label_source"] == "sorted labels of the train split"
    assert corpus.df.turn.tolist() == [0, 1, 2, 0]  # file order inside each dialogue
    given = read(
        "table", None, path=str(path), labels=["neutral", "joy", "anger", "fear"], columns=no_text
    )
    assert given.labels == ("neutral", "joy", "anger", "fear")


def test_unknown_label_in_dev_names_row_and_column(tmp_path: Path) -> None:
    path = _split_file(tmp_path)
    expect_error(
        lambda: read("table", None, path=str(path), columns=COLS),
        str(path),
        "line 4",
        "unknown label 'sad'",
        "column 'emo'",
        "split 'dev'",
        "['joy', 'neutral']",
        unchanged=(path,),
    )
    expect_error(
        lambda: read("table", None, path=str(path), columns=COLS, labels=["joy"]),
        str(path),
        "line 3",
        "unknown label 'neutral'",
        "data.labels",
    )


def test_per_split_paths_and_extra_columns(tmp_path: Path) -> None:
    train = write(tmp_path / "train.csv", CSV)
    write(tmp_path / "test.csv", CSV.replace("c1", "t1").replace("c2", "t2"))
    columns = {
        "dialogue_id": "conv",
        "turn": "utt_no",
        "speaker": "who",
        "label": "emotion",
        "text": "utterance",
        "valence": "mood",
    }
    corpus = read(
        "table", tmp_path, paths={"train": "train.csv", "test": "test.csv"}, columns=columns
    )
    df = corpus.df
    assert corpus.splits == ["train", "test"]
    assert df.dialogue_id.tolist() == ["c1", "c1", "c2", "t1", "t1", "t2"]
    assert df.text.iloc[1] == "“Hi”"
    assert df.valence.tolist() == pytest.approx([0.5, 0.1, -0.9] * 2)
    assert corpus.labels == ("anger", "joy", "neutral")
    # the same ids in both files: an error that says how to fix it, unless prefixed
    write(tmp_path / "test.csv", CSV)
    expect_error(
        lambda: read(
            "table", tmp_path, paths={"train": "train.csv", "test": "test.csv"}, columns=columns
        ),
        str(tmp_path / "test.csv"),
        "line 2",
        "dialogue 'c1'",
        str(train),
        "prefix_split",
    )
    prefixed = read(
        "table",
        tmp_path,
        paths={"train": "train.csv", "test": "test.csv"},
        columns=columns,
        options={"prefix_split": True},
    )
    assert prefixed.dialogue_ids() == ["train_c1", "train_c2", "test_c1", "test_c2"]


def test_multi_column_dialogue_id_and_kept_source_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.csv",
        """season,episode,scene,speaker,label,split,turn_no
1,01,007,A,x,train,5
1,01,007,B,y,train,9
1,02,007,A,x,train,1
""",
    )
    corpus = read(
        "table",
        None,
        path=str(path),
        columns={"dialogue_id": ["season", "episode", "scene"], "label": "label"},
    )
    df = corpus.df
    # ids are read as text, so "01"/"007" keep their zeros
    assert df.dialogue_id.tolist() == ["1_01_007", "1_01_007", "1_02_007"]
    assert df.turn.tolist() == [0, 1, 0]
    assert df.turn_no.tolist() == [5, 9, 1]  # unmapped columns are kept
    assert {"season", "episode", "scene"} <= set(df.columns)


def test_name_clash_keeps_the_source_column_as_source_name(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "dialogue_id,speaker,label,emotion\nd,A,0,joy\nd,B,3,sad\n")
    corpus = read(
        "table", None, path=str(path), columns={"label": "emotion"}, options={"split": "train"}
    )
    assert corpus.df.label.tolist() == ["joy", "sad"]
    assert corpus.df.source_label.tolist() == [0, 3]


def test_jsonl(tmp_path: Path) -> None:
    lines = [
        {"d": 10, "t": 1, "s": "A", "y": "joy", "x": "b", "split": "test"},
        {"d": 10, "t": 0, "s": "B", "y": "joy", "x": "a", "split": "train"},
        {"d": 11, "t": 0, "s": "A", "y": "sad", "x": "c", "split": "train"},
    ]
    path = tmp_path / "data.jsonl"
    path.write_text(
        "\n".join(json.dumps(r) for r in lines[1:])
        + "\n\n"
        + json.dumps({**lines[0], "d": 12})
        + "\n",
        encoding="utf-8",
    )
    corpus = read(
        "table",
        None,
        path=str(path),
        columns={"dialogue_id": "d", "turn": "t", "speaker": "s", "label": "y", "text": "x"},
    )
    df = corpus.df
    assert df.dialogue_id.tolist() == ["10", "11", "12"]
    assert df.split.tolist() == ["train", "train", "test"]
    assert corpus.labels == ("joy", "sad")
    bad = write(tmp_path / "bad.jsonl", '{"d": 1}\n[1, 2]\n')
    expect_error(lambda: read("table", None, path=str(bad)), str(bad), "line 2", "JSON object")
    bad = write(tmp_path / "bad2.jsonl", '{"d": 1}\n\n{"d": \n')
    expect_error(lambda: read("table", None, path=str(bad)), str(bad), "line 3", "not valid JSON")


def test_tsv_and_unlabelled(tmp_path: Path) -> None:
    path = write(
        tmp_path / "chat.tsv",
        "dialogue_id\tspeaker\ttext\na\tA\thello, world\na\tB\t“quoted”\n",
        newline="\r\n",
    )
    corpus = read("table", None, path=str(path))
    assert corpus.splits == ["unlabelled"]
    assert corpus.labels == ()
    assert corpus.df.text.tolist() == ["hello, world", "“quoted”"]
    assert corpus.df.label.isna().all()
    # options.format overrides the suffix
    txt = write(tmp_path / "chat.txt", path.read_text(encoding="utf-8"))
    assert read("table", None, path=str(txt), options={"format": "tsv"}).num_utterances == 2
    expect_error(
        lambda: read("table", None, path=str(txt)), str(txt), "'.txt'", "data.options.format"
    )


def test_parquet_without_pyarrow_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1 not really")
    monkeypatch.setattr(table, "pyarrow_available", lambda: False)
    expect_error(
        lambda: read("table", None, path=str(path)),
        str(path),
        "pip install pyarrow",
        unchanged=(path,),
    )


def test_parquet_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow", reason="parquet support is optional (pip install pyarrow)")
    path = tmp_path / "t.parquet"
    pd.DataFrame(
        {
            "dialogue_id": ["a", "a"],
            "speaker": ["A", "B"],
            "label": ["joy", "sad"],
            "split": ["train", "train"],
        }
    ).to_parquet(path)
    assert read("table", None, path=str(path)).labels == ("joy", "sad")


# -- bad input: every message names the file and the culprit; the file is left alone -----------
GOOD = "dialogue_id,turn,speaker,label,text,split\n"


@pytest.mark.parametrize(
    "body, columns, fragments",
    [
        (
            GOOD + "d,0,A,joy,hi,train\n",
            {"speaker": "who"},
            ["missing column 'who'", "data.columns.speaker", "['dialogue_id', 'turn'"],
        ),
        (
            "conv,speaker,label,split\nd,A,joy,train\n",
            None,
            ["no 'dialogue_id' column", "data.columns.dialogue_id", "['conv', 'speaker'"],
        ),
        (
            GOOD + "d,0,A,joy,hi,train\nd,0,B,joy,yo,train\n",
            None,
            ["line 3", "duplicate utterance", "dialogue 'd', turn 0", "already at line 2"],
        ),
        (
            GOOD + "d,0,A,joy,hi,train\nd,one,B,joy,yo,train\n",
            None,
            ["line 3", "'turn'", "integer", "'one'"],
        ),
        (
            GOOD + "d,0,A,joy,hi,train\nd,1,B,joy,,train\n",
            None,
            ["line 3", "'text'", "empty", "dialogue 'd'"],
        ),
        (GOOD + "d,0,A,joy,hi,train\nd,1,,joy,yo,train\n", None, ["line 3", "'speaker'", "empty"]),
        (
            GOOD + "d,0,A,joy,hi,train\n,1,B,joy,yo,train\n",
            None,
            ["line 3", "'dialogue_id'", "empty"],
        ),
        (
            GOOD + "d,0,A,joy,hi,train\nd,1,B,,yo,train\n",
            None,
            ["line 3", "'label'", "empty", "split 'train'"],
        ),
        (
            GOOD + "d,0,A,joy,hi,train\ne,0,B,joy,yo,holdout\n",
            None,
            ["line 3", "column 'split'", "'holdout'", "train"],
        ),
        (
            GOOD + "d,0,A,joy,hi,train\nd,1,B,joy,yo,test\n",
            None,
            ["line 3", "dialogue 'd'", "split 'test'", "one split"],
        ),
        (GOOD + "d,0,A,joy,hi,train,extra\n", None, ["line 2", "more fields than the header"]),
        ("", None, ["empty file"]),
        ("  \n", None, ["empty file"]),
        (GOOD, None, ["empty file", "no data rows"]),
        (
            "dialogue_id,speaker,label\nd,A,joy\n",
            None,
            ["cannot tell the split", "data.columns.split", "data.paths"],
        ),
        (
            "dialogue_id,speaker,split\nd,A,train\n",
            None,
            ["line 2", "needs labels", "data.columns.label"],
        ),
    ],
)
def test_bad_tables(tmp_path: Path, body: str, columns: dict | None, fragments: list[str]) -> None:
    path = write(tmp_path / "bad.csv", body)
    expect_error(
        lambda: read("table", None, path=str(path), columns=columns),
        str(path),
        *fragments,
        unchanged=(path,),
    )


def test_non_utf8_table(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes((GOOD + "d,0,A,joy,caf\xe9,train\n").encode("latin-1"))
    offset = path.read_bytes().index(b"\xe9")
    expect_error(
        lambda: read("table", None, path=str(path)),
        str(path),
        f"byte {offset}",
        "line 2",
        "UTF-8",
        unchanged=(path,),
    )
    assert read("table", None, path=str(path), options={"encoding": "latin-1"}).df.text[0] == "café"
    expect_error(
        lambda: read("table", None, path=str(path), options={"encoding": "klingon"}),
        "unknown encoding 'klingon'",
    )


def test_label_inference_needs_train(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", GOOD + "d,0,A,joy,hi,test\n")
    expect_error(
        lambda: read("table", None, path=str(path)), str(path), "no labelled train", "data.labels"
    )
    assert read("table", None, path=str(path), labels=["joy"]).splits == ["test"]


def test_config_mistakes(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", GOOD + "d,0,A,joy,hi,train\n")
    expect_error(
        lambda: read("table", None, path=str(tmp_path / "missing.csv")),
        "data.path",
        "missing.csv",
        "does not exist",
    )
    expect_error(
        lambda: read("table", None, paths={"train": str(path), "dev": "nope.csv"}),
        "data.paths.dev",
        "does not exist",
    )
    expect_error(
        lambda: read("table", None, path=str(path), paths={"train": str(path)}), "either data.path"
    )
    expect_error(
        lambda: read("table", None, paths={"holdout": str(path)}), "data.paths.holdout", "'holdout'"
    )
    expect_error(
        lambda: read("table", None, paths={"train": str(path)}, columns={"split": "split"}),
        "data.columns.split",
        "data.paths",
    )
    expect_error(
        lambda: read("table", None, path=str(path), columns={"speaker": ["a", "b"]}),
        "data.columns.speaker",
        "only dialogue_id",
    )
    expect_error(
        lambda: read("table", None, path=str(path), options={"sep": ";"}),
        "data.options.sep",
        "format, encoding, split, prefix_split",
    )
    expect_error(lambda: read("table", None, path=str(tmp_path)), str(tmp_path), "not a file")


def test_options_split_marks_one_file(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "dialogue_id,speaker,label\nd,A,joy\nd,B,sad\n")
    corpus = read(
        "table", None, path=str(path), options={"split": "validation"}, labels=["joy", "sad"]
    )
    assert corpus.splits == ["dev"]
    assert np.array_equal(corpus.label_ids(), [0, 1])


def test_media_root_is_the_table_folder_or_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative media paths are kept as written; the reader records the folder they resolve
    against (absolute), whatever the working directory."""
    body = "dialogue_id,speaker,label,audio_path\nd1,A,joy,wav/a.wav\nd1,B,sad,/abs/b.wav\n"
    (tmp_path / "proj" / "media").mkdir(parents=True)
    write(tmp_path / "proj" / "t.csv", body)
    monkeypatch.chdir(tmp_path / "proj")
    corpus = read("table", None, path="t.csv", options={"split": "train"})
    assert corpus.df.audio_path.tolist() == ["wav/a.wav", "/abs/b.wav"]
    assert corpus.meta["media_root"] == str((tmp_path / "proj").resolve())
    assert corpus.subset(["train"]).meta["media_root"] == corpus.meta["media_root"]
    # media_root: relative to the data root
    opts = {"split": "train", "media_root": "media"}
    corpus = read("table", tmp_path / "proj", path="t.csv", options=opts)
    assert corpus.meta["media_root"] == str((tmp_path / "proj" / "media").resolve())
    expect_error(
        lambda: read("table", tmp_path, path="proj/t.csv", options={"media_root": "nowhere"}),
        "data.options.media_root",
        "nowhere",
        "does not exist",
    )
    expect_error(
        lambda: read("table", tmp_path, path="proj/t.csv", options={"media_root": "proj/t.csv"}),
        "data.options.media_root",
        "is not a folder",
    )
    # split files in different folders: one folder per split
    for split in ("train", "dev"):
        (tmp_path / split).mkdir()
        write(tmp_path / split / "t.csv", body.replace("d1", f"{split}1"))
    paths = {"train": "train/t.csv", "dev": "dev/t.csv"}
    corpus = read("table", tmp_path, paths=paths, labels=["joy", "sad"])
    assert corpus.meta["media_root"] == {
        "train": str((tmp_path / "train").resolve()),
        "dev": str((tmp_path / "dev").resolve()),
    }


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_numeric_cells_print_as_plain_values(tmp_path: Path, fmt: str) -> None:
    # typed formats keep numbers as numbers: numpy 2 would show them as np.float64(1.5)
    row = {"dialogue_id": "d", "speaker": "A", "label": "joy", "text": "hi", "split": "train"}
    cases = [
        ([{**row, "turn": 0}, {**row, "turn": 1.5}], ["column 'turn'", "integer, got 1.5"]),
        ([{**row, "turn": 0, "split": 3}], ["column 'split'", "split 3 is not one of"]),
    ]
    for i, (records, fragments) in enumerate(cases):
        path = tmp_path / f"t{i}.{fmt}"
        if fmt == "jsonl":
            path.write_text("\n".join(json.dumps(r) for r in records))
        else:
            pd.DataFrame(records).to_parquet(path)
        msg = expect_error(lambda p=path: read("table", None, path=str(p)), *fragments)
        assert "np." not in msg, msg


def test_corpus_contract_prints_plain_values() -> None:
    from ercgraph.data.corpus import MELD_LABELS, Corpus
    from ercgraph.errors import ErcgraphError

    df = pd.DataFrame(
        {
            "split": ["train", "train"],
            "dialogue_id": ["d", "d"],
            "turn": np.array([0.0, 1.5]),
            "speaker": ["A", "B"],
            "label": ["joy", "joy"],
        }
    )
    with pytest.raises(ErcgraphError, match=r"column 'turn' must be an integer, got 1\.5$"):
        Corpus(df, "toy", MELD_LABELS)
    df["turn"] = [0, 1]
    df["label"] = np.array([3, 4], dtype=np.int64)
    with pytest.raises(ErcgraphError, match=r"unknown label 3 in column 'label'"):
        Corpus(df, "toy", MELD_LABELS)
