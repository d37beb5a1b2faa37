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


# -- allocation limits ----------------------------------------------------------------------------
class _Call:
    """Pickles as ``fn(*args)`` (then ``__setstate__(state)`` when a state is given)."""

    def __init__(self, fn, *args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def _nested(depth: int) -> list:
    """A list of 2**depth empty lists held as ``depth`` levels of shared references."""
    item: list = []
    for _ in range(depth):
        item = [item, item]
    return item


_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's own _reconstruct
HUGE = 10**12


@pytest.mark.parametrize(
    "payload, what",
    [
        (_Call(bytes, HUGE), "bytes("),
        (_Call(bytearray, HUGE), "bytearray("),
        # a range is lazy, but whatever it fills expands it
        (_Call(bytearray, range(HUGE)), "a range of 1,000,000,000,000 items"),
        (_Call(list, range(HUGE)), "a range of"),
        (_Call(tuple, range(HUGE)), "a range of"),
        (_Call(frozenset, range(HUGE)), "a range of"),
        (_Call(collections.Counter, range(HUGE)), "a range of"),
        (_Call(_RECONSTRUCT, np.ndarray, (10**6, 10**6), b"f8"), "array of shape"),
        (_Call(np.ndarray, (10**6, 10**6)), "array of shape"),
    ],
)
def test_sized_constructors_are_capped(tmp_path: Path, payload: object, what: str) -> None:
    """A pickle may not ask for more memory than max_bytes (4 GiB by default): the call is
    refused before anything is allocated, naming the file."""
    import tracemalloc

    path = _dump(tmp_path, pickle.dumps({"features": [payload]}, protocol=2))
    tracemalloc.start()
    try:
        msg = expect_error(lambda: safe_load(path), str(path), what, "max_bytes", unchanged=(path,))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "4,294,967,296" in msg
    assert peak < 10**7


def test_allocation_limit_is_configurable_and_counts_the_whole_file(tmp_path: Path) -> None:
    one = _dump(tmp_path, pickle.dumps(_Call(bytearray, 10**6)), "one.pkl")
    assert safe_load(one) == bytearray(10**6)
    expect_error(lambda: safe_load(one, max_bytes=10**5), str(one), "max_bytes", "100,000")
    # two calls under the limit each, over it together
    two = _dump(tmp_path, pickle.dumps([_Call(bytes, 6 * 10**4), _Call(bytes, 6 * 10**4)]))
    expect_error(lambda: safe_load(two, max_bytes=10**5), str(two), "max_bytes")
    assert safe_load(two, max_bytes=2 * 10**5) == [bytes(6 * 10**4)] * 2
    # arrays whose data is in the file are not counted: they are as large as the file
    arr = _dump(tmp_path, pickle.dumps(np.ones((100, 100)), protocol=2), "arr.pkl")
    np.testing.assert_array_equal(safe_load(arr, max_bytes=1000), np.ones((100, 100)))


def test_str_of_a_container_is_refused(tmp_path: Path) -> None:
    """``str([...])`` of shared references grows exponentially with the pickle's size."""
    path = _dump(tmp_path, pickle.dumps(_Call(str, _nested(22)), protocol=2))
    assert path.stat().st_size < 1000
    expect_error(lambda: safe_load(path), str(path), "str() of a list")
    # str of a scalar or of bytes with an encoding stays allowed
    data = pickle.dumps([_Call(str, 12), _Call(str, b"ab", "ascii")], protocol=2)
    assert safe_load(io.BytesIO(data)) == ["12", "ab"]
    # a checked callable kept as data comes back as itself
    factory = collections.defaultdict(str, a="x")
    loaded = safe_load(io.BytesIO(pickle.dumps([factory, bytes, range(2)], protocol=2)))
    assert loaded[0].default_factory is str and loaded[1] is bytes and loaded[2] == range(2)


def test_array_state_that_does_not_match_its_shape_is_refused(tmp_path: Path) -> None:
    """numpy's ``ndarray.__setstate__`` crashes the process (segfault) on an object array whose
    list of items is shorter than its shape; the loader checks the state first. Run in a child
    process so that a crash fails this test instead of killing the test run."""
    import subprocess
    import sys

    bad = _Call(_RECONSTRUCT, np.ndarray, (0,), b"b", state=(1, (5,), np.dtype("O"), False, [1]))
    path = _dump(tmp_path, pickle.dumps({"x": bad}, protocol=2))
    code = (
        "import sys\n"
        "from ercgraph.data.safe_pickle import safe_load\n"
        "from ercgraph.errors import ErcgraphError\n"
        "try:\n"
        f"    safe_load({str(path)!r})\n"
        "except ErcgraphError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 3, (done.returncode, done.stderr[-500:])
    assert str(path) in done.stdout and "5 items" in done.stdout
    # a matching state loads, as a plain ndarray
    good = _Call(
        _RECONSTRUCT, np.ndarray, (0,), b"b", state=(1, (2,), np.dtype("O"), False, [1, "a"])
    )
    arr = safe_load(io.BytesIO(pickle.dumps({"x": (good,)}, protocol=2)))["x"][0]
    assert type(arr) is np.ndarray and arr.tolist() == [1, "a"]
