"""Bring your own features: one modality read from an array file (``features.files``).

Formats, told by the suffix:

* ``.npy``: one array (``np.load(allow_pickle=False)``); no ``key``, no ``id_key``.
* ``.npz``: named arrays (``allow_pickle=False``, so string ids must be a unicode/bytes array,
  not an object array).
* ``.pt``: ``torch.load(weights_only=True)``, a tensor or a dict of tensors, numpy arrays
  (numeric, unicode or bytes; never object arrays) or lists of ids. Nothing else is unpickled:
  numpy arrays are built through :func:`~ercgraph.data.safe_pickle.torch_numpy_globals`, which
  rebuilds each dtype from its type code (a pickled dtype's flags never reach numpy). A refusal
  names what was refused (``unsupported GLOBAL posix.system``), never suggests loading with
  ``weights_only=False``.
* ``.safetensors``: named tensors (ids must then be integers).

Every array read, whatever the format, must have a bool, integer, float, complex, bytes or
unicode dtype (:func:`~ercgraph.data.safe_pickle.dtype_problem`): structured, void, datetime,
timedelta and object arrays are refused naming the file and the key, and so are unicode arrays
holding invalid code points (above U+10FFFF, or surrogates) and, in ``.pt`` files, sparse
tensors and tensors whose storage holds fewer bytes than their shape needs (a view made by
``expand``: refused before anything is copied). Features must then be real numbers (bool,
integer or float), ids strings or integers (float ids: whole numbers of at most 2**53).

``key`` names the feature array; it may be left out when the file holds one array besides
``id_key``. The array must be 2-D ``[rows, dim]``; ``columns: [start, end)`` keeps a column range.

Rows are aligned with the Corpus in one of two ways:

* **by id**: ``id_column`` is a Corpus column (or a source column that ``data.columns`` renamed,
  as the table reader records in ``meta["renamed_columns"]``), and ``id_key`` the array of ids
  in the same file (strings or integers, compared as stripped strings). Without ``id_key`` the
  ids are the file's row numbers, so ``id_column`` holds integer row indices. Ids must be unique
  in the file and in the Corpus column; every Corpus id must be in the file, while extra file
  rows are ignored (a Corpus may be a subset).
* **by row order** (no ``id_column``): row ``i`` of the file is row ``i`` of the table files
  read one after the other in ``data.paths`` order, i.e. the ``table_row`` column that the
  ``table`` reader adds. The file must have exactly as many rows as the table. Other readers
  write no ``table_row``, so they need ``id_column``.

Every used value must be finite. The result is a :class:`FeatureStore` with a float32 tensor
``[num_utterances, dim]`` in Corpus row order, an all-True ``present`` mask, and a manifest
(encoder ``file``, the path, key, columns, id settings and the file's sha256). Its ``corpus``
fingerprint is None: the features follow the ids, not one particular split of the Corpus.
Every bad input raises :class:`ErcgraphError` naming the file and the modality.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ercgraph.config import FeatureFileConfig, resolve_data_path
from ercgraph.data.corpus import Corpus
from ercgraph.data.features import FeatureStore
from ercgraph.data.safe_pickle import (
    dtype_problem,
    plain_arrays,
    stride_problem,
    torch_numpy_globals,
    unicode_problem,
    weights_only_error,
)
from ercgraph.errors import ErcgraphError

SUPPORTED_SUFFIXES = (".npy", ".npz", ".pt", ".safetensors")

#: What a loader yields: the array names (None for a file that holds one unnamed array) and a
#: function that reads one of them (None = the unnamed array).
Arrays = tuple[list[str] | None, Callable[[str | None], Any]]


def read_feature_file(
    spec: FeatureFileConfig, modality: str, corpus: Corpus, root: Path | None
) -> FeatureStore:
    """Read one modality's features from an array file, aligned to ``corpus`` rows.

    Args:
        spec: The ``features.files.<modality>`` section.
        modality: The modality name (the key of the returned store).
        corpus: The utterances the features are for.
        root: Data root against which a relative ``spec.path`` resolves.

    Returns:
        A FeatureStore holding ``modality`` only.

    Raises:
        ErcgraphError: for a missing, unreadable or unsupported file, a missing ``key``, an
            array of the wrong shape or type, ids that do not cover the Corpus, or a value that
            is NaN or infinite.
    """
    path = resolve_data_path(spec.path, root, f"features.files.{modality}.path")
    where = f"{path} (features.files.{modality})"
    if not path.is_file():
        raise ErcgraphError(f"{where}: not a file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ErcgraphError(
            f"{where}: unsupported suffix {path.suffix!r}; feature files are "
            f"{', '.join(SUPPORTED_SUFFIXES)}"
        )
    if spec.id_key is not None and spec.id_column is None:
        raise ErcgraphError(
            f"{where}: id_key {spec.id_key!r} needs id_column, the Corpus column holding the "
            "same ids"
        )
    with _open_arrays(path, suffix, where) as (names, get):
        key, id_key = _pick_keys(names, spec.key, spec.id_key, suffix, where, modality)
        x = _read(get, key, where)
        ids = _read(get, id_key, where) if id_key is not None else None
    x = _as_matrix(x, key, where)
    start, end = _column_range(spec.columns, x.shape[1], where, modality)
    x = x[:, start:end]
    if spec.id_column is not None:
        rows = _rows_by_id(corpus, spec.id_column, ids, id_key, x.shape[0], where)
    else:
        rows = _rows_by_order(corpus, x.shape[0], where, modality)
    with np.errstate(over="ignore"):  # a value too large for float32 is reported below
        feats = np.ascontiguousarray(x[rows], dtype=np.float32)
    _check_finite(feats, x, rows, start, corpus, where, modality)

    import torch

    manifest = {
        "encoder": "file",
        "file": str(path),
        "key": key,
        "columns": None if spec.columns is None else [int(c) for c in spec.columns],
        "id_column": spec.id_column,
        "id_key": spec.id_key,
        "sha256": file_sha256(path)[:16],
        "corpus": None,
    }
    return FeatureStore(
        {modality: torch.from_numpy(feats)},
        {modality: torch.ones(len(feats), dtype=torch.bool)},
        {modality: manifest},
    )


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- loading --------------------------------------------------------------------------------------
def _one_line(exc: BaseException, limit: int = 300) -> str:
    """The exception's text on one line, cut to ``limit`` characters."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unreadable(exc: BaseException, suffix: str, where: str) -> ErcgraphError:
    if suffix == ".pt":
        refused = weights_only_error(
            where,
            exc,
            ".pt file",
            "a .pt feature file holds tensors, dicts, lists of ids and numeric or string numpy "
            "arrays only",
        )
        if refused is not None:
            return refused
    return ErcgraphError(
        f"{where}: not a readable {suffix} file ({type(exc).__name__}: {_one_line(exc)})"
    )


@contextmanager
def _open_arrays(path: Path, suffix: str, where: str) -> Iterator[Arrays]:
    """Open a feature file and yield its array names and a reader (see :data:`Arrays`)."""
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
            yield None, lambda _name: array
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                yield list(archive.files), lambda name: archive[name]
        elif suffix == ".pt":
            obj = _torch_load(path)
            if isinstance(obj, dict):
                by_name = {str(k): v for k, v in obj.items()}
                yield list(by_name), lambda name: by_name[name]
            elif _is_tensor(obj) or isinstance(obj, np.ndarray):
                yield None, lambda _name: obj
            else:
                raise ErcgraphError(
                    f"{where}: holds a {type(obj).__name__}; expected a tensor or a dict of "
                    "tensors/arrays"
                )
        else:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                yield list(handle.keys()), handle.get_tensor
    except ErcgraphError:
        raise
    except Exception as exc:  # each format raises its own types for a corrupt file
        raise _unreadable(exc, suffix, where) from None


def _torch_load(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True``; numpy arrays of numbers and strings are built
    through the checked stand-ins of :func:`~ercgraph.data.safe_pickle.torch_numpy_globals`."""
    import torch

    with torch.serialization.safe_globals(torch_numpy_globals()):
        obj = torch.load(path, weights_only=True, map_location="cpu")
    return plain_arrays(obj)


def _is_tensor(obj: Any) -> bool:
    import torch

    return isinstance(obj, torch.Tensor)


def _pick_keys(
    names: list[str] | None,
    key: str | None,
    id_key: str | None,
    suffix: str,
    where: str,
    modality: str,
) -> tuple[str | None, str | None]:
    """The feature array's name and the id array's name, checked against the file's names."""
    if names is None:
        if key is not None:
            raise ErcgraphError(
                f"{where}: key {key!r} is set but the {suffix} file holds a single array; "
                "remove key"
            )
        if id_key is not None:
            raise ErcgraphError(
                f"{where}: id_key {id_key!r} is set but the {suffix} file holds a single array, "
                "so no ids; store the ids beside the features in an .npz/.pt/.safetensors file, "
                "or drop id_key to use row numbers as ids"
            )
        return None, None
    if id_key is not None and id_key not in names:
        raise ErcgraphError(f"{where}: no array {id_key!r} (id_key); the file holds {names}")
    if key is not None:
        if key not in names:
            raise ErcgraphError(f"{where}: no array {key!r} (key); the file holds {names}")
        if key == id_key:
            raise ErcgraphError(f"{where}: key and id_key both name {key!r}")
        return key, id_key
    candidates = [n for n in names if n != id_key]
    if len(candidates) == 1:
        return candidates[0], id_key
    if not candidates:
        raise ErcgraphError(f"{where}: the file holds no feature array (arrays: {names})")
    raise ErcgraphError(
        f"{where}: the file holds {len(names)} arrays {names}; set features.files.{modality}.key "
        "to the feature array"
    )


def _read(get: Callable[[str | None], Any], name: str | None, where: str) -> Any:
    """One array from the file, as numpy when it is a tensor, of an allowed dtype."""
    value = get(name)
    label = "the array" if name is None else f"array {name!r}"
    if _is_tensor(value):
        import torch

        if value.layout != torch.strided:
            raise ErcgraphError(
                f"{where}: {label} is a {str(value.layout).replace('torch.', '')} tensor; a "
                "feature file holds dense tensors (save tensor.to_dense())"
            )
        _check_storage(value, label, where)
        value = value.detach().cpu().contiguous()
        if value.dtype in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2):
            value = value.float()  # numpy has no such dtypes
        value = value.numpy()
    if isinstance(value, np.ndarray):
        problem = dtype_problem(value.dtype, objects=False)
        if problem is not None:
            raise ErcgraphError(
                f"{where}: {label} has dtype {value.dtype}, {problem}; a feature file holds "
                "numbers, and ids as strings or integers"
            )
        problem = stride_problem(value) or unicode_problem(value)
        if problem is not None:
            raise ErcgraphError(f"{where}: {label}: {problem}")
    return value


def _check_storage(tensor: Any, label: str, where: str) -> None:
    """Refuse a tensor whose storage holds fewer bytes than its shape needs (a view such as
    ``torch.zeros(1).expand(40, 10**9)``: a copy would be far larger than the file), before
    anything is copied."""
    try:
        held = tensor.untyped_storage().nbytes() - tensor.storage_offset() * tensor.element_size()
    except (RuntimeError, NotImplementedError):  # sparse, quantized...: refused when converted
        return
    need = tensor.numel() * tensor.element_size()
    if need > held or any(st < 0 for st in tensor.stride()):
        raise ErcgraphError(
            f"{where}: {label} is a tensor of shape {tuple(tensor.shape)} (strides "
            f"{tuple(tensor.stride())}) that needs {need:,} bytes, but its storage holds "
            f"{max(held, 0):,}: it repeats its data; save a contiguous tensor (.contiguous())"
        )


def _as_matrix(value: Any, key: str | None, where: str) -> np.ndarray:
    """The feature array as a 2-D numeric numpy array."""
    name = "the array" if key is None else f"array {key!r}"
    if not isinstance(value, np.ndarray):
        raise ErcgraphError(
            f"{where}: {name} is a {type(value).__name__}, expected a numeric array"
        )
    if value.ndim != 2:
        raise ErcgraphError(
            f"{where}: {name} has shape {tuple(value.shape)}; features must be 2-D "
            "[rows, dim] (one row per utterance)"
        )
    if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_) or np.iscomplexobj(
        value
    ):
        raise ErcgraphError(f"{where}: {name} has dtype {value.dtype}, expected numbers")
    if value.shape[1] == 0:
        raise ErcgraphError(f"{where}: {name} has shape {tuple(value.shape)}: no columns")
    return value


def _column_range(
    columns: list[int] | None, width: int, where: str, modality: str
) -> tuple[int, int]:
    """``[start, end)`` of the kept columns, checked against the array's width."""
    if columns is None:
        return 0, width
    ok = (
        isinstance(columns, (list, tuple))
        and len(columns) == 2
        and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in columns)
        and 0 <= columns[0] < columns[1]
    )
    if not ok:
        raise ErcgraphError(
            f"{where}: features.files.{modality}.columns must be [start, end) with "
            f"0 <= start < end, got {columns!r}"
        )
    start, end = int(columns[0]), int(columns[1])
    if end > width:
        raise ErcgraphError(
            f"{where}: columns [{start}, {end}) end past the array's {width} columns"
        )
    return start, end


# -- alignment ------------------------------------------------------------------------------------
def _utterance(corpus: Corpus, r: int) -> str:
    """``"corpus row 3 (dialogue 'd1', turn 2)"`` for messages."""
    df = corpus.df
    return f"corpus row {r} (dialogue {df['dialogue_id'].iloc[r]!r}, turn {df['turn'].iloc[r]})"


def _id_column(corpus: Corpus, name: str, where: str) -> tuple[str, pd.Series]:
    """The Corpus column holding the ids (a source name renamed by ``data.columns`` is followed)."""
    df = corpus.df
    if name in df.columns:
        return repr(name), df[name]
    renamed = corpus.meta.get("renamed_columns") or {}
    if name in renamed and renamed[name] in df.columns:
        return f"{name!r} (Corpus column {renamed[name]!r})", df[renamed[name]]
    raise ErcgraphError(
        f"{where}: id_column {name!r} is not a Corpus column; available: {list(df.columns)}"
    )


def _file_ids(value: Any, id_key: str, rows: int, where: str) -> np.ndarray:
    """The ids of the file as stripped strings (integral floats lose ``.0``)."""
    if isinstance(value, (list, tuple)):
        if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
            raise ErcgraphError(f"{where}: ids {id_key!r} must be strings or integers")
        value = np.asarray([str(v) for v in value])
    if not isinstance(value, np.ndarray) or value.ndim != 1:
        shape = tuple(value.shape) if isinstance(value, np.ndarray) else type(value).__name__
        raise ErcgraphError(f"{where}: ids {id_key!r} must be a 1-D array, got {shape}")
    if len(value) != rows:
        raise ErcgraphError(
            f"{where}: ids {id_key!r} has {len(value)} entries but the feature array has "
            f"{rows} rows"
        )
    kind = value.dtype.kind
    if kind == "S":
        try:
            value = np.char.decode(value, "utf-8")
        except UnicodeDecodeError:
            raise ErcgraphError(f"{where}: ids {id_key!r} are bytes that are not UTF-8") from None
        kind = "U"
    if kind == "U":
        return np.char.strip(value).astype(object)
    if kind == "f":
        if not np.all(np.isfinite(value) & (value % 1 == 0)):
            raise ErcgraphError(
                f"{where}: ids {id_key!r} are floats that are not all integers; store string or "
                "integer ids"
            )
        big = np.abs(value) > 2**53  # beyond it floats are not whole numbers one apart
        if big.any():
            i = int(np.flatnonzero(big)[0])
            raise ErcgraphError(
                f"{where}: ids {id_key!r} hold the float {value[i]!s} at file row {i}, too large "
                "for an integer id (float ids must be whole numbers of at most 2**53); store "
                "string or integer ids"
            )
        value = value.astype(np.int64)
        kind = "i"
    if kind in "iu":
        return value.astype(str).astype(object)
    raise ErcgraphError(
        f"{where}: ids {id_key!r} have dtype {value.dtype}; expected strings or integers"
    )


def _corpus_ids(corpus: Corpus, label: str, values: pd.Series, where: str) -> np.ndarray:
    """The Corpus ids as stripped strings; an empty one is an error naming its row."""
    blank = values.isna() | (values.astype(str).str.strip() == "")
    if blank.any():
        r = int(np.flatnonzero(blank.to_numpy())[0])
        raise ErcgraphError(f"{where}: {_utterance(corpus, r)} has an empty id_column {label}")
    if pd.api.types.is_float_dtype(values) and (values % 1 == 0).all():
        values = values.astype(np.int64)
    return values.astype(str).str.strip().to_numpy(dtype=object)


def _rows_by_id(
    corpus: Corpus, id_column: str, ids: Any, id_key: str | None, rows: int, where: str
) -> np.ndarray:
    """File row of every Corpus row, matched on ``id_column`` against the ids in the file."""
    label, values = _id_column(corpus, id_column, where)
    if id_key is None:
        nums = pd.to_numeric(values, errors="coerce")
        bad = nums.isna() | (nums % 1 != 0)
        if bad.any():
            r = int(np.flatnonzero(bad.to_numpy())[0])
            raise ErcgraphError(
                f"{where}: without id_key the ids are the file's row numbers, but id_column "
                f"{label} holds {values.iloc[r]!r} at {_utterance(corpus, r)}"
            )
        wanted = nums.astype(np.int64).to_numpy().astype(str).astype(object)
        file_ids = np.arange(rows).astype(str).astype(object)
        id_name = "row numbers"
    else:
        wanted = _corpus_ids(corpus, label, values, where)
        file_ids = _file_ids(ids, id_key, rows, where)
        id_name = f"ids {id_key!r}"
    index = pd.Index(file_ids)
    dup = index.duplicated(keep="first")
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero(file_ids == file_ids[i])[0])
        raise ErcgraphError(
            f"{where}: id {file_ids[i]!r} appears more than once in {id_key!r} (file rows "
            f"{first} and {i}); ids must be unique"
        )
    twice = pd.Index(wanted).duplicated(keep="first")
    if twice.any():
        r = int(np.flatnonzero(twice)[0])
        first = int(np.flatnonzero(wanted == wanted[r])[0])
        raise ErcgraphError(
            f"{where}: id_column {label} holds {wanted[r]!r} at {_utterance(corpus, first)} and "
            f"at {_utterance(corpus, r)}; it must identify one utterance"
        )
    pos = index.get_indexer(wanted)
    missing = pos < 0
    if missing.any():
        r = int(np.flatnonzero(missing)[0])
        raise ErcgraphError(
            f"{where}: id {wanted[r]!r} of {_utterance(corpus, r)} (id_column {label}) is not "
            f"among the file's {id_name}; {int(missing.sum())} of {len(wanted)} corpus "
            f"utterances missing, the file has {rows} rows"
        )
    return pos.astype(np.int64)


def _rows_by_order(corpus: Corpus, rows: int, where: str, modality: str) -> np.ndarray:
    """File row of every Corpus row by table order (the ``table_row`` column)."""
    df = corpus.df
    if "table_row" not in df.columns:
        reader = corpus.meta.get("reader", "this reader")
        raise ErcgraphError(
            f"{where}: the corpus (reader {reader!r}) has no 'table_row' column to align rows by "
            f"order; set features.files.{modality}.id_column (and id_key) to align by id"
        )
    table_row = pd.to_numeric(df["table_row"], errors="coerce")
    if table_row.isna().any() or (table_row % 1 != 0).any() or (table_row < 0).any():
        raise ErcgraphError(f"{where}: the corpus's 'table_row' column is not row numbers")
    table_row = table_row.astype(np.int64).to_numpy()
    expected = int(corpus.meta.get("table_rows", table_row.max() + 1))
    if rows != expected:
        raise ErcgraphError(
            f"{where}: the file has {rows} rows but the table has {expected}; aligned by row "
            "order, row i of the file is row i of the table files (in data.paths order); set "
            "id_column (and id_key) to align by id"
        )
    return table_row


def _check_finite(
    feats: np.ndarray,
    x: np.ndarray,
    rows: np.ndarray,
    start: int,
    corpus: Corpus,
    where: str,
    modality: str,
) -> None:
    """Raise naming the first NaN/inf value: its Corpus row, file row and file column."""
    finite = np.isfinite(feats)
    if finite.all():
        return
    r, c = (int(v) for v in np.argwhere(~finite)[0])
    original = x[rows[r], c]
    why = " (too large for float32)" if np.isfinite(original) else ""
    raise ErcgraphError(
        f"{where}: modality {modality!r} has value {original} at {_utterance(corpus, r)}, file "
        f"row {int(rows[r])}, column {start + c}{why}; features must be finite"
    )
