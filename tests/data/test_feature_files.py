"""Bring your own features: array files aligned to a Corpus by id or by table row order."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from ercgraph.config import DataConfig, FeatureFileConfig
from ercgraph.data.corpus import Corpus
from ercgraph.data.feature_files import _open_arrays, read_feature_file
from ercgraph.data.table import read_table
from ercgraph.errors import ErcgraphError

from .helpers import write

# table rows 0..4; the Corpus orders them train (d1), dev (d3), test (d2): table_row 2, 3, 4, 0, 1
TABLE = """dlg,spk,emo,part,uid
d2,A,joy,test,u0
d2,B,sad,test,u1
d1,A,joy,train,u2
d1,B,sad,train,u3
d3,C,joy,dev,u4
"""
COLS = {"dialogue_id": "dlg", "speaker": "spk", "label": "emo", "split": "part"}
ORDER = [2, 3, 4, 0, 1]  # table row of each Corpus row


def _corpus(tmp_path: Path) -> Corpus:
    write(tmp_path / "all.csv", TABLE)
    return read_table(DataConfig(reader="table", path="all.csv", columns=COLS), tmp_path)


def _features(rows: int = 5) -> np.ndarray:
    """Row i is ``[i, i + 0.5, 100 + i, -i]``, so a row tells which file row it came from."""
    i = np.arange(rows, dtype=np.float32)[:, None]
    return np.hstack([i, i + 0.5, 100 + i, -i])


def _read(corpus: Corpus, root: Path, modality: str = "audio", **spec: Any):
    return read_feature_file(FeatureFileConfig(**spec), modality, corpus, root)


def _x(store, modality: str = "audio") -> np.ndarray:
    return store.features[modality].numpy()


def _error(fn: Callable[[], Any], first: str, *more: str) -> str:
    """Assert ``fn`` raises a one-line ErcgraphError matching ``first`` and holding ``more``."""
    with pytest.raises(ErcgraphError, match=re.escape(first)) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg, msg
    for fragment in more:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"
    return msg


# -- formats --------------------------------------------------------------------------------------
def test_npy_row_order_and_manifest(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    assert corpus.df["table_row"].tolist() == ORDER
    assert corpus.meta["table_rows"] == 5
    np.save(tmp_path / "f.npy", _features())
    store = _read(corpus, tmp_path, path="f.npy")
    x = _x(store)
    assert x.dtype == np.float32 and x.shape == (5, 4)
    assert x[:, 0].tolist() == ORDER
    assert store.present["audio"].dtype == torch.bool and bool(store.present["audio"].all())
    digest = hashlib.sha256((tmp_path / "f.npy").read_bytes()).hexdigest()[:16]
    assert store.manifest["audio"] == {
        "encoder": "file",
        "file": str(tmp_path / "f.npy"),
        "key": None,
        "columns": None,
        "id_column": None,
        "id_key": None,
        "sha256": digest,
        "corpus": None,
    }


def test_npz_key_selection(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    np.savez(tmp_path / "one.npz", feats=_features())
    assert _x(_read(corpus, tmp_path, path="one.npz"))[:, 0].tolist() == ORDER
    np.savez(tmp_path / "two.npz", a=_features(), b=_features() * 2)
    store = _read(corpus, tmp_path, path="two.npz", key="b")
    assert _x(store)[:, 2].tolist() == [2 * (100 + r) for r in ORDER]
    assert store.manifest["audio"]["key"] == "b"
    _error(
        lambda: _read(corpus, tmp_path, path="two.npz"),
        "holds 2 arrays ['a', 'b']; set features.files.audio.key",
        str(tmp_path / "two.npz"),
    )
    _error(
        lambda: _read(corpus, tmp_path, path="two.npz", key="c"),
        "no array 'c' (key); the file holds ['a', 'b']",
    )


def test_pt_tensor_and_dict(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    torch.save(torch.from_numpy(_features()).to(torch.bfloat16), tmp_path / "t.pt")
    assert _x(_read(corpus, tmp_path, path="t.pt"))[:, 0].tolist() == ORDER
    uids = [f"u{i}" for i in range(5)]
    torch.save({"x": _features()[::-1].copy(), "uid": uids[::-1]}, tmp_path / "np.pt")
    store = _read(corpus, tmp_path, path="np.pt", id_column="uid", id_key="uid")
    assert _x(store)[:, 0].tolist() == ORDER  # a numpy array in a dict, ids as a list
    torch.save({"x": torch.from_numpy(_features()), "y": torch.zeros(5, 2)}, tmp_path / "d.pt")
    assert _x(_read(corpus, tmp_path, path="d.pt", key="y")).shape == (5, 2)
    _error(lambda: _read(corpus, tmp_path, path="d.pt"), "holds 2 arrays ['x', 'y']")


def test_pt_loads_safely(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    torch.save({"x": _features(), "extra": pd.DataFrame({"a": [1]})}, tmp_path / "unsafe.pt")
    _error(
        lambda: _read(corpus, tmp_path, path="unsafe.pt", key="x"),
        "refused by safe loading (weights_only=True): unsupported GLOBAL pandas",
        str(tmp_path / "unsafe.pt"),
    )
    torch.save([1, 2], tmp_path / "list.pt")
    _error(lambda: _read(corpus, tmp_path, path="list.pt"), "holds a list; expected a tensor")


def test_safetensors_with_integer_ids(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    corpus = _corpus(tmp_path)
    save_file({"x": _features(), "ids": np.arange(5, dtype=np.int64)}, tmp_path / "f.safetensors")
    # without id_key the ids are row numbers: table_row holds them, as a user column would
    store = _read(corpus, tmp_path, path="f.safetensors", key="x", id_column="table_row")
    assert _x(store)[:, 0].tolist() == ORDER
    store = _read(
        corpus, tmp_path, path="f.safetensors", id_column="table_row", id_key="ids"
    )  # key left out: "x" is the only array besides the ids
    assert _x(store)[:, 0].tolist() == ORDER
    assert store.manifest["audio"]["key"] == "x"


def test_columns_range(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    np.save(tmp_path / "f.npy", _features())
    store = _read(corpus, tmp_path, path="f.npy", columns=[1, 3])
    assert _x(store).tolist() == [[r + 0.5, 100 + r] for r in ORDER]
    assert store.manifest["audio"]["columns"] == [1, 3]
    _error(
        lambda: _read(corpus, tmp_path, path="f.npy", columns=[2, 5]),
        "columns [2, 5) end past the array's 4 columns",
    )
    _error(lambda: _read(corpus, tmp_path, path="f.npy", columns=[3, 1]), "0 <= start < end")


# -- alignment ------------------------------------------------------------------------------------
def test_id_alignment_with_shuffled_rows_and_extra_rows(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    rng = np.random.default_rng(0)
    perm = rng.permutation(8)  # file rows in a shuffled order, with 3 ids the corpus lacks
    ids = np.array([f" u{i} " for i in range(8)])[perm]  # surrounding spaces are stripped
    np.savez(tmp_path / "f.npz", x=_features(8)[perm], uid=ids)
    store = _read(corpus, tmp_path, path="f.npz", id_column="uid", id_key="uid")
    assert _x(store)[:, 0].tolist() == ORDER  # uid u<i> is table row i
    np.savez(tmp_path / "b.npz", x=_features(8)[perm], uid=np.char.encode(ids, "utf-8"))
    store = _read(corpus, tmp_path, path="b.npz", id_column="uid", id_key="uid")
    assert _x(store)[:, 0].tolist() == ORDER  # bytes ids are decoded


def test_id_column_renamed_by_data_columns(tmp_path: Path) -> None:
    write(tmp_path / "all.csv", TABLE)
    corpus = read_table(
        DataConfig(reader="table", path="all.csv", columns={**COLS, "dialogue_id": "uid"}),
        tmp_path,
    )
    assert "uid" not in corpus.df.columns
    np.savez(tmp_path / "f.npz", x=_features(), clip=np.array([f"u{i}" for i in range(5)]))
    store = _read(corpus, tmp_path, path="f.npz", id_column="uid", id_key="clip")
    assert _x(store)[:, 0].tolist() == corpus.df["table_row"].tolist()


def test_row_order_through_read_table_with_two_files(tmp_path: Path) -> None:
    write(tmp_path / "test.csv", "dlg,spk,emo\nt1,A,joy\nt1,B,sad\n")
    write(tmp_path / "train.csv", "dlg,spk,emo\nr1,A,sad\nr2,B,joy\nr1,C,joy\n")
    columns = {"dialogue_id": "dlg", "speaker": "spk", "label": "emo"}
    # data.paths order: test first, so the test rows are table rows 0-1, train rows 2-4
    corpus = read_table(
        DataConfig(
            reader="table", paths={"test": "test.csv", "train": "train.csv"}, columns=columns
        ),
        tmp_path,
    )
    assert corpus.df["dialogue_id"].tolist() == ["r1", "r1", "r2", "t1", "t1"]
    assert corpus.df["table_row"].tolist() == [2, 4, 3, 0, 1]
    np.save(tmp_path / "f.npy", _features())
    assert _x(_read(corpus, tmp_path, path="f.npy"))[:, 0].tolist() == [2, 4, 3, 0, 1]
    # a subset (one fold) keeps the table's row count and still aligns
    train = corpus.subset(["train"])
    assert _x(_read(train, tmp_path, path="f.npy"))[:, 0].tolist() == [2, 4, 3]
    np.save(tmp_path / "short.npy", _features(4))
    _error(
        lambda: _read(train, tmp_path, path="short.npy"),
        "the file has 4 rows but the table has 5",
        str(tmp_path / "short.npy"),
        "data.paths order",
    )


def test_table_row_source_column_is_kept(tmp_path: Path) -> None:
    write(tmp_path / "t.csv", "dlg,spk,emo,table_row\nd1,A,joy,7\nd1,B,joy,9\n")
    columns = {k: v for k, v in COLS.items() if k != "split"}
    data = DataConfig(reader="table", path="t.csv", columns=columns, options={"split": "train"})
    corpus = read_table(data, tmp_path)
    assert corpus.df["table_row"].tolist() == [0, 1]
    assert corpus.df["source_table_row"].tolist() == [7, 9]
    write(tmp_path / "t.csv", "dlg,spk,emo,table_row,source_table_row\nd1,A,joy,7,1\n")
    _error(lambda: read_table(data, tmp_path), "both 'table_row' and 'source_table_row'")


# -- errors ---------------------------------------------------------------------------------------
def test_unsupported_and_unreadable_files(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    write(tmp_path / "f.csv", "1,2\n")
    _error(
        lambda: _read(corpus, tmp_path, path="f.csv"),
        "unsupported suffix '.csv'; feature files are .npy, .npz, .pt, .safetensors",
    )
    _error(lambda: _read(corpus, tmp_path, path="nope.npy"), "features.files.audio.path")
    for suffix in (".npy", ".npz", ".pt", ".safetensors"):
        path = tmp_path / f"bad{suffix}"
        path.write_bytes(b"\x00garbage, not an array file\n" * 3)
        _error(
            lambda p=path: _read(corpus, tmp_path, path=p.name),
            f"{path} (features.files.audio): not a readable {suffix} file",
        )
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    _error(lambda: _read(corpus, tmp_path, path="obj.npy"), "not a readable .npy file")


def test_shape_and_key_errors(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    np.save(tmp_path / "v.npy", np.arange(5.0))
    _error(lambda: _read(corpus, tmp_path, path="v.npy"), "the array has shape (5,)", "2-D")
    np.save(tmp_path / "s.npy", np.array([["a"]] * 5))
    _error(lambda: _read(corpus, tmp_path, path="s.npy"), "expected numbers")
    np.save(tmp_path / "f.npy", _features())
    _error(lambda: _read(corpus, tmp_path, path="f.npy", key="x"), "holds a single array")
    _error(
        lambda: _read(corpus, tmp_path, path="f.npy", id_column="uid", id_key="uid"),
        "id_key 'uid' is set but the .npy file holds a single array",
    )
    _error(
        lambda: _read(corpus, tmp_path, path="f.npy", id_key="uid"),
        "id_key 'uid' needs id_column",
    )
    np.savez(tmp_path / "f.npz", x=_features(), uid=np.array(["u0", "u1"]))
    _error(
        lambda: _read(corpus, tmp_path, path="f.npz", id_column="uid", id_key="nope"),
        "no array 'nope' (id_key); the file holds ['x', 'uid']",
    )
    _error(
        lambda: _read(corpus, tmp_path, path="f.npz", id_column="uid", id_key="uid"),
        "ids 'uid' has 2 entries but the feature array has 5 rows",
    )


def test_id_errors(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    path = tmp_path / "f.npz"
    np.savez(path, x=_features(), uid=np.array(["u0", "u1", "u2", "u3", "u4"]))
    _error(
        lambda: _read(corpus, tmp_path, path="f.npz", id_column="clip", id_key="uid"),
        "id_column 'clip' is not a Corpus column; available: ['split', 'dialogue_id'",
        "'uid'",
        "'table_row'",
    )
    np.savez(path, x=_features(), uid=np.array(["u0", "u1", "u2", "u1", "u4"]))
    _error(
        lambda: _read(corpus, tmp_path, path="f.npz", id_column="uid", id_key="uid"),
        "id 'u1' appears more than once in 'uid' (file rows 1 and 3)",
        str(path),
    )
    np.savez(path, x=_features(6), uid=np.array(["u0", "u1", "u2", "x3", "x4", "x5"]))
    _error(
        lambda: _read(corpus, tmp_path, path="f.npz", id_column="uid", id_key="uid"),
        f"{path} (features.files.audio): id 'u3' of corpus row 1 (dialogue 'd1', turn 1)",
        "2 of 5 corpus utterances missing, the file has 6 rows",
    )
    np.savez(path, x=_features(), uid=np.array(["u0", "u1", "u2", "u3", "u4"]))
    _error(
        lambda: _read(corpus, tmp_path, path="f.npz", id_column="dialogue_id", id_key="uid"),
        "holds 'd1' at corpus row 0 (dialogue 'd1', turn 0) and at corpus row 1",
        "must identify one utterance",
    )
    np.save(tmp_path / "f.npy", _features(3))
    _error(
        lambda: _read(corpus, tmp_path, path="f.npy", id_column="table_row"),
        "id '3' of corpus row 1 (dialogue 'd1', turn 1) (id_column 'table_row') is not among the "
        "file's row numbers; 2 of 5 corpus utterances missing, the file has 3 rows",
    )
    _error(
        lambda: _read(corpus, tmp_path, path="f.npy", id_column="uid"),
        "without id_key the ids are the file's row numbers, but id_column 'uid' holds 'u2'",
    )


def test_corpus_without_table_row_needs_id_column(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "split": ["train", "train"],
            "dialogue_id": ["d", "d"],
            "turn": [0, 1],
            "speaker": ["A", "B"],
            "label": ["joy", "joy"],
            "row": [1, 0],
        }
    )
    corpus = Corpus(df, "hand", ("joy",), meta={"reader": "pickle"})
    np.save(tmp_path / "f.npy", _features(2))
    _error(
        lambda: _read(corpus, tmp_path, path="f.npy"),
        "the corpus (reader 'pickle') has no 'table_row' column",
        "set features.files.audio.id_column",
    )
    assert _x(_read(corpus, tmp_path, path="f.npy", id_column="row"))[:, 0].tolist() == [1, 0]


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e39])
def test_non_finite_values(tmp_path: Path, bad: float) -> None:
    corpus = _corpus(tmp_path)
    x = _features().astype(np.float64)
    x[3, 2] = bad  # table row 3 is corpus row 1: dialogue d1, turn 1
    np.save(tmp_path / "f.npy", x)
    _error(
        lambda: _read(corpus, tmp_path, modality="visual", path="f.npy"),
        f"{tmp_path / 'f.npy'} (features.files.visual): modality 'visual' has value",
        "at corpus row 1 (dialogue 'd1', turn 1), file row 3, column 2",
        "must be finite",
    )
    # the bad value is outside the kept columns, or in a row the corpus does not use: fine
    assert _x(_read(corpus, tmp_path, path="f.npy", columns=[0, 2])).shape == (5, 2)


def test_extra_rows_outside_the_corpus_are_not_checked(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    x = _features(6)
    x[5, 0] = np.nan
    np.savez(tmp_path / "f.npz", x=x, uid=np.array([f"u{i}" for i in range(6)]))
    store = _read(corpus, tmp_path, path="f.npz", id_column="uid", id_key="uid")
    assert np.isfinite(_x(store)).all()


# -- real data ------------------------------------------------------------------------------------
def _shared_data() -> Path | None:
    value = os.environ.get("ERCGRAPH_DATA")
    root = Path(value).expanduser() if value else Path(__file__).resolve().parents[2].parent
    if not value:
        root = root / "shared" / "data"
    for candidate in (root, Path("/work/shared/data")):
        if (candidate / "ravdess_features" / "features.npz").is_file():
            return candidate.resolve()
    return None


def test_ravdess_features_by_clip() -> None:
    root = _shared_data()
    if root is None:
        pytest.skip("shared data with ravdess_features/ not found (set ERCGRAPH_DATA)")
    folder = root / "ravdess_features"
    corpus = read_table(
        DataConfig(
            reader="table",
            path=str(folder / "labels.csv"),
            columns={"dialogue_id": "clip", "speaker": "actor", "label": "emotion"},
            options={"split": "train"},
        ),
        None,
    )
    assert corpus.num_utterances == 1440
    store = read_feature_file(
        FeatureFileConfig(
            path="ravdess_features/features.npz",
            key="X",
            columns=[0, 35],
            id_column="clip",
            id_key="clip",
        ),
        "visual",
        corpus,
        root,
    )
    x = store.features["visual"]
    assert tuple(x.shape) == (1440, 35)
    with np.load(folder / "features.npz") as npz:
        raw, clips = npz["X"], npz["clip"]
    first = corpus.df["dialogue_id"].iloc[0]
    row = int(np.flatnonzero(clips == first)[0])
    assert np.array_equal(x[0].numpy(), raw[row, :35])
    # labels.csv's "row" column indexes X: every utterance got its own clip's features
    assert np.array_equal(x.numpy(), raw[corpus.df["row"].to_numpy(), :35])
    assert store.manifest["visual"]["corpus"] is None


# -- untrusted .pt/.npy/.npz: what was refused, and only plain dtypes ------------------------------
class _RunsShell:
    """Pickles as a call to os.system; pickling only records the reference, it runs nothing."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pt_refusal_says_what_was_refused(tmp_path: Path) -> None:
    """torch 2.14 reworded its weights_only message; the cause must survive, and the advice to
    load with weights_only=False must not."""
    corpus = _corpus(tmp_path)
    torch.save({"x": torch.zeros(5, 2), "y": _RunsShell()}, tmp_path / "evil.pt")
    msg = _error(
        lambda: _read(corpus, tmp_path, path="evil.pt", key="x"),
        f"{tmp_path / 'evil.pt'} (features.files.audio): refused by safe loading "
        f"(weights_only=True): unsupported GLOBAL {os.system.__module__}.system; ",
    )
    for advice in ("False", "trust", "safe_globals", "http", "\x1b"):
        assert advice not in msg, msg


class _Call:
    """Pickles as ``fn(*args)`` (then ``__setstate__(state)`` when a state is given)."""

    def __init__(self, fn, *args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]


def _pt_array(code: str, flags: int, data: bytes, shape: tuple, order: str = "|") -> _Call:
    """A numpy array in a .pt whose dtype state sets ``flags`` (numpy trusts them)."""
    dtype = _Call(np.dtype, code, False, True, state=(3, order, None, None, None, -1, -1, flags))
    return _Call(_RECONSTRUCT, np.ndarray, (0,), b"b", state=(1, shape, dtype, False, data))


def test_pt_numpy_dtype_flags_never_reach_numpy(tmp_path: Path) -> None:
    """A float dtype whose state sets object flags used to give an array that numpy could not
    free or convert (RuntimeError); an object dtype with flags 0 turns bytes into pointers."""
    corpus = _corpus(tmp_path)
    x = _features().astype("<f8")
    torch.save({"x": _pt_array("f8", 1, x.tobytes(), x.shape, "<")}, tmp_path / "flags.pt")
    with _open_arrays(tmp_path / "flags.pt", ".pt", "flags.pt") as (_, get):
        loaded = get("x")
        assert type(loaded) is np.ndarray and loaded.dtype.flags == np.dtype("f8").flags
        np.testing.assert_array_equal(loaded, x)
    np.testing.assert_array_equal(_x(_read(corpus, tmp_path, path="flags.pt"))[:, 0], ORDER)
    pointers = (0x4141414141414141).to_bytes(8, "little") * 5
    torch.save({"x": _pt_array("O8", 0, pointers, (5, 1))}, tmp_path / "hidden.pt")
    _error(
        lambda: _read(corpus, tmp_path, path="hidden.pt"),
        f"{tmp_path / 'hidden.pt'} (features.files.audio): refused by safe loading",
        "object dtype",
    )


@pytest.mark.parametrize(
    "array, what",
    [
        (np.zeros((5, 2), dtype="M8[s]"), "datetime64"),
        (np.zeros((5, 2), dtype="m8[s]"), "timedelta64"),
        (np.zeros((5, 2), dtype="V4"), "structured or void"),
        (np.zeros((5, 2), dtype=[("a", "f4"), ("b", "f4")]), "structured"),
        (np.zeros((5, 2), dtype=object), "object"),
    ],
    ids=["datetime", "timedelta", "void", "structured", "object"],
)
def test_array_files_refuse_dtypes_outside_numbers_and_strings(
    tmp_path: Path, array: np.ndarray, what: str
) -> None:
    """The same dtype rule for .pt, .npy and .npz, naming the file (and the key)."""
    corpus = _corpus(tmp_path)
    torch.save({"x": array}, tmp_path / "f.pt")
    _error(lambda: _read(corpus, tmp_path, path="f.pt"), f"{tmp_path / 'f.pt'}", what)
    if array.dtype.hasobject:
        return  # np.save/np.load refuse object arrays themselves (allow_pickle=False)
    np.save(tmp_path / "f.npy", array)
    _error(lambda: _read(corpus, tmp_path, path="f.npy"), f"{tmp_path / 'f.npy'}", what)
    np.savez(tmp_path / "f.npz", feats=array)
    _error(lambda: _read(corpus, tmp_path, path="f.npz"), "array 'feats' has dtype", what)
    # as ids beside good features
    np.savez(tmp_path / "ids.npz", x=_features(), uid=array[:, 0])
    _error(
        lambda: _read(corpus, tmp_path, path="ids.npz", id_column="uid", id_key="uid"),
        "array 'uid' has dtype",
        what,
    )


def test_pt_numpy_arrays_of_numbers_and_strings_load(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    uids = np.array([f"u{i}" for i in range(5)])[::-1].copy()
    x = _features()[::-1].astype(">f4")
    torch.save({"x": x, "uid": uids}, tmp_path / "np.pt")
    store = _read(corpus, tmp_path, path="np.pt", id_column="uid", id_key="uid")
    assert _x(store)[:, 0].tolist() == ORDER
    torch.save({"x": _features(), "uid": np.char.encode(uids)[::-1]}, tmp_path / "b.pt")
    store = _read(corpus, tmp_path, path="b.pt", id_column="uid", id_key="uid")
    assert _x(store)[:, 0].tolist() == ORDER
