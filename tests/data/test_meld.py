"""The meld reader on the real MELD CSVs and on tiny hand-written ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ercgraph.data.corpus import MELD_LABELS
from ercgraph.data.meld import meld_pickle_key_to_id
from ercgraph.errors import ErcgraphError

from .helpers import expect_error, read, write

HEADER = (
    "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,"
    "StartTime,EndTime"
)


@pytest.fixture(scope="module")
def meld(data_root: Path):
    return read("meld", data_root)


def test_split_counts_match_the_official_release(meld) -> None:
    df = meld.df
    counts = {
        s: (int((df.split == s).sum()), df.dialogue_id[df.split == s].nunique())
        for s in ("train", "dev", "test")
    }
    assert counts == {"train": (9989, 1038), "dev": (1109, 114), "test": (2610, 280)}
    assert meld.name == "meld"
    assert meld.labels == MELD_LABELS
    train = df.label[df.split == "train"].value_counts().to_dict()
    assert train == {
        "neutral": 4710,
        "joy": 1743,
        "surprise": 1205,
        "anger": 1109,
        "sadness": 683,
        "disgust": 271,
        "fear": 268,
    }


def test_dialogue_key_convention(meld) -> None:
    df = meld.df
    ids = set(df.dialogue_id)
    assert {"train_0", "dev_0", "test_0", "train_1038", "dev_113", "test_279"} <= ids
    assert "train_60" not in ids  # absent from the official train CSV
    assert (df.dialogue_id == df.split + "_" + df.meld_dialogue_id.astype(str)).all()
    assert (df.turn == df.meld_utterance_id).all()
    # the same dialogue number in two splits is two dialogues
    assert not df[df.dialogue_id == "train_0"].text.equals(df[df.dialogue_id == "dev_0"].text)
    assert meld_pickle_key_to_id(0) == ("train", 0)
    assert meld_pickle_key_to_id(1039) == ("dev", 0)
    assert meld_pickle_key_to_id(1153 + 279) == ("test", 279)


def test_text_keeps_typographic_quotes_and_no_crlf(meld) -> None:
    first = meld.df.iloc[0]
    assert first.dialogue_id == "train_0" and first.turn == 0
    assert first.text == (
        "also I was the point person on my company’s transition from the KL-5 to GR-6 system."
    )
    text = "".join(meld.df.text)
    assert "\r" not in text and "\x92" not in text and "â€" not in text
    assert "’" in text and "“" in text


def test_other_columns(meld) -> None:
    df = meld.df
    first = df.iloc[0]
    assert first.speaker == "Chandler" and first.sentiment == "neutral"
    assert (first.season, first.episode) == (8, 21)
    assert first.start == pytest.approx(16 * 60 + 16.059)
    assert first.end == pytest.approx(16 * 60 + 21.731)
    assert set(df.sentiment) == {"neutral", "positive", "negative"}
    assert (df.end >= df.start - 1e-9).mean() > 0.99
    assert df.groupby("dialogue_id").speaker.nunique().max() == 9
    dev = df[df.dialogue_id == "dev_1"].set_index("turn")  # times written "0:12:43,012"
    assert dev.loc[4, "start"] == pytest.approx(12 * 60 + 43.012)


def test_dyadic_meld_reads_through_paths(data_root: Path) -> None:
    corpus = read(
        "meld",
        data_root,
        paths={s: f"meld/dyadic/{s}_sent_emo_dya.csv" for s in ("train", "dev", "test")},
    )
    df = corpus.df
    assert int((df.split == "train").sum()) == 12840
    assert df.dialogue_id[df.split == "train"].nunique() == 2160
    assert df.groupby("dialogue_id").speaker.nunique().max() == 2
    assert "Old_Dialogue_ID" in df.columns  # extra columns are kept


def _tiny(folder: Path, rows: dict[str, list[str]], newline: str = "\r\n") -> Path:
    folder.mkdir(exist_ok=True)
    for split, lines in rows.items():
        write(folder / f"{split}_sent_emo.csv", "\n".join([HEADER, *lines]) + "\n", newline)
    return folder


ROW = '{n},{text},Ross,{emo},neutral,{d},{u},1,2,"00:00:0{u},500","0:00:0{u},9"'


def _rows(split_rows: int = 2, emo: str = "neutral", text: str = "Hi.") -> list[str]:
    return [ROW.format(n=i, text=text, emo=emo, d=0, u=i) for i in range(split_rows)]


def test_tiny_crlf_file_with_typographic_quotes_and_mojibake(tmp_path: Path) -> None:
    folder = _tiny(
        tmp_path / "m",
        {
            "train": [
                '1,"He said “hi” – I’m, uh, fine",Ross,Joy,positive,0,0,1,2,'
                '"00:00:01,5","0:00:02,250"',
                "2,It\u00e2\u20ac\u2122s broken,Rachel,anger,negative,0,1,1,2,"
                '"00:00:03,000","00:00:04,000"',
                '3,"Multi\nline",Ross,neutral,neutral,0,2,1,2,"00:00:05,000","00:00:06,000"',
            ],
            "dev": _rows(),
            "test": _rows(),
        },
    )
    corpus = read("meld", None, path=str(folder))
    train = corpus.df[corpus.df.split == "train"]
    assert train.text.tolist() == ["He said “hi” – I’m, uh, fine", "It’s broken", "Multi\nline"]
    assert train.label.tolist() == ["joy", "anger", "neutral"]
    assert train.start.tolist() == pytest.approx([1.5, 3.0, 5.0])
    assert train.end.iloc[0] == pytest.approx(2.25)
    assert corpus.dialogue_ids() == ["train_0", "dev_0", "test_0"]


def test_cp1252_mojibake_in_a_latin1_read_file_is_repaired(tmp_path: Path) -> None:
    folder = _tiny(
        tmp_path / "m", {"train": _rows(text="It\x92s"), "dev": _rows(), "test": _rows()}
    )
    corpus = read("meld", None, path=str(folder))
    assert corpus.df.text.iloc[0] == "It’s"


def test_non_utf8_file_names_file_and_byte(tmp_path: Path) -> None:
    folder = _tiny(tmp_path / "m", {"dev": _rows(), "test": _rows()})
    bad = write(
        folder / "train_sent_emo.csv",
        "\n".join([HEADER, ROW.format(n=0, text="It’s", emo="joy", d=0, u=0)]) + "\n",
        "\r\n",
        encoding="cp1252",
    )
    offset = bad.read_bytes().index(b"\x92")
    expect_error(
        lambda: read("meld", None, path=str(folder)),
        str(bad),
        f"byte {offset}",
        "line 2",
        "data.options.encoding",
        unchanged=(bad,),
    )
    # the way out the message suggests works
    corpus = read("meld", None, path=str(folder), options={"encoding": "cp1252"})
    assert corpus.df.text.iloc[0] == "It’s"


def test_missing_column_names_column_and_file(tmp_path: Path) -> None:
    folder = _tiny(tmp_path / "m", {"dev": _rows(), "test": _rows()})
    bad = write(
        folder / "train_sent_emo.csv", "Utterance,Speaker,Dialogue_ID,Utterance_ID\nHi,Ross,0,0\n"
    )
    expect_error(
        lambda: read("meld", None, path=str(folder)),
        str(bad),
        "missing column 'Emotion'",
        "Utterance_ID",
        unchanged=(bad,),
    )


@pytest.mark.parametrize(
    "row, fragments",
    [
        (ROW.format(n=0, text="Hi", emo="happy", d=0, u=0), ["line 2", "unknown emotion 'happy'"]),
        (ROW.format(n=0, text="Hi", emo="joy", d="x", u=0), ["line 2", "'Dialogue_ID'", "integer"]),
        ('0,Hi,Ross,joy,neutral,0,0,1,2,"noon","00:00:01,0"', ["line 2", "'StartTime'", "noon"]),
        ("0,Hi,,joy,neutral,0,0,1,2,,", ["line 2", "'Speaker'", "empty"]),
    ],
)
def test_bad_rows_name_file_line_and_column(tmp_path: Path, row: str, fragments: list[str]) -> None:
    folder = _tiny(tmp_path / "m", {"train": [row], "dev": _rows(), "test": _rows()})
    bad = folder / "train_sent_emo.csv"
    expect_error(
        lambda: read("meld", None, path=str(folder)), str(bad), *fragments, unchanged=(bad,)
    )


def test_duplicate_utterance_names_both_lines(tmp_path: Path) -> None:
    folder = _tiny(
        tmp_path / "m",
        {
            "train": _rows() + [ROW.format(n=9, text="x", emo="joy", d=0, u=1)],
            "dev": _rows(),
            "test": _rows(),
        },
    )
    bad = folder / "train_sent_emo.csv"
    expect_error(
        lambda: read("meld", None, path=str(folder)),
        str(bad),
        "line 4",
        "duplicate utterance",
        "dialogue 0,",
        "turn 1",
        "line 3",
        unchanged=(bad,),
    )


def test_missing_split_file_and_bad_config(tmp_path: Path) -> None:
    folder = _tiny(tmp_path / "m", {"train": _rows(), "dev": _rows()})
    expect_error(lambda: read("meld", None, path=str(folder)), "test_sent_emo.csv", "test split")
    expect_error(lambda: read("meld", None, path=str(tmp_path / "nope")), "does not exist")
    expect_error(
        lambda: read("meld", None, path=str(folder), options={"sep": ";"}),
        "data.options.sep",
        "encoding",
    )
    expect_error(
        lambda: read("meld", None, paths={"validation": str(folder / "x.csv")}),
        "data.paths.validation",
        "does not exist",
    )
    only_train = read("meld", None, paths={"train": str(folder / "train_sent_emo.csv")})
    assert only_train.splits == ["train"]


def test_default_path_is_meld_under_the_root(data_root: Path) -> None:
    corpus = read("meld", data_root)
    assert corpus.num_utterances == 9989 + 1109 + 2610
    with pytest.raises(ErcgraphError, match="does not exist"):
        read("meld", data_root / "meld")  # no meld/meld


def test_row_order_is_split_dialogue_turn(meld) -> None:
    df = meld.df
    rank = df.split.map({"train": 0, "dev": 1, "test": 2}).to_numpy()
    assert (np.diff(rank) >= 0).all()
    same = df.dialogue_id.to_numpy()[1:] == df.dialogue_id.to_numpy()[:-1]
    assert (np.diff(df.turn.to_numpy())[same] > 0).all()
