"""Helpers shared by the pickle layouts, the parser and the readers.

Content probes (what the first dialogue of a table holds, to tell same-length layouts apart),
key-list and per-utterance field helpers, option checks and file helpers.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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
    flat = [v for k in keys for v in table[k]]
    if nested_problem(flat) is not None:  # before numpy follows the nesting
        raise ErcgraphError(f"{path}: field {field!r} should hold integer ids, one per utterance")
    try:
        values = np.asarray(flat)
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


# real numbers, as Python or numpy scalars (bool is an int)
_REAL = (int, float, np.integer, np.floating, np.bool_)
_NESTED = (list, tuple, dict, set, frozenset)
_KIND_TEXT = {"c": "complex numbers", "S": "bytes strings", "U": "strings", "O": "Python objects"}


def _type_text(t: type) -> str:
    if issubclass(t, complex) or issubclass(t, np.complexfloating):
        return "complex numbers"
    if issubclass(t, (bytes, bytearray)):
        return "bytes strings"
    if issubclass(t, str):
        return "strings"
    if issubclass(t, _NESTED):
        return f"{t.__name__}s nested deeper than [utterances, dim] (or a list containing itself)"
    return f"a {t.__name__}"


def real_matrix_problem(value: Any) -> str | None:
    """Why ``value`` is not an ``[utterances, dim]`` block of real numbers, or None.

    Checked before numpy sees a list: numpy follows nested lists up to 64 levels deep, so a list
    that contains itself makes it allocate without end, and it reads complex numbers (dropping
    the imaginary part) and bytes or strings (``b'1.5'``) as numbers. A block is a real numpy
    array, or a list/tuple of real scalars, lists/tuples of real scalars and real arrays.
    """
    if isinstance(value, np.ndarray):
        kind = value.dtype.kind
        return None if kind in "biuf" else _KIND_TEXT.get(kind, f"dtype {value.dtype}")
    if not isinstance(value, (list, tuple)):
        return None  # numpy makes a 0-d array of it: refused as not 2-D
    for row in value:
        if isinstance(row, np.ndarray):
            if row.dtype.kind not in "biuf":
                return _KIND_TEXT.get(row.dtype.kind, f"dtype {row.dtype}")
        elif isinstance(row, (list, tuple)):
            bad = [t for t in set(map(type, row)) if not issubclass(t, _REAL)]
            if bad:
                return _type_text(bad[0])
        elif not isinstance(row, _REAL):
            return _type_text(type(row))
    return None


def nested_problem(values: list) -> str | None:
    """Why a flat list of per-utterance scalars holds a list, tuple, dict or set, or None
    (checked before numpy follows it, see :func:`real_matrix_problem`)."""
    bad = [t for t in set(map(type, values)) if issubclass(t, _NESTED)]
    return _type_text(bad[0]) if bad else None


@contextmanager
def structure_guard(path: Path, expected: str) -> Iterator[None]:
    """Turn a MemoryError or RecursionError from walking a pickle's structure into one line
    naming the file and what was expected."""
    try:
        yield
    except (MemoryError, RecursionError):
        raise ErcgraphError(
            f"{path}: the structure nests too deeply or refers to itself; expected {expected}"
        ) from None


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
