"""Shared fixtures for the graph tests: real MELD dev dialogues, a naive reference builder and a
registry guard for tests that register custom builders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from ercgraph.data.corpus import MELD_LABELS, Corpus
from ercgraph.graphs.base import Dialogues
from ercgraph.registry import BUILDERS


@pytest.fixture(scope="session")
def meld_dev(data_root: Path) -> Corpus:
    """The official MELD dev split as a Corpus (built here, independent of the readers).

    ``data_root`` comes from ``tests/conftest.py`` (``$ERCGRAPH_DATA`` or ``../shared/data``).
    """
    path = data_root / "meld" / "dev_sent_emo.csv"
    if not path.is_file():
        pytest.fail(
            f"MELD dev split not found at {str(path)!r} (set ERCGRAPH_DATA to the shared "
            "data folder)",
            pytrace=False,
        )
    raw = pd.read_csv(path)
    df = pd.DataFrame(
        {
            "split": "dev",
            "dialogue_id": "dev_" + raw["Dialogue_ID"].astype(str),
            "turn": raw["Utterance_ID"],
            "speaker": raw["Speaker"],
            "label": raw["Emotion"],
        }
    )
    return Corpus(df, "meld", MELD_LABELS, source="dev_sent_emo.csv")


@pytest.fixture(scope="session")
def meld_dialogues(meld_dev: Corpus) -> Dialogues:
    return Dialogues.from_corpus(meld_dev)


@pytest.fixture
def restore_builders() -> Iterator[None]:
    """Undo registrations and entry-point scans made by a test."""
    items, loaded = dict(BUILDERS._items), BUILDERS._loaded
    yield
    BUILDERS._items.clear()
    BUILDERS._items.update(items)
    BUILDERS._loaded = loaded
