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
        "big_endian": np.arange(3, dtype=">i4"),
        "bytes": np.array([b"a", b"bcd"]),
        "bools": np.array([True, False]),
        "complex": np.array([1 + 2j], dtype=np.complex64),
        "scalar": np.float64(1.5),
        "iscalar": np.int32(7),
        "sscalar": np.str_("ab"),
        "dtype": np.dtype("f2"),
        "udtype": np.dtype(">U3"),
    }
    data = pickle.dumps(obj, protocol=protocol)
    loaded, plain = safe_load(io.BytesIO(data)), pickle.loads(data)
    for key, value in obj.items():
        if isinstance(value, np.ndarray):
            # numpy itself loads big-endian arrays as native ones (protocols 2 and 4)
            assert loaded[key].dtype == plain[key].dtype
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


# -- dtypes: decided from the dtype's own fields, never its flags ---------------------------------
_SCALAR = np.float64(1.0).__reduce__()[0]  # numpy's multiarray.scalar
_FROMBUFFER = np.ndarray.__reduce_ex__(np.zeros(1), 5)[0]  # numpy's numeric._frombuffer
_POINTER = (0x4141414141414141).to_bytes(8, "little")  # read as an object pointer: a crash


def _dtype(code: str, flags: int, names=None, fields=None, order: str = "|") -> _Call:
    """A pickled ``numpy.dtype(code)`` whose state sets ``flags`` (0 hides an object dtype)."""
    return _Call(np.dtype, code, False, True, state=(3, order, None, names, fields, -1, -1, flags))


def _array(dtype: object, data: object, shape: tuple = (1,)) -> _Call:
    return _Call(_RECONSTRUCT, np.ndarray, (0,), b"b", state=(1, shape, dtype, False, data))


_HIDDEN_OBJECT = _dtype("O8", 0)
# a structured dtype with one object field, the outer flags 0: hasobject reads False
_HIDDEN_FIELD = _Call(
    np.dtype,
    "V8",
    False,
    True,
    state=(3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0),
)


# each payload is loaded in a forked child of one subprocess, then given to _kind (what
# detect_layout runs): a crash fails the test instead of killing the test run
_CHILD = """
import json, os, sys
from ercgraph.data.safe_pickle import safe_load
from ercgraph.data.pickles.common import _kind
from ercgraph.errors import ErcgraphError
out = {}
for path in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            obj = safe_load(path)
            text, code = f"loaded: {_kind(obj)} {obj!r}", 0
        except ErcgraphError as exc:
            text, code = str(exc), 3
        os.write(write, text.encode()[:2000])
        os._exit(code)
    os.close(write)
    text = os.read(read, 4000).decode()
    os.close(read)
    out[path] = [os.waitpid(pid, 0)[1], text]
print(json.dumps(out))
"""


def test_dtype_whose_flags_hide_objects_is_refused(tmp_path: Path) -> None:
    """numpy reads raw bytes as object pointers when a dtype's flags say it holds no objects
    (a segfault in ``_kind``); every place a dtype reaches numpy rebuilds it from its code."""
    import json
    import subprocess
    import sys

    cases = {
        # the attack: an object dtype with flags 0, and a structured one hiding an object field
        "array": (_array(_HIDDEN_OBJECT, _POINTER), "object array of shape (1,) needs a list"),
        "structured": (_array(_HIDDEN_FIELD, _POINTER), "structured"),
        # every other place a dtype reaches numpy
        "scalar": (_Call(_SCALAR, _HIDDEN_OBJECT, _POINTER), "object dtype"),
        "frombuffer": (_Call(_FROMBUFFER, _POINTER, _HIDDEN_OBJECT, (1,), "C"), "object dtype"),
        "ndarray": (_Call(np.ndarray, (1,), _HIDDEN_OBJECT, _POINTER), "buffer"),
        "reconstruct": (_Call(_RECONSTRUCT, np.ndarray, (1,), _HIDDEN_FIELD), "structured"),
    }
    paths = {
        name: _dump(tmp_path, pickle.dumps({"d1": payload}, protocol=2), f"{name}.pkl")
        for name, (payload, _) in cases.items()
    }
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *map(str, paths.values())], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-800:]
    results = json.loads(done.stdout)
    for name, (_, what) in cases.items():
        status, msg = results[str(paths[name])]
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3, (name, status, msg)
        assert "\n" not in msg and str(paths[name]) in msg and what in msg, (name, msg)


def test_object_array_built_from_a_hidden_object_dtype_needs_its_items(tmp_path: Path) -> None:
    """The dtype is rebuilt from its code: an object array's items must come as a list."""
    path = _dump(tmp_path, pickle.dumps([_array(_HIDDEN_OBJECT, _POINTER)], protocol=2))
    expect_error(lambda: safe_load(path), str(path), "object array of shape (1,) needs a list")
    ok = _array(_HIDDEN_OBJECT, ["fear"])
    arr = safe_load(io.BytesIO(pickle.dumps([ok], protocol=2)))[0]
    assert type(arr) is np.ndarray and arr.dtype.hasobject and arr.tolist() == ["fear"]


def test_flags_in_a_dtype_state_never_reach_numpy() -> None:
    """A float dtype whose state claims object flags loads as a plain float dtype."""
    data = np.array([1.5, -2.0]).astype(">f8").tobytes()
    arr = safe_load(
        io.BytesIO(pickle.dumps(_array(_dtype("f8", 63, order=">"), data, (2,)), protocol=2))
    )
    assert arr.dtype == np.dtype("f8") and arr.dtype.flags == np.dtype("f8").flags
    assert arr.tolist() == [1.5, -2.0]
    spec = safe_load(io.BytesIO(pickle.dumps(_dtype("O8", 0), protocol=2)))
    assert spec == np.dtype("O") and spec.hasobject


@pytest.mark.parametrize(
    "value, what",
    [
        (np.array(["2020-01-01"], dtype="M8[D]"), "datetime64"),
        (np.array([5], dtype="m8[s]"), "timedelta64"),
        (np.zeros(2, dtype="V4"), "structured or void"),
        (np.zeros(2, dtype=[("a", "i4"), ("b", "f8")]), "structured or void"),
        (np.zeros(2, dtype=[("a", "i4"), ("b", "O")]), "structured or void"),
        (np.datetime64("2020-01-01"), "datetime64"),
        (np.zeros(1, dtype="V4")[0], "structured or void"),
        (np.dtype("M8[ns]"), "datetime64"),
        (_Call(_RECONSTRUCT, np.ndarray, (1,), "i4,f8"), "structured dtype (fields 'f0': int32"),
        (_Call(_RECONSTRUCT, np.ndarray, (1,), "(2,)i4"), "subarray dtype"),
        (_array(_dtype("f8", 0, names=("a",), fields={}), b""), "adds fields"),
        (_Call(np.dtype, np.dtype("f8")), "type code string"),
    ],
    ids=[
        "datetime-array",
        "timedelta-array",
        "void-array",
        "structured-array",
        "structured-object-field",
        "datetime-scalar",
        "void-scalar",
        "datetime-dtype",
        "structured-code",
        "subarray-code",
        "fields-in-state",
        "dtype-of-a-dtype",
    ],
)
def test_dtypes_outside_the_allowed_kinds_are_refused(value: object, what: str) -> None:
    for protocol in (2, 5):
        data = pickle.dumps({"x": [value]}, protocol=protocol)
        expect_error(lambda data=data: safe_load(io.BytesIO(data)), "<pickle stream>", what)


def test_scalars_and_frombuffer_check_their_bytes() -> None:
    short = pickle.dumps(_Call(_SCALAR, np.dtype("f8"), b"\x00" * 4), protocol=2)
    expect_error(lambda: safe_load(io.BytesIO(short)), "needs 8 bytes, got 4")
    long = pickle.dumps(_Call(_FROMBUFFER, b"\x00" * 12, np.dtype("f4"), (2,), "C"), protocol=2)
    expect_error(lambda: safe_load(io.BytesIO(long)), "needs 8 bytes, got 12")
    order = pickle.dumps(_Call(_FROMBUFFER, b"\x00" * 8, np.dtype("f4"), (2,), "K"), protocol=2)
    expect_error(lambda: safe_load(io.BytesIO(order)), "order 'K'")
    good = pickle.dumps(_Call(_FROMBUFFER, b"\x00" * 8, np.dtype("f4"), (1, 2), "F"), protocol=2)
    arr = safe_load(io.BytesIO(good))
    assert type(arr) is np.ndarray and arr.shape == (1, 2) and arr.dtype == np.float32


# -- class state: allowed classes and functions take none -----------------------------------------
def _build_on(module: str, name: str, slots: dict) -> bytes:
    """A pickle that sets ``slots`` on the global ``module.name`` itself (BUILD on the class)."""
    state = pickle.dumps((None, slots), protocol=2)[2:-1]  # without PROTO and STOP
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + state + b"b."


class _Restored:
    """Puts back whatever a (failed) test changed on ``obj``, so HEAD cannot break the run."""

    def __init__(self, obj: object, *attrs: str) -> None:
        self.obj, self.attrs = obj, attrs
        self.before = dict(vars(obj))
        self.special = {a: getattr(obj, a) for a in attrs}

    def __enter__(self) -> _Restored:
        return self

    def __exit__(self, *exc: object) -> None:
        for key in set(vars(self.obj)) - set(self.before):
            try:
                delattr(self.obj, key)
            except (AttributeError, TypeError):
                pass
        for key, value in [*self.before.items(), *self.special.items()]:
            if (
                key not in ("__dict__", "__weakref__", "__doc__")
                and getattr(self.obj, key, None) is not value
            ):
                setattr(self.obj, key, value)


def test_counter_class_cannot_be_patched(tmp_path: Path) -> None:
    """BUILD with slot state on ``collections.Counter`` itself patched it for the process."""
    path = _dump(tmp_path, _build_on("collections", "Counter", {"update": set}))
    with _Restored(collections.Counter):
        expect_error(lambda: safe_load(path), str(path), "collections.Counter", unchanged=(path,))
        assert collections.Counter(["fear", "fear"]) == {"fear": 2}
        assert (
            "update" not in vars(collections.Counter)
            or vars(collections.Counter)["update"] is not set
        )
    # Counter still loads as data, and as a defaultdict's factory
    data = {"c": collections.Counter("aab"), "d": collections.defaultdict(collections.Counter)}
    loaded = safe_load(io.BytesIO(pickle.dumps(data, protocol=2)))
    assert loaded["c"] == data["c"] and type(loaded["c"]) is collections.Counter
    assert loaded["d"].default_factory is collections.Counter
    assert collections.Counter(["fear", "fear"]) == {"fear": 2}


@pytest.mark.parametrize(
    "module, name",
    [
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("__builtin__", "list"),
        ("__builtin__", "str"),
        ("__builtin__", "bytes"),
        ("__builtin__", "bytearray"),
        ("__builtin__", "xrange"),
        ("_codecs", "encode"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
    ],
)
def test_allowed_classes_and_functions_take_no_state(module: str, name: str) -> None:
    data = _build_on(module, name, {"__defaults__": (1, 2, 3, 4), "patched": 1})
    expect_error(lambda: safe_load(io.BytesIO(data)), "<pickle stream>")


def test_numpy_function_cannot_be_patched() -> None:
    """``_frombuffer`` is a Python function: its defaults and attributes could be set."""
    from numpy._core import numeric

    data = _build_on("numpy._core.numeric", "_frombuffer", {"__defaults__": ("C",)})
    before = numeric._frombuffer.__defaults__
    with _Restored(numeric._frombuffer, "__defaults__"):
        expect_error(lambda: safe_load(io.BytesIO(data)), "numpy._core.numeric._frombuffer")
        assert numeric._frombuffer.__defaults__ is before


def test_bytes_stand_in_cannot_swap_its_function() -> None:
    """The checked ``bytes`` was a ``functools.partial``, whose state can replace its function
    (here by ``list``, so that the size check is skipped)."""
    swap = b"\x80\x02c__builtin__\nbytes\n(c__builtin__\nlist\n)NNtb0"
    call = pickle.dumps(_Call(bytes, 3), protocol=2)[2:]
    expect_error(lambda: safe_load(io.BytesIO(swap + call)), "bytes")


class _SlotSample:
    __slots__ = ("vid",)


def test_stub_classes_take_no_state_but_their_instances_do() -> None:
    extra = {("cogmen.Sample", "Sample"): _Sample}
    data = _build_on("cogmen.Sample", "Sample", {"vid": "patched"})
    with _Restored(_Sample):
        expect_error(lambda: safe_load(io.BytesIO(data), extra=extra), "Sample")
        assert "vid" not in vars(_Sample)
    # instances build, with a dict state or a slot state, and are instances of the stub
    with_dict = b"ccogmen.Sample\nSample\n)\x81}(S'vid'\nS'a'\nub."
    obj = safe_load(io.BytesIO(with_dict), extra=extra)
    assert type(obj) is _Sample and obj.vid == "a"
    slotted = (
        b"\x80\x02ccogmen.Sample\nSample\n)\x81N}X\x03\x00\x00\x00vidX\x01\x00\x00\x00bs\x86b."
    )
    obj = safe_load(io.BytesIO(slotted), extra={("cogmen.Sample", "Sample"): _SlotSample})
    assert type(obj) is _SlotSample and obj.vid == "b"
    # the stub class kept as data is the stub itself
    listed = b"\x80\x02ccogmen.Sample\nSample\n\x85."
    assert safe_load(io.BytesIO(listed), extra=extra) == (_Sample,)
