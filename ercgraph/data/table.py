"""The ``table`` reader (any CSV/TSV/parquet/JSONL with a column mapping) and shared file helpers.

A table holds one row per utterance. ``data.columns`` maps Corpus columns to source columns; a
Corpus column that is not mapped is taken from a source column of the same name when there is
one (so a file that already uses ``dialogue_id``, ``speaker``, ``label`` ... needs no mapping).

* ``dialogue_id`` (required) may map to a list of columns, joined with ``"_"``.
* ``speaker`` (required).
* ``turn``: an integer column; unmapped, turns follow file order inside each dialogue (0, 1, ...).
* ``split``: a column (``train``/``dev``/``test``/``unlabelled``; ``valid``/``validation``/``val``
  mean ``dev``), or ``data.paths`` ``{split: file}``, or ``data.options.split`` for one file.
  With a single ``data.path`` and none of these, rows go to ``unlabelled`` when there is no label
  column; with a label column that is an error (the training code needs splits).
* ``label``: optional (unlabelled data). The vocabulary is ``data.labels`` when given, otherwise
  the **sorted** set of labels of the train split; a label elsewhere that train lacks is an error.
  Label values are stripped of surrounding whitespace.
* ``text``: when present, every row needs non-empty text. A table cannot hold a dialogue with zero
  rows, so an "empty dialogue" here means an utterance row with empty text; it is reported with
  its row and dialogue instead of being silently dropped.
* Any other source column is kept under its own name; a source column whose name is taken by a
  mapped Corpus column is kept as ``source_<name>``.
* ``table_row`` (added by the reader): the 0-based position of the row in the source files, read
  one after the other in ``data.paths`` order (``features.files`` aligns array rows with it, as
  the Corpus itself is reordered by split, dialogue and turn). A source column already called
  ``table_row`` is kept as ``source_table_row``. ``meta["table_rows"]`` is the number of rows of
  all files, and ``meta["renamed_columns"]`` maps a source column renamed by ``data.columns`` to
  its Corpus column when the values are carried over unchanged (ids, speakers, labels, text).

Only empty cells count as missing (strings such as ``NA`` or ``None`` are kept as text). Errors
name the file and the line (CSV/TSV/JSONL with one record per line) or the row (1 = first data
row, otherwise) and the column. ``data.options``: ``format`` (csv/tsv/parquet/jsonl, default from
the suffix), ``encoding`` (default utf-8), ``split`` (split of every row of a single file) and
``prefix_split`` (dialogue id becomes ``{split}_{id}``, for ids that restart in every split) and
``no_labels`` (a corpus without emotion labels, e.g. dimensional valence/arousal/dominance only:
train/dev/test rows need no label; train it with heads that do not need one) and ``media_root``.

Media paths (``audio_path``, ``video_path`` or any column a ``features.<modality>.source``
names) are kept as written. A relative one resolves against the folder of the table file, or
against ``data.options.media_root`` when set (itself relative to the data root); never against
the working directory. The reader records that folder, absolute, as the Corpus's
``meta["media_root"]`` (a ``{split: folder}`` dict when ``data.paths`` files live in different
folders), and media extraction resolves against it.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ercgraph.config import DataConfig, resolve_data_path
from ercgraph.data.corpus import REQUIRED_COLUMNS, SPLITS, Corpus, plain
from ercgraph.errors import ErcgraphError
from ercgraph.registry import READERS

#: Spellings of split names found in the wild, mapped to the Corpus names.
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "dev": "dev",
    "valid": "dev",
    "validation": "dev",
    "val": "dev",
    "test": "test",
    "testing": "test",
    "unlabelled": "unlabelled",
    "unlabeled": "unlabelled",
}
TABLE_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
TABLE_OPTIONS = ("format", "encoding", "split", "prefix_split", "no_labels", "media_root")

# C1 control characters are what cp1252 punctuation (’ “ ” – …) becomes when decoded as latin-1.
_C1_TO_CP1252 = {}
for _code in range(0x80, 0xA0):
    try:
        _C1_TO_CP1252[_code] = bytes([_code]).decode("cp1252")
    except UnicodeDecodeError:  # 0x81, 0x8d, 0x8f, 0x90, 0x9d are unassigned in cp1252
        pass
_MOJIBAKE = re.compile(r"[\x80-\x9f]|â€|Ã[\x80-\xbf]|Â[\xa0-\xbf]")


# -- text helpers ---------------------------------------------------------------------------------
def repair_text(text: str) -> str:
    """Undo the two common mojibakes, leaving clean text untouched.

    * cp1252 read as latin-1 (``\\x92`` for ’): C1 control characters are mapped through cp1252;
    * UTF-8 read as cp1252 (``â€™`` for ’): re-encoded as cp1252 and decoded as UTF-8, kept only
      when that round trip succeeds.
    """
    if not _MOJIBAKE.search(text):
        return text
    text = text.translate(_C1_TO_CP1252)
    if "â€" in text or "Ã" in text or "Â" in text:
        try:
            text = text.encode("cp1252").decode("utf-8")
        except UnicodeError:
            pass
    return text


def repair_text_column(values: pd.Series) -> pd.Series:
    """:func:`repair_text` applied to the (few) cells of a string column that need it."""
    values = values.astype("str")
    suspect = values.str.contains(_MOJIBAKE, na=False)
    if suspect.any():
        values = values.copy()
        values[suspect] = values[suspect].map(repair_text)
    return values


def decode_text_file(path: Path, encoding: str = "utf-8") -> str:
    """Read a text file, strip a BOM and normalise CRLF/CR line ends to LF.

    Raises:
        ErcgraphError: when the bytes are not valid in ``encoding``, naming the byte offset and
            the line, or when ``encoding`` is unknown.
    """
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except LookupError:
        raise ErcgraphError(
            f"{path}: unknown encoding {encoding!r} (data.options.encoding)"
        ) from None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start : exc.start + 4]
        hint = (
            "save it as UTF-8 or set data.options.encoding (e.g. cp1252)"
            if encoding.lower().replace("-", "") in ("utf8", "utf8sig")
            else "check data.options.encoding"
        )
        raise ErcgraphError(
            f"{path}: not valid {encoding} at byte {exc.start} (line {line}, bytes {bad!r}); {hint}"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def normalise_split(value: Any, where: str) -> str:
    """Map a split name (or alias such as ``valid``) to a Corpus split name."""
    key = str(value).strip().lower()
    if key not in SPLIT_ALIASES:
        raise ErcgraphError(
            f"{where}: split {plain(value)!r} is not one of {list(SPLITS)} (aliases: valid, "
            "validation, val, training, testing, unlabeled)"
        )
    return SPLIT_ALIASES[key]


# -- reading one file -----------------------------------------------------------------------------
@dataclass
class SourceTable:
    """One file read into a DataFrame, with what is needed to point at its rows in messages.

    Args:
        path: The file.
        df: Its rows, in file order (index 0..n-1).
        locator: Per row, the line (``unit="line"``) or 1-based data row (``unit="row"``).
        unit: ``"line"`` or ``"row"``.
    """

    path: Path
    df: pd.DataFrame
    locator: np.ndarray
    unit: str = "row"

    def where(self, i: int) -> str:
        """``"<file>: line 12"`` for the row at position ``i``."""
        return f"{self.path}: {self.unit} {int(self.locator[i])}"

    def require(self, columns: Iterable[str], what: str) -> None:
        """Raise naming the first missing column and listing the file's columns."""
        for col in columns:
            if col not in self.df.columns:
                raise ErcgraphError(
                    f"{self.path}: missing column {col!r} ({what}); the file has columns "
                    f"{list(map(str, self.df.columns))}"
                )


def pyarrow_available() -> bool:
    """Whether pyarrow (needed for parquet) is installed; checked without importing it."""
    return importlib.util.find_spec("pyarrow") is not None


def _format_of(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        key = str(fmt).lower().lstrip(".")
        if key not in set(TABLE_FORMATS.values()):
            raise ErcgraphError(
                f"data.options.format: unknown table format {fmt!r}; expected one of "
                f"{sorted(set(TABLE_FORMATS.values()))}"
            )
        return key
    suffix = path.suffix.lower()
    if suffix not in TABLE_FORMATS:
        raise ErcgraphError(
            f"{path}: cannot tell the table format from the suffix {suffix!r}; use one of "
            f"{sorted(TABLE_FORMATS)} or set data.options.format"
        )
    return TABLE_FORMATS[suffix]


def read_table_file(
    path: Path, fmt: str | None = None, str_columns: Iterable[str] = (), encoding: str = "utf-8"
) -> SourceTable:
    """Read a CSV, TSV, parquet or JSONL file into a :class:`SourceTable`.

    Args:
        path: The file.
        fmt: ``csv``/``tsv``/``parquet``/``jsonl``; None = from the suffix.
        str_columns: Columns read as strings, never as numbers (ids such as ``007`` stay intact).
        encoding: Text encoding of CSV/TSV/JSONL files.

    Raises:
        ErcgraphError: for a non-UTF-8 (non-``encoding``) file, an empty file, a malformed row,
            or parquet without pyarrow.
    """
    if not path.is_file():
        raise ErcgraphError(f"{path}: not a file")
    kind = _format_of(path, fmt)
    if kind == "parquet":
        if not pyarrow_available():
            raise ErcgraphError(
                f"{path}: reading parquet needs pyarrow, which is not installed "
                f"(pip install pyarrow)"
            )
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises its own types for corrupt files
            raise ErcgraphError(f"{path}: not a readable parquet file: {_one_line(exc)}") from None
        src = SourceTable(path, df.reset_index(drop=True), np.arange(1, len(df) + 1), "row")
    else:
        text = decode_text_file(path, encoding)
        if not text.strip():
            raise ErcgraphError(f"{path}: empty file (no header, no rows)")
        if kind == "jsonl":
            src = _parse_jsonl(path, text)
        else:
            src = _parse_delimited(path, text, "\t" if kind == "tsv" else ",", str_columns)
    if len(src.df) == 0:
        raise ErcgraphError(f"{path}: empty file (a header but no data rows)")
    src.df.columns = [str(c) for c in src.df.columns]
    return src


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _parse_delimited(path: Path, text: str, sep: str, str_columns: Iterable[str]) -> SourceTable:
    dtype = {c: "str" for c in str_columns}
    with warnings.catch_warnings():
        # a row with more fields than the header is silently truncated otherwise
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            df = pd.read_csv(
                io.StringIO(text),
                sep=sep,
                dtype=dtype,
                index_col=False,
                keep_default_na=False,
                na_values=[""],
            )
        except pd.errors.ParserWarning:
            raise ErcgraphError(
                f"{path}: malformed table: {_long_row(text, sep)} has more fields than the header"
            ) from None
        except (pd.errors.ParserError, ValueError) as exc:
            raise ErcgraphError(f"{path}: malformed table: {_one_line(exc)}") from None
    n = len(df)
    # one record per line (the usual case) lets messages give real line numbers
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    if lines == n + 1:
        return SourceTable(path, df, np.arange(2, n + 2), "line")
    return SourceTable(path, df, np.arange(1, n + 1), "row")


def _long_row(text: str, sep: str) -> str:
    """Where the first record longer than the header ends (only called for the message)."""
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    width = len(next(reader, []))
    for record in reader:
        if len(record) > width:
            return f"line {reader.line_num}"
    return "a row"


def _parse_jsonl(path: Path, text: str) -> SourceTable:
    records: list[dict] = []
    line_no: list[int] = []
    for i, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ErcgraphError(f"{path}: line {i}: not valid JSON ({exc.msg})") from None
        if not isinstance(rec, dict):
            raise ErcgraphError(
                f"{path}: line {i}: expected a JSON object per line, got {type(rec).__name__}"
            )
        records.append(rec)
        line_no.append(i)
    df = pd.DataFrame.from_records(records)
    # JSON null and "" are both "missing", as an empty cell is in a CSV
    df = df.replace("", np.nan)
    return SourceTable(path, df, np.asarray(line_no, dtype=np.int64), "line")


# -- checks shared by the readers -----------------------------------------------------------------
def first_bad(mask: pd.Series | np.ndarray) -> int | None:
    """Position of the first True in a boolean mask, or None."""
    hits = np.flatnonzero(np.asarray(mask, dtype=bool))
    return int(hits[0]) if len(hits) else None


def is_blank(values: pd.Series) -> pd.Series:
    """True where a cell is missing or only whitespace."""
    return values.isna() | (values.astype("str").str.strip() == "")


def check_not_blank(src: SourceTable, column: str, what: str) -> None:
    """Raise naming the first row whose ``column`` is empty."""
    i = first_bad(is_blank(src.df[column]))
    if i is not None:
        raise ErcgraphError(f"{src.where(i)}: column {column!r} ({what}) is empty")


def check_integers(src: SourceTable, column: str, what: str) -> pd.Series:
    """The column as int64, or an error naming the first non-integer cell."""
    raw = src.df[column]
    num = pd.to_numeric(raw, errors="coerce")
    bad = num.isna() | (num % 1 != 0)
    i = first_bad(bad)
    if i is not None:
        raise ErcgraphError(
            f"{src.where(i)}: column {column!r} ({what}) must be an integer, got "
            f"{plain(raw.iloc[i])!r}"
        )
    return num.astype(np.int64)


def check_unique_keys(
    src: SourceTable, dialogue: pd.Series, turn: pd.Series, dialogue_col: str, turn_col: str
) -> None:
    """Raise naming both rows of the first duplicated ``(dialogue, turn)`` key."""
    keys = pd.DataFrame({"d": dialogue.to_numpy(), "t": turn.to_numpy()})
    dup = keys.duplicated(keep="first").to_numpy()
    i = first_bad(dup)
    if i is None:
        return
    same = np.flatnonzero(
        ((keys["d"] == keys["d"].iloc[i]) & (keys["t"] == keys["t"].iloc[i])).to_numpy()
    )
    j = int(same[0])
    d = keys["d"].iloc[i]
    d = d.item() if isinstance(d, np.generic) else d
    raise ErcgraphError(
        f"{src.where(i)}: duplicate utterance (dialogue {d!r}, turn "
        f"{keys['t'].iloc[i]}) already at {src.unit} {int(src.locator[j])} (columns "
        f"{dialogue_col!r}, {turn_col!r}); each (dialogue, turn) must appear once"
    )


def check_options(data: DataConfig, allowed: Sequence[str], reader: str) -> None:
    """Unknown ``data.options`` keys are an error, never silently ignored."""
    for key in data.options or {}:
        if key not in allowed:
            raise ErcgraphError(
                f"config: unknown key 'data.options.{key}' for the {reader} reader; allowed: "
                f"{', '.join(allowed) or 'none'}"
            )


# -- the table reader -----------------------------------------------------------------------------
def _mapping(data: DataConfig) -> dict[str, str | list[str]]:
    mapping: dict[str, str | list[str]] = {}
    for key, value in (data.columns or {}).items():
        where = f"config: data.columns.{key}"
        if key == "dialogue_id" and isinstance(value, list):
            if not value or not all(isinstance(v, str) and v for v in value):
                raise ErcgraphError(
                    f"{where} must be a column name or a non-empty list of names, got {value!r}"
                )
            mapping[key] = list(value)
        elif isinstance(value, str) and value:
            mapping[key] = value
        else:
            raise ErcgraphError(
                f"{where} must be a source column name, got {value!r}"
                + (
                    " (only dialogue_id may list several columns)"
                    if isinstance(value, list)
                    else ""
                )
            )
    return mapping


def _effective_mapping(
    mapping: Mapping[str, str | list[str]], columns: Sequence[str], split_from_column: bool
) -> dict[str, str | list[str]]:
    """Explicit mapping plus same-name columns for the unmapped Corpus columns."""
    eff = dict(mapping)
    used = {c for v in eff.values() for c in ([v] if isinstance(v, str) else v)}
    implicit = list(REQUIRED_COLUMNS) + ["text"]
    for col in implicit:
        if col == "split" and not split_from_column:
            continue
        if col not in eff and col in columns and col not in used:
            eff[col] = col
    return eff


def _read_one(
    path: Path, mapping: Mapping[str, str | list[str]], split: str | None, data: DataConfig
) -> tuple[SourceTable, pd.DataFrame]:
    """Read one file and build its Corpus-shaped frame (split may come from a column)."""
    opts = data.options or {}
    text_like = ("dialogue_id", "speaker", "label", "text", "split")
    str_cols = [
        c for k, v in mapping.items() if k in text_like for c in ([v] if isinstance(v, str) else v)
    ]
    str_cols += [k for k in text_like if k not in mapping]
    src = read_table_file(path, opts.get("format"), str_cols, opts.get("encoding", "utf-8"))
    df = src.df
    eff = _effective_mapping(mapping, list(df.columns), split is None)

    def need(key: str, why: str) -> None:
        if key not in eff:
            raise ErcgraphError(
                f"{path}: no {key!r} column ({why}); map one with data.columns.{key}; the file "
                f"has columns {list(df.columns)}"
            )

    need("dialogue_id", "required")
    need("speaker", "required")
    for key, value in eff.items():
        src.require([value] if isinstance(value, str) else value, f"data.columns.{key}")

    out = pd.DataFrame(index=df.index)
    # dialogue id: one column or several joined with "_"
    dcols = [eff["dialogue_id"]] if isinstance(eff["dialogue_id"], str) else eff["dialogue_id"]
    for c in dcols:
        check_not_blank(src, c, "dialogue_id")
    parts = [_as_str(df[c]) for c in dcols]
    dialogue = parts[0]
    for p in parts[1:]:
        dialogue = dialogue + "_" + p
    check_not_blank(src, eff["speaker"], "speaker")

    # split
    if split is not None:
        split_values = pd.Series(split, index=df.index)
    elif "split" in eff:
        scol = eff["split"]
        check_not_blank(src, scol, "split")
        raw = df[scol].astype("str").str.strip().str.lower()
        bad = ~raw.isin(list(SPLIT_ALIASES))
        i = first_bad(bad)
        if i is not None:
            normalise_split(df[scol].iloc[i], f"{src.where(i)}: column {scol!r}")
        split_values = raw.map(SPLIT_ALIASES)
    elif "label" in eff:
        raise ErcgraphError(
            f"{path}: cannot tell the split of each row: map a split column (data.columns.split),"
            f" give one file per split (data.paths: {{train: ..., dev: ..., test: ...}}), or set "
            f"data.options.split"
        )
    else:
        split_values = pd.Series("unlabelled", index=df.index)

    if opts.get("prefix_split"):
        dialogue = split_values.astype("str") + "_" + dialogue
    out["split"] = split_values.astype("str")
    out["dialogue_id"] = dialogue

    # turn
    if "turn" in eff:
        turn = check_integers(src, eff["turn"], "turn")
        check_unique_keys(src, dialogue, turn, "+".join(dcols), eff["turn"])
    else:
        turn = dialogue.groupby(dialogue, sort=False).cumcount().astype(np.int64)
    out["turn"] = turn
    out["speaker"] = _as_str(df[eff["speaker"]])

    # label
    if "label" in eff:
        lab = df[eff["label"]]
        lab = lab.where(lab.isna(), lab.astype("str").str.strip())
        missing = is_blank(lab) & out["split"].isin(["train", "dev", "test"])
        i = first_bad(missing)
        if i is not None:
            raise ErcgraphError(
                f"{src.where(i)}: column {eff['label']!r} (label) is empty, but the row is in "
                f"split {out['split'].iloc[i]!r}, which needs labels"
            )
        out["label"] = lab.where(~is_blank(lab), None)
    else:
        labelled = out["split"].isin(["train", "dev", "test"])
        i = None if opts.get("no_labels") else first_bad(labelled)
        if i is not None:
            raise ErcgraphError(
                f"{src.where(i)}: split {out['split'].iloc[i]!r} needs labels but no label column"
                f" is mapped; set data.columns.label (the file has columns {list(df.columns)}),"
                " or data.options.no_labels: true for a corpus without emotion labels"
            )
        out["label"] = None

    # text: every utterance row needs some
    if "text" in eff:
        tcol = eff["text"]
        i = first_bad(is_blank(df[tcol]))
        if i is not None:
            raise ErcgraphError(
                f"{src.where(i)}: column {tcol!r} (text) is empty in dialogue "
                f"{dialogue.iloc[i]!r}; every utterance row needs text (fill or drop the row)"
            )
        out["text"] = df[tcol].astype("str")

    # the other mapped columns, then every unmapped source column
    for key, value in eff.items():
        if key in out.columns or key == "dialogue_id":
            continue
        out[key] = df[value]
    # renamed columns are not duplicated; the parts of a multi-column dialogue id are kept
    renamed = {v for v in eff.values() if isinstance(v, str)}
    for col in df.columns:
        if col in renamed:
            continue
        out[col if col not in out.columns else f"source_{col}"] = df[col]
    return src, out


def _as_str(values: pd.Series) -> pd.Series:
    """Strings for ids: integral floats (``3.0`` from a parquet/JSON null-able int) lose ``.0``."""
    if pd.api.types.is_float_dtype(values):
        as_int = values.dropna()
        if (as_int % 1 == 0).all():
            return values.map(lambda v: str(int(v)) if pd.notna(v) else v).astype("str")
    return values.astype("str").str.strip()


def _check_dialogue_spans(frames: list[tuple[SourceTable, pd.DataFrame]]) -> None:
    """A dialogue lives in one file and one split."""
    for src, f in frames:
        first_split = f.groupby("dialogue_id", sort=False)["split"].transform("first")
        i = first_bad(f["split"] != first_split)
        if i is not None:
            raise ErcgraphError(
                f"{src.where(i)}: dialogue {f['dialogue_id'].iloc[i]!r} is in split "
                f"{f['split'].iloc[i]!r} here but in {first_split.iloc[i]!r} earlier; a dialogue "
                f"belongs to one split"
            )
    if len(frames) < 2:
        return
    firsts = pd.concat(
        [
            f["dialogue_id"].drop_duplicates().to_frame().assign(file=k)
            for k, (_, f) in enumerate(frames)
        ]
    )
    dup = firsts["dialogue_id"].duplicated(keep="first")
    i = first_bad(dup)
    if i is not None:
        d, k = firsts["dialogue_id"].iloc[i], int(firsts["file"].iloc[i])
        earlier = int(firsts["file"][(firsts["dialogue_id"] == d).to_numpy()].iloc[0])
        src = frames[k][0]
        row = int(firsts.index[i])
        raise ErcgraphError(
            f"{src.where(row)}: dialogue {d!r} is also in {frames[earlier][0].path}; dialogue ids "
            f"must be unique across files (set data.options.prefix_split: true if they restart "
            f"in every split)"
        )


def _infer_labels(
    frames: list[tuple[SourceTable, pd.DataFrame]], label_col: str | None, given: list[str] | None
) -> tuple[tuple[str, ...], str]:
    if given is not None:
        labels = tuple(str(v) for v in given)
        source = "data.labels"
    else:
        train = [f["label"][(f["split"] == "train").to_numpy()] for _, f in frames]
        train_labels = pd.concat(train).dropna() if train else pd.Series([], dtype="str")
        if len(train_labels) == 0:
            if all(f["label"].isna().all() for _, f in frames):
                return (), "none (unlabelled)"
            raise ErcgraphError(
                f"{frames[0][0].path}: cannot infer the label vocabulary: no labelled train rows;"
                f" set data.labels"
            )
        labels = tuple(sorted(set(train_labels.astype("str"))))
        source = "sorted labels of the train split"
    folded: dict[str, str] = {}
    for lab in labels:  # "Joy" beside "joy" would silently become an extra class
        other = folded.setdefault(lab.strip().casefold(), lab)
        if other != lab:
            raise ErcgraphError(
                f"{frames[0][0].path}: labels {other!r} and {lab!r} (from {source}) differ only "
                "by case or whitespace; make them one label in the data (or in data.labels)"
            )
    known = set(labels)
    for src, f in frames:
        lab = f["label"]
        bad = lab.notna() & ~lab.astype("str").isin(known)
        i = first_bad(bad)
        if i is not None:
            origin = "the train split" if given is None else "data.labels"
            raise ErcgraphError(
                f"{src.where(i)}: unknown label {lab.iloc[i]!r} in column {label_col!r} (split "
                f"{f['split'].iloc[i]!r}); labels from {origin}: {list(labels)}"
            )
    return labels, source


def media_root(
    data: DataConfig, root: Path | None, files: Sequence[tuple[Path, str | None]]
) -> str | dict[str, str]:
    """The folder relative media paths resolve against: ``data.options.media_root`` (relative
    to the data root), else the table file's folder; ``{split: folder}`` when the files of
    ``data.paths`` live in different folders. Absolute, as a string.

    Raises:
        ErcgraphError: when ``media_root`` is not an existing folder.
    """
    value = (data.options or {}).get("media_root")
    if value is not None:
        if not isinstance(value, str) or not value.strip():
            raise ErcgraphError(
                f"config: data.options.media_root must be a folder path, got {value!r}"
            )
        folder = resolve_data_path(value, root, "data.options.media_root")
        if not folder.is_dir():
            raise ErcgraphError(f"data.options.media_root: {str(folder)!r} is not a folder")
        return str(folder.resolve())
    folders: dict[str, str] = {}
    for path, split in files:
        folder = str(path.parent.resolve())
        if folders.setdefault(str(split), folder) != folder:
            raise ErcgraphError(
                f"config: data.paths: the {split} files are in different folders "
                f"({folders[str(split)]!r}, {folder!r}); set data.options.media_root"
            )
    if len(set(folders.values())) == 1:
        return next(iter(folders.values()))
    return folders


@READERS.register("table")
def read_table(data: DataConfig, root: Path | None) -> Corpus:
    """Read a CSV/TSV/parquet/JSONL utterance table (see the module docstring for the rules).

    Args:
        data: The ``data`` config section (``path`` or ``paths``, ``columns``, ``labels``,
            ``name``, ``options``).
        root: Data root against which relative paths are resolved.

    Raises:
        ErcgraphError: naming the file, row and column of the first problem.
    """
    check_options(data, TABLE_OPTIONS, "table")
    opts = data.options or {}
    mapping = _mapping(data)
    if data.path is not None and data.paths:
        raise ErcgraphError(
            "config: set either data.path (one file) or data.paths ({split: file}), not both"
        )
    jobs: list[tuple[Path, str | None]] = []
    if data.paths:
        if "split" in mapping:
            raise ErcgraphError(
                "config: data.columns.split cannot be used with data.paths "
                "(the split is the key of each file)"
            )
        for key, rel in data.paths.items():
            split = normalise_split(key, f"config: data.paths.{key}")
            jobs.append((resolve_data_path(rel, root, f"data.paths.{key}"), split))
    else:
        path = resolve_data_path(data.path, root, "data.path")
        split = None
        if opts.get("split") is not None:
            if "split" in mapping:
                raise ErcgraphError(
                    "config: set either data.columns.split or data.options.split, not both"
                )
            split = normalise_split(opts["split"], "config: data.options.split")
        jobs.append((path, split))
    media = media_root(data, root, jobs)
    frames = [_read_one(p, mapping, s, data) for p, s in jobs]

    _check_dialogue_spans(frames)
    label_col = mapping.get("label", "label")
    labels, label_source = _infer_labels(frames, str(label_col), data.labels)
    df = pd.concat([f for _, f in frames], ignore_index=True)
    if "table_row" in df.columns:
        if "source_table_row" in df.columns:
            raise ErcgraphError(
                f"{frames[0][0].path}: the table has both 'table_row' and 'source_table_row' "
                "columns; rename one ('table_row' is the reader's own row number, and a source "
                "column of that name is kept as 'source_table_row')"
            )
        df = df.rename(columns={"table_row": "source_table_row"})
    df["table_row"] = np.arange(len(df), dtype=np.int64)
    source = ", ".join(str(src.path) for src, _ in frames)
    return Corpus(
        df,
        data.name or jobs[0][0].stem,
        labels,
        source,
        {
            "reader": "table",
            "label_source": label_source,
            "media_root": media,
            "table_rows": len(df),
            "renamed_columns": _renamed_columns(mapping, opts),
        },
    )


def _renamed_columns(mapping: Mapping[str, str | list[str]], opts: Mapping[str, Any]) -> dict:
    """``{source column: Corpus column}`` for renames whose values the reader keeps as they are.

    ``split`` is normalised (``valid`` becomes ``dev``), ``turn`` becomes an integer and a
    prefixed dialogue id (``prefix_split``) gains its split, so those are left out.
    """
    kept = {"dialogue_id", "speaker", "label", "text"}
    if opts.get("prefix_split"):
        kept.discard("dialogue_id")
    return {
        value: key
        for key, value in mapping.items()
        if key in kept and isinstance(value, str) and value != key
    }
