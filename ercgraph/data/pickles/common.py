"""Helpers shared by the pickle layouts, the parser and the readers.

Content probes (what the first dialogue of a table holds, to tell same-length layouts apart),
key-list and per-utterance field helpers, option checks and file helpers.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ercgraph.config import resolve_data_path
from ercgraph.errors import ErcgraphError

#: IEMOCAP dialogue keys (``Ses01F_impro01``); a pickle whose keys all match is IEMOCAP.
IEMOCAP_KEY = re.compile(r"^Ses\d{2}[MF]_")
_ROBERTA = tuple(f"roberta{i}" for i in range(1, 5))


# -- content probes (choose between layouts of one length) ---------------------------------------
def _first_value(table: Any) -> Any:
    if isinstance(table, dict):
        for value in table.values():
            return value
    return None


def _kind(table: Any) -> str:
    """What the first dialogue of a table holds: ``str``, ``vectors``, ``scalars`` or ``other``."""
    value = _first_value(table)
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "US":
            return "str"
        if value.dtype.kind in "biuf":
            return {1: "scalars", 2: "vectors"}.get(value.ndim, "other")
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not value:
        return "other"
    first = value[0]
    if isinstance(first, (str, bytes)):
        return "str"
    if isinstance(first, (list, tuple, np.ndarray)):
        return "vectors"
    if isinstance(first, (int, float, np.integer, np.floating)):
        return "scalars"
    return "other"


# -- field helpers --------------------------------------------------------------------------------
def _as_keys(obj: Any, field: str, path: Path) -> list:
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    if isinstance(obj, (set, frozenset)):
        obj = sorted(obj, key=_sort_key)
    if not isinstance(obj, (list, tuple)):
        raise ErcgraphError(
            f"{path}: field {field!r} should be a list of dialogue keys, got {type(obj).__name__}"
        )
    return list(obj)


def _sort_key(key: Any) -> tuple[int, int, str]:
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return 0, int(key), ""
    return 1, 0, str(key)


def _flat_ints(table: dict, keys: list, field: str, path: Path) -> np.ndarray:
    """All dialogues' integer ids of one field, concatenated in key order."""
    try:
        values = np.asarray([v for k in keys for v in table[k]])
        if values.dtype.kind not in "iu":
            raise TypeError(values.dtype)
    except (TypeError, ValueError):
        raise ErcgraphError(f"{path}: field {field!r} should hold integer ids") from None
    return values.astype(np.int64)


def _ids_to_names(
    ids: np.ndarray, names: Sequence[str], field: str, path: Path, where: Callable[[int], str]
) -> np.ndarray:
    bad = (ids < 0) | (ids >= len(names))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ErcgraphError(
            f"{path}: {where(i)}: {field} id {int(ids[i])} is outside 0..{len(names) - 1} "
            f"({list(names)})"
        )
    return np.asarray(names, dtype=object)[ids]


def _length(value: Any) -> int | None:
    try:
        return len(value)
    except TypeError:
        return None


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 4 MiB chunks."""
    h = hashlib.sha256()
    buf = bytearray(4 << 20)
    view = memoryview(buf)
    with path.open("rb") as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def _check_float(value: Any, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value < high):
        raise ErcgraphError(f"config: {what} must be a number in [{low}, {high}), got {value!r}")
    return float(value)


def _file(rel: str | None, root: Path | None, what: str, hint: str) -> Path:
    path = resolve_data_path(rel, root, what)
    if not path.is_file():
        raise ErcgraphError(f"{what}: {str(path)!r} is not a file ({hint})")
    return path
