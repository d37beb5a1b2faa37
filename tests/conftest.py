"""Shared fixtures: where the real data lives."""

from __future__ import annotations

import os
from pathlib import Path

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
