"""The restricted unpickler: data loads, code does not run."""

from __future__ import annotations

import collections
import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from ercgraph.data.safe_pickle import safe_load

from .helpers import expect_error

ALLOWED = "only builtins and numpy are allowed"


class _RunsShell:
    """Pickles as a call to os.system; pickling only records the reference, it runs nothing."""

    def __reduce__(self):
        return (os.system, ("echo",))


def _dump(tmp_path: Path, data: bytes, name: str = "x.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_refuses_os_system_through_reduce(tmp_path: Path) -> None:
    path = _dump(tmp_path, pickle.dumps([1, _RunsShell()]))
    # os.system pickles under its implementation module (posix / nt)
    module = os.system.__module__
    expect_error(
        lambda: safe_load(path),
        str(path),
        f"pickle tries to import {module}.system",
        ALLOWED,
        unchanged=(path,),
    )


def test_refuses_os_system_written_with_opcodes(tmp_path: Path) -> None:
    # protocol 0: GLOBAL 'os system', MARK, STRING 'echo', TUPLE, REDUCE, STOP
    path = _dump(tmp_path, b"cos\nsystem\n(S'echo'\ntR.")
    expect_error(
        lambda: safe_load(path),
        str(path),
        "pickle tries to import os.system",
        ALLOWED,
        unchanged=(path,),
    )


@pytest.mark.parametrize(
    "module, name",
    [
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("builtins", "getattr"),
        ("builtins", "__import__"),
        ("builtins", "open"),
        ("builtins", "object"),
        ("__builtin__", "eval"),
        ("collections", "namedtuple"),
        ("subprocess", "Popen"),
        ("numpy", "load"),
        ("numpy.core.multiarray", "frombuffer_evil"),
        ("numpy.testing", "assert_equal"),
    ],
)
def test_refuses_dangerous_or_unknown_globals(module: str, name: str) -> None:
    data = b"c" + module.encode() + b"\n" + name.encode() + b"\n(tR."
    msg = expect_error(lambda: safe_load(io.BytesIO(data)), f"{module}.{name}", ALLOWED)
    assert "<pickle stream>" in msg


def test_loads_builtins_collections_and_python2_names() -> None:
    obj = {
        "list": [1, 2.5, "x", None, True],
        "tuple": (1, 2),
        "set": {1, 2},
        "frozenset": frozenset({3}),
        "bytes": b"\x00\xff",
        "bytearray": bytearray(b"ab"),
        "complex": 1 + 2j,
        "range": range(3),
        "slice": slice(1, 5, 2),
        "ordered": collections.OrderedDict(a=1),
        "default": collections.defaultdict(list, a=[1]),
        "counter": collections.Counter("aab"),
    }
    for protocol in (0, 2, 4, 5):  # protocols 0/2 write Python-2 names (__builtin__, xrange)
        assert safe_load(io.BytesIO(pickle.dumps(obj, protocol=protocol))) == obj
    loaded = safe_load(io.BytesIO(pickle.dumps(obj, protocol=2)))
    assert isinstance(loaded["default"], collections.defaultdict)
    assert loaded["default"]["new"] == []


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_loads_numpy_arrays_and_scalars(protocol: int) -> None:
    obj = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "int": np.array([1, -2], dtype=np.int64),
        "str": np.array(["a", "bc"]),
        "objects": np.array([1, "x", None], dtype=object),
        "record": np.zeros(2, dtype=[("a", "i4"), ("b", "f8")]),
        "scalar": np.float64(1.5),
        "iscalar": np.int32(7),
        "dtype": np.dtype("f2"),
    }
    loaded = safe_load(io.BytesIO(pickle.dumps(obj, protocol=protocol)))
    for key, value in obj.items():
        if isinstance(value, np.ndarray):
            assert loaded[key].dtype == value.dtype
            np.testing.assert_array_equal(loaded[key], value)
        else:
            assert loaded[key] == value and type(loaded[key]) is type(value)


def test_loads_numpy1_era_pickles() -> None:
    # numpy 1 wrote numpy.core.multiarray; numpy 2 writes numpy._core.multiarray
    data = pickle.dumps(np.arange(4.0), protocol=2).replace(b"numpy._core.", b"numpy.core.")
    assert b"numpy.core.multiarray" in data
    np.testing.assert_array_equal(safe_load(io.BytesIO(data)), np.arange(4.0))


def test_python2_strings_need_an_encoding() -> None:
    data = b"\x80\x02U\x04caf\xe9."  # SHORT_BINSTRING with a non-ASCII byte: a Python-2 str
    expect_error(lambda: safe_load(io.BytesIO(data)), "latin1")
    assert safe_load(io.BytesIO(data), encoding="latin1") == "café"


def test_truncated_or_corrupt_pickles_name_the_file(tmp_path: Path) -> None:
    whole = pickle.dumps({"a": list(range(100)), "b": np.ones(3)}, protocol=4)
    cut = _dump(tmp_path, whole[: len(whole) // 2], "cut.pkl")
    expect_error(lambda: safe_load(cut), str(cut), "truncated or corrupt", unchanged=(cut,))
    junk = _dump(tmp_path, b"this is not a pickle at all", "junk.pkl")
    expect_error(lambda: safe_load(junk), str(junk), "truncated or corrupt", unchanged=(junk,))
    empty = _dump(tmp_path, b"", "empty.pkl")
    expect_error(lambda: safe_load(empty), str(empty), "truncated or corrupt")
    expect_error(lambda: safe_load(tmp_path / "missing.pkl"), "missing.pkl", "no such")


class _Sample:
    """Stands in for a research repo's class (COGMEN's ``Sample``)."""


def test_extra_resolutions_map_custom_classes_to_stubs() -> None:
    data = b"ccogmen.Sample\nSample\n)\x81}(S'vid'\nS'a'\nub."
    expect_error(lambda: safe_load(io.BytesIO(data)), "cogmen.Sample.Sample", ALLOWED)
    obj = safe_load(io.BytesIO(data), extra={("cogmen.Sample", "Sample"): _Sample})
    assert isinstance(obj, _Sample) and obj.vid == "a"
