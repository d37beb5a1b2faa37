"""load_corpus: config → registered reader → Corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from ercgraph.config import Config, DataConfig, load_config
from ercgraph.data import Corpus, load_corpus
from ercgraph.registry import READERS

from .helpers import expect_error, write


def test_builtin_readers_are_registered() -> None:
    assert {"meld", "table", "pickle"} <= set(READERS.names())


def test_meld_from_the_data_root_or_the_environment(
    data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = load_corpus(Config(data_root=str(data_root)))  # reader meld, path meld by default
    assert corpus.num_utterances == 13708
    monkeypatch.setenv("ERCGRAPH_DATA", str(data_root))
    cfg = Config(data=DataConfig(reader="pickle", path="meld/cosmic/meld_cosmic_text_labels.pkl"))
    assert load_corpus(cfg).num_utterances == 13708


def test_yaml_config_for_a_table(tmp_path: Path) -> None:
    write(tmp_path / "chat.csv", "conv,who,said,emotion,part\n7,A,hi,joy,train\n7,B,yo,sad,train\n")
    yaml = write(
        tmp_path / "c.yaml",
        f"""
data_root: {tmp_path}
data:
  reader: table
  path: chat.csv
  name: chat
  columns: {{dialogue_id: conv, speaker: who, text: said, label: emotion, split: part}}
""",
    )
    corpus = load_corpus(load_config(yaml))
    assert corpus.name == "chat" and corpus.labels == ("joy", "sad")
    assert corpus.df.dialogue_id.tolist() == ["7", "7"]


def test_unknown_reader_suggests_a_name() -> None:
    expect_error(
        lambda: load_corpus(Config(data=DataConfig(reader="mled"))),
        "unknown data reader 'mled'",
        "Did you mean 'meld'",
    )


def test_a_reader_must_return_a_corpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(READERS._items, "broken", lambda data, root: "not a corpus")
    expect_error(
        lambda: load_corpus(Config(data=DataConfig(reader="broken"))),
        "'broken'",
        "returned str",
        "Corpus",
    )
    assert Corpus  # the type the message names
