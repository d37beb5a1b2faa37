"""Shared fixtures: where the real data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared data folder: ``$ERCGRAPH_DATA``, else ``<repo>/../shared/data``.

    Fails (never skips) when the folder is missing, since tests on real data must run.
    """
    value = os.environ.get("ERCGRAPH_DATA")
    root = Path(value).expanduser() if value else REPO.parent / "shared" / "data"
    if not root.is_absolute() and not root.is_dir():
        root = REPO / root  # CI gives it relative to the repository root
    if not root.is_dir():
        pytest.fail(
            f"shared data folder {str(root)!r} not found: set ERCGRAPH_DATA to the folder "
            f"holding meld/ (by default <repo>/../shared/data)",
            pytrace=False,
        )
    return root.resolve()


@pytest.fixture(scope="session")
def meld_slice(tmp_path_factory, data_root):
    """The first dialogues of each official MELD split, in the official CSV format (CRLF)."""
    root = tmp_path_factory.mktemp("data")
    (root / "meld").mkdir()
    for split, k in (("train", 30), ("dev", 10), ("test", 10)):
        df = pd.read_csv(data_root / "meld" / f"{split}_sent_emo.csv", encoding="utf-8")
        keep = sorted(df["Dialogue_ID"].unique())[:k]
        df[df["Dialogue_ID"].isin(keep)].to_csv(
            root / "meld" / f"{split}_sent_emo.csv", index=False, lineterminator="\r\n"
        )
    return root


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")
