"""Helpers for the data tests: tiny files and error checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ercgraph.config import DataConfig
from ercgraph.errors import ErcgraphError
from ercgraph.registry import READERS


def read(reader: str, root: Path | None = None, **data: Any):
    """Run a registered reader on a DataConfig built from keyword arguments."""
    return READERS.get(reader)(DataConfig(reader=reader, **data), root)


def expect_error(fn: Callable[[], Any], *fragments: str, unchanged: tuple[Path, ...] = ()) -> str:
    """Assert ``fn`` raises a one-line ErcgraphError holding every fragment.

    Also asserts every file in ``unchanged`` has the same bytes afterwards.
    """
    before = {p: p.read_bytes() for p in unchanged}
    with pytest.raises(ErcgraphError) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg, msg
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"
    for path, data in before.items():
        assert path.read_bytes() == data, f"{path} was modified"
    return msg


def write(path: Path, text: str, newline: str = "\n", encoding: str = "utf-8") -> Path:
    """Write ``text`` (lines joined by ``newline``) and return the path."""
    path.write_bytes(text.replace("\n", newline).encode(encoding))
    return path
