"""The iemocap reader on a tiny fixture in the official IEMOCAP_full_release layout."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ercgraph.config import Config, DataConfig
from ercgraph.data.corpus import IEMOCAP_LABELS
from ercgraph.data.iemocap import IEMOCAP_FOUR_LABELS, dev_dialogues, iemocap_speaker
from ercgraph.data.load import load_corpus

from .helpers import expect_error, read
from .iemocap_fixture import fixture_dialogues, write_iemocap_fixture

SIX = set(IEMOCAP_LABELS)
ALL = fixture_dialogues()  # the default fixture's content, dialogue → utterances in time order
ONE = {"sessions": [1], "test_session": None}  # options for a Session1-only fixture


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_iemocap_fixture(tmp_path_factory.mktemp("iemocap"), with_avi=True)


@pytest.fixture(scope="module")
def six(release: Path):
    return read("iemocap", None, path=str(release))


@pytest.fixture(scope="module")
def four(release: Path):
    return read("iemocap", None, path=str(release), options={"labels": "four"})


@pytest.fixture()
def small(tmp_path: Path) -> Path:
    """A Session1-only release (two dialogues) to break in the error tests."""
    return write_iemocap_fixture(tmp_path, sessions=(1,))


def _line_of(path: Path, fragment: str) -> int:
    lines = path.read_text().split("\n")
    return next(i for i, line in enumerate(lines, start=1) if fragment in line)


def test_counts_columns_and_dropped_utterances(six) -> None:
    kept = {d: [u for u in utts if u.label in SIX] for d, utts in ALL.items()}
    dropped = [u.label for utts in ALL.values() for u in utts if u.label not in SIX]
    assert six.name == "iemocap"
    assert six.num_utterances == sum(map(len, kept.values())) == 39
    assert set(six.dialogue_ids()) == set(ALL) and len(ALL) == 10
    assert six.meta["dropped_utterances"] == len(dropped) == 12
    assert six.meta["dropped_by_label"] == {"oth": 2, "sur": 4, "xxx": 6}
    assert six.meta["dropped_dialogues"] == []
    assert six.meta["missing_audio"] == 0
    assert {
        "text",
        "start",
        "end",
        "valence",
        "arousal",
        "dominance",
        "audio_path",
        "video_path",
        "session",
        "utterance_id",
        "consensus_label",
    } <= set(six.df.columns)
    # dropped utterances are gone from their dialogue, not kept as unlabelled nodes
    assert set(six.df.utterance_id) == {u.utterance_id for us in kept.values() for u in us}
    assert six.df.label.notna().all()
    per_dialogue = six.df.groupby("dialogue_id").size().to_dict()
    assert per_dialogue == {d: len(us) for d, us in kept.items()}


def test_splits_session5_is_test_and_dev_rule(six, release: Path) -> None:
    df = six.df
    split_of = df.groupby("dialogue_id")["split"].first()
    assert set(split_of[split_of == "test"].index) == {d for d in ALL if d.startswith("Ses05")}
    assert (df.session[df.split == "test"] == 5).all()
    # default: sorted training dialogues at positions 0, 10, 20 ... (only the first of 8 here)
    assert list(split_of[split_of == "dev"].index) == ["Ses01F_impro01"]
    assert six.splits == ["train", "dev", "test"]
    pool = sorted(d for d in ALL if not d.startswith("Ses05"))
    every3 = read("iemocap", None, path=str(release), options={"dev_every": 3})
    dev = set(every3.df.dialogue_id[every3.df.split == "dev"])
    assert dev == {pool[0], pool[3], pool[6]} == dev_dialogues(pool, 3)
    assert dev_dialogues([f"d{i:03d}" for i in range(120)], 10) == {
        f"d{i:03d}" for i in range(0, 120, 10)
    }
    none = read("iemocap", None, path=str(release), options={"dev_every": 0})
    assert none.splits == ["train", "test"]
    other = read("iemocap", None, path=str(release), options={"test_session": 1})
    assert set(other.df.dialogue_id[other.df.split == "test"]) == {
        d for d in ALL if d.startswith("Ses01")
    }
    assert "Ses01F_impro01" not in set(other.df.dialogue_id[other.df.split == "dev"])
    no_test = read("iemocap", None, path=str(release), options={"test_session": None})
    assert "test" not in no_test.splits


def test_six_class_labels(six) -> None:
    assert six.labels == IEMOCAP_LABELS == ("hap", "sad", "neu", "ang", "exc", "fru")
    assert (six.df.label == six.df.consensus_label).all()
    assert set(six.df.label) == SIX
    ids = six.label_ids()
    assert (ids == np.array([IEMOCAP_LABELS.index(v) for v in six.df.label])).all()
    assert six.meta["label_setting"] == "six"


def test_four_class_merges_exc_into_hap_and_drops_fru(four, six) -> None:
    assert four.labels == IEMOCAP_FOUR_LABELS == ("hap", "sad", "neu", "ang")
    assert set(four.df.label) == set(IEMOCAP_FOUR_LABELS)
    exc = four.df.consensus_label == "exc"
    assert exc.any() and (four.df.label[exc] == "hap").all()
    assert "fru" not in set(four.df.consensus_label)
    n_fru = int((six.df.label == "fru").sum())
    assert four.num_utterances == six.num_utterances - n_fru
    assert four.meta["dropped_by_label"] == {"fru": n_fru, "oth": 2, "sur": 4, "xxx": 6}
    # ids 0-3 mean the same emotion in both settings
    assert four.labels == six.labels[:4]
    # the dev rule does not move with the label setting
    assert set(four.df.dialogue_id[four.df.split == "dev"]) == set(
        six.df.dialogue_id[six.df.split == "dev"]
    )
    # turns are renumbered over the kept utterances
    for _, g in four.df.groupby("dialogue_id"):
        assert list(g.turn) == list(range(len(g)))


def test_data_labels_reorders_the_chosen_set(release: Path) -> None:
    alpha = read(
        "iemocap",
        None,
        path=str(release),
        labels=["ang", "hap", "neu", "sad"],
        options={"labels": "four"},
    )
    assert alpha.labels == ("ang", "hap", "neu", "sad")
    assert (alpha.label_ids()[alpha.df.label.to_numpy() == "ang"] == 0).all()
    expect_error(
        lambda: read("iemocap", None, path=str(release), labels=["hap", "sad"]),
        "data.labels",
        "six-class",
        "'exc'",
    )


def test_speakers_from_the_utterance_letter(six) -> None:
    assert iemocap_speaker("Ses01F_impro01_M000") == "Ses01_M"
    assert iemocap_speaker("Ses03M_script02_2_F017") == "Ses03_F"
    expect_error(lambda: iemocap_speaker("Ses01F_impro01_MXX0"), "'Ses01F_impro01_MXX0'")
    expected = six.df.utterance_id.str[:5] + "_" + six.df.utterance_id.str[-4]
    assert (six.df.speaker == expected).all()
    # the mocap letter of the dialogue name is not the speaker
    row = six.df[six.df.utterance_id == "Ses01M_script01_1_F000"].iloc[0]
    assert row.speaker == "Ses01_F"
    assert set(six.df.speaker) == {f"Ses0{s}_{g}" for s in range(1, 6) for g in "FM"}
    assert (six.df.groupby("dialogue_id").speaker.nunique() == 2).all()


def test_vad_times_and_text(six) -> None:
    truth = {u.utterance_id: u for utts in ALL.values() for u in utts}
    df = six.df
    for col in ("start", "end", "valence", "arousal", "dominance"):
        assert df[col].dtype == np.float64
        want = np.array([getattr(truth[i], col) for i in df.utterance_id])
        assert np.allclose(df[col].to_numpy(), want), col
    assert list(df.text) == [truth[i].text for i in df.utterance_id]
    first = df[df.utterance_id == "Ses01F_impro01_F000"].iloc[0]
    assert first.text == "Excuse me. (Ses01F_impro01 0)"
    assert (first.valence, first.arousal, first.dominance) == (1.5, 2.0, 3.25)
    # the overlap lines (..._MXX0) are skipped, one per dialogue
    assert not df.text.str.contains("Mm-hmm").any()
    assert six.meta["skipped_transcript_lines"] == 10


def test_turns_follow_start_time_not_file_order(six, release: Path) -> None:
    emo = (release / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt").read_text()
    assert emo.index("_F001") < emo.index("_M000")  # the file lists women first
    for d, g in six.df.groupby("dialogue_id"):
        assert list(g.turn) == list(range(len(g)))
        assert g.start.is_monotonic_increasing
        want = [u.utterance_id for u in ALL[d] if u.label in SIX]
        assert list(g.utterance_id) == want
    # rows: split (train, dev, test), then dialogues by name, then turn
    train = sorted(d for d in ALL if d[:5] != "Ses05" and d != "Ses01F_impro01")
    test = sorted(d for d in ALL if d[:5] == "Ses05")
    assert six.dialogue_ids() == train + ["Ses01F_impro01"] + test


def test_audio_and_video_paths(six, release: Path, tmp_path: Path) -> None:
    for p in six.df.audio_path:
        path = Path(p)
        assert path.is_absolute() and path.is_file()
        assert path.parent.parent == release.resolve() / path.parts[-5] / "sentences" / "wav"
    with wave.open(six.df.audio_path.iloc[0], "rb") as w:
        assert (w.getframerate(), w.getnchannels()) == (16000, 1)
    assert Path(six.df.audio_path.iloc[0]).stem == six.df.utterance_id.iloc[0]
    videos = six.df.groupby("dialogue_id").video_path.agg(["first", "nunique"])
    assert (videos["nunique"] == 1).all()
    for d, (p, _) in videos.iterrows():
        assert Path(p).is_file() and Path(p).name == f"{d}.avi" and Path(p).is_absolute()
    # without videos there is no video_path column; a missing wav is None and counted
    plain = write_iemocap_fixture(tmp_path, sessions=(1,))
    gone = plain / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_F000.wav"
    gone.unlink()
    corpus = read("iemocap", None, path=str(plain), options=ONE)
    assert "video_path" not in corpus.df.columns
    assert corpus.meta["missing_audio"] == 1
    row = corpus.df[corpus.df.utterance_id == "Ses01F_impro01_F000"].iloc[0]
    assert pd.isna(row.audio_path)
    assert corpus.df.audio_path.notna().sum() == corpus.num_utterances - 1


def test_load_corpus_with_a_config(release: Path) -> None:
    corpus = load_corpus(Config(data=DataConfig(reader="iemocap", path=str(release))))
    assert corpus.num_utterances == 39 and corpus.splits == ["train", "dev", "test"]
    # data.path defaults to IEMOCAP_full_release under the data root
    default = load_corpus(Config(data=DataConfig(reader="iemocap"), data_root=str(release.parent)))
    assert default.df.equals(corpus.df)
    assert default.source == str(release.resolve())


def test_sessions_option_and_missing_session(tmp_path: Path) -> None:
    release = write_iemocap_fixture(tmp_path, sessions=(1, 2, 4, 5))
    expect_error(
        lambda: read("iemocap", None, path=str(release)),
        str(release),
        "Session3",
        "found Session1, Session2, Session4, Session5",
        "data.options.sessions",
    )
    corpus = read("iemocap", None, path=str(release), options={"sessions": [1, 2, 4, 5]})
    assert sorted(corpus.df.session.unique()) == [1, 2, 4, 5]
    assert corpus.meta["sessions"] == [1, 2, 4, 5]
    corpus = read(
        "iemocap",
        None,
        path=str(release),
        options={"sessions": [2], "dev_every": 0, "test_session": None},
    )
    assert set(corpus.df.session) == {2} and corpus.splits == ["train"]


def test_path_errors(tmp_path: Path, small: Path) -> None:
    expect_error(
        lambda: read("iemocap", None, path=str(tmp_path / "nope")),
        "data.path",
        "nope",
        "does not exist",
    )
    file = tmp_path / "file.txt"
    file.write_text("x")
    expect_error(lambda: read("iemocap", None, path=str(file)), "file.txt", "not a folder")
    # pointing at the parent of the release names the release folder
    expect_error(
        lambda: read("iemocap", None, path=str(tmp_path), options=ONE),
        "Session1",
        "found no Session folder",
        "did you mean",
        "IEMOCAP_full_release",
    )
    emo = small / "Session1" / "dialog" / "EmoEvaluation"
    for p in sorted(emo.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    emo.rmdir()
    expect_error(
        lambda: read("iemocap", None, path=str(small), options=ONE),
        "EmoEvaluation",
        "folder not found",
    )


def test_bad_transcription_line_names_file_and_line(small: Path) -> None:
    path = small / "Session1" / "dialog" / "transcriptions" / "Ses01F_impro01.txt"
    lines = path.read_text().split("\n")
    lines[3] = "Ses01F_impro01_M001 006.0-007.0 no brackets"
    path.write_text("\n".join(lines))
    expect_error(
        lambda: read("iemocap", None, path=str(small), options=ONE),
        str(path),
        "line 4",
        "no brackets",
        "[start-end]: text",
        unchanged=(path,),
    )


def test_labelled_utterance_without_transcript(small: Path) -> None:
    path = small / "Session1" / "dialog" / "transcriptions" / "Ses01M_script01_1.txt"
    path.write_text(
        "\n".join(
            line
            for line in path.read_text().split("\n")
            if not line.startswith("Ses01M_script01_1_F001 ")
        )
    )
    emo = small / "Session1" / "dialog" / "EmoEvaluation" / "Ses01M_script01_1.txt"
    expect_error(
        lambda: read("iemocap", None, path=str(small), options=ONE),
        str(path),
        "'Ses01M_script01_1_F001'",
        str(emo),
        f"line {_line_of(emo, 'Ses01M_script01_1_F001')}",
    )


def test_dialogue_without_transcription_file(small: Path) -> None:
    path = small / "Session1" / "dialog" / "transcriptions" / "Ses01F_impro01.txt"
    path.unlink()
    expect_error(
        lambda: read("iemocap", None, path=str(small), options=ONE),
        "'Ses01F_impro01'",
        "no transcription file",
        str(path),
    )


def test_bad_emo_evaluation_lines(small: Path) -> None:
    path = small / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    good = path.read_text()
    no = _line_of(path, "Ses01F_impro01_M000\t")
    line = good.split("\n")[no - 1]
    start, utt, label, vad = line.split("\t")

    def broken(new_line: str) -> str:
        path.write_text(good.replace(line, new_line))
        return read("iemocap", None, path=str(small), options=ONE)

    expect_error(
        lambda: broken(f"{start}\t{utt}\t{label}\t({vad[1:-1]})"),
        str(path),
        f"line {no}",
        "[valence, activation, dominance]",
    )
    expect_error(
        lambda: broken(f"{start}\t{utt}\tbored\t{vad}"), str(path), f"line {no}", "'bored'", "'xxx'"
    )
    expect_error(
        lambda: broken(f"{start}\tSes01F_impro02_M000\t{label}\t{vad}"),
        str(path),
        f"line {no}",
        "'Ses01F_impro02_M000'",
        "'Ses01F_impro01'",
    )
    expect_error(
        lambda: broken(f"{start}\tSes01F_impro01_F000\t{label}\t{vad}"),
        str(path),
        f"line {no}",
        "labelled twice",
        "already at line",
    )
    path.write_text("% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n")
    expect_error(
        lambda: read("iemocap", None, path=str(small), options=ONE), str(path), "no utterance line"
    )


def test_fully_dropped_dialogue_and_ignored_files(small: Path) -> None:
    emo = small / "Session1" / "dialog" / "EmoEvaluation"
    path = emo / "Ses01M_script01_1.txt"
    text = path.read_text()
    for lab in IEMOCAP_LABELS:
        text = text.replace(f"\t{lab}\t[", "\txxx\t[")
    path.write_text(text)
    (emo / "._Ses01F_impro01.txt").write_bytes(b"\x00\x05\x16\x07 AppleDouble junk \xff")
    corpus = read("iemocap", None, path=str(small), options=ONE)
    assert corpus.dialogue_ids() == ["Ses01F_impro01"]
    assert corpus.meta["dropped_dialogues"] == ["Ses01M_script01_1"]
    assert corpus.splits == ["dev"]  # the only pool dialogue left is the first one


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        ({"labels": "seven"}, ("data.options.labels", "'six' or 'four'", "'seven'")),
        ({"sessions": [1, 6]}, ("data.options.sessions", "[1, 6]")),
        ({"sessions": 1}, ("data.options.sessions",)),
        ({"sessions": [1], "test_session": 5}, ("test_session", "5", "[1]", "null")),
        ({"dev_every": -1}, ("data.options.dev_every", "-1")),
        ({"dev_every": True}, ("data.options.dev_every",)),
        ({"encoding": 8}, ("data.options.encoding",)),
        ({"colour": "red"}, ("data.options.colour", "iemocap", "sessions")),
    ],
)
def test_bad_options(small: Path, options: dict, fragments: tuple[str, ...]) -> None:
    expect_error(lambda: read("iemocap", None, path=str(small), options=options), *fragments)


def test_paths_and_columns_are_refused(small: Path) -> None:
    expect_error(
        lambda: read("iemocap", None, path=str(small), columns={"text": "x"}),
        "data.paths and data.columns",
    )
    expect_error(lambda: read("iemocap", None, paths={"train": str(small)}), "data.paths")
