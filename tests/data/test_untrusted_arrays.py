"""Crafted pickles and array files that ask for memory the file does not hold, repeat their
data, hold invalid characters or nest without end: each is one line naming the file and what
was refused, before anything large is allocated (issue 22, review items P3-P6 and P10)."""

from __future__ import annotations

import collections
import io
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ercgraph.config import DataConfig, FeatureFileConfig
from ercgraph.data.feature_files import read_feature_file
from ercgraph.data.pickles import read_pickle_features
from ercgraph.data.safe_pickle import safe_load
from ercgraph.data.table import read_table

from .helpers import expect_error, write
from .pickle_fixtures import WRITERS, dump


# -- raw pickle opcodes (protocol 2), for payloads pickle.dumps cannot write -------------------
def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _int(n: int) -> bytes:
    return b"I" + str(n).encode() + b"\n"


def _bytes(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data  # BINBYTES


def _text(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def _call(fn: bytes, *args: bytes) -> bytes:
    return fn + b"(" + b"".join(args) + b"tR"  # fn MARK args TUPLE REDUCE


def _dtype(code: str) -> bytes:
    return _call(_global("numpy", "dtype"), _text(code), b"\x89", b"\x88")  # (code, False, True)


def _memo_reuse(make: bytes, use: bytes, times: int) -> bytes:
    """``make`` once into memo slot 1, then a list of ``times`` calls ``use(memo[1])``."""
    body = make + b"q\x01" + b"0"  # BINPUT 1, POP
    calls = b"".join(_call(use, b"h\x01") for _ in range(times))  # BINGET 1
    return b"\x80\x02" + body + b"](" + calls + b"e."  # EMPTY_LIST MARK ... APPENDS STOP


def _file(tmp_path: Path, data: bytes, name: str = "x.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- P3: every copy of an object kept in the memo is charged --------------------------------------
_RANGE = _call(_global("__builtin__", "xrange"), _int(1000))  # 64,000 bytes when expanded
_BUFFER = _call(_global("__builtin__", "bytes"), _int(100_000))


@pytest.mark.parametrize(
    "make, use, what",
    [
        (_RANGE, _global("__builtin__", "list"), "list() of a range of 1,000 items"),
        (_RANGE, _global("__builtin__", "set"), "set() of a range"),
        (_RANGE, _global("collections", "Counter"), "Counter() of a range"),
        (_BUFFER, _global("__builtin__", "bytearray"), "bytearray() of a bytes"),
        (_BUFFER, _global("__builtin__", "str"), "str() of a bytes"),
        (_text("x" * 50_000), _global("_codecs", "encode"), "encode() of a str"),
    ],
)
def test_memo_reuse_is_charged_at_every_copy(
    tmp_path: Path, make: bytes, use: bytes, what: str
) -> None:
    """One sized object in the memo, copied 200 times, is charged 200 times: a small pickle
    cannot expand to 200 times what it was charged for."""
    path = _file(tmp_path, _memo_reuse(make, use, 200))
    assert path.stat().st_size < 60_000  # far below max_bytes: it is the copies that count
    expect_error(lambda: safe_load(path, max_bytes=2_000_000), str(path), what, "max_bytes")
    # once is fine: the first copy of an object is not charged twice
    once = _file(tmp_path, _memo_reuse(make, use, 1), "once.pkl")
    assert len(safe_load(once, max_bytes=2_000_000)) == 1


@pytest.mark.parametrize(
    "args",
    [
        (_text("abc"), _text("utf-8"), _text("namereplace")),  # \N{...}: dozens of bytes a char
        (_text("abc"), _text("unicode_escape")),
    ],
)
def test_text_codecs_that_expand_are_refused(tmp_path: Path, args: tuple) -> None:
    path = _file(tmp_path, b"\x80\x02" + _call(_global("__builtin__", "bytes"), *args) + b".")
    expect_error(lambda: safe_load(path), str(path), "pickle refused", "encodings latin-1")
    # the codec protocol 2 uses for bytes still loads
    assert safe_load(io.BytesIO(pickle.dumps([b"\x00\xff" * 3], protocol=2))) == [b"\x00\xff" * 3]


_RECONSTRUCT = _global("numpy.core.multiarray", "_reconstruct")


def _array_state(shape: tuple, code: str, data: bytes, fortran: bool = False) -> bytes:
    dims = b"(" + b"".join(_int(d) for d in shape) + b"t"
    flag = b"\x88" if fortran else b"\x89"
    return b"(" + _int(1) + dims + _dtype(code) + flag + data + b"tb"  # MARK ... TUPLE BUILD


def _empty_array(shape: tuple, code: str) -> bytes:
    dims = b"(" + b"".join(_int(d) for d in shape) + b"t"
    return _call(_RECONSTRUCT, _global("numpy", "ndarray"), dims, _dtype(code))


@pytest.mark.parametrize(
    "payload",
    [
        _empty_array((10**6,), "S0"),  # numpy widens it to S1: 1 MB charged 0
        _empty_array((0,), "f8") + _array_state((10**6,), "S0", _bytes(b"")),
        _empty_array((0,), "f8") + _array_state((10**6,), "U0", _bytes(b"")),
    ],
)
def test_zero_width_string_arrays_are_refused(tmp_path: Path, payload: bytes) -> None:
    path = _file(tmp_path, b"\x80\x02" + payload + b".")
    expect_error(
        lambda: safe_load(path, max_bytes=100_000), str(path), "zero-width dtype", "(1000000,)"
    )
    # a dtype of width 0 as a value (np.dtype('S') pickles so) still loads
    assert safe_load(io.BytesIO(pickle.dumps([np.dtype("S")], protocol=2)))[0].kind == "S"


def _ndarray(shape: tuple, code: str, buffer: bytes, *rest: bytes) -> bytes:
    dims = b"(" + b"".join(_int(d) for d in shape) + b"t"
    return _call(_global("numpy", "ndarray"), dims, _dtype(code), _bytes(buffer), *rest)


@pytest.mark.parametrize(
    "payload, what",
    [
        # 8 bytes made into a "8 TB" array by a zero stride
        (_ndarray((10**12,), "f8", b"\0" * 8, _int(0), b"(" + _int(0) + b"t"), "strides (0,)"),
        (_ndarray((2,), "f8", b"\0" * 16, _int(0), b"(" + _int(-8) + b"t"), "strides (-8,)"),
        (_ndarray((4,), "f8", b"\0" * 32, _int(8)), "at offset 8 needs 40 bytes of buffer, got 32"),
        (_ndarray((1,), "f8", b"\0" * 8, _int(-8)), "offset is -8"),
    ],
)
def test_ndarray_over_a_buffer_has_no_strides_and_fits_it(
    tmp_path: Path, payload: bytes, what: str
) -> None:
    path = _file(tmp_path, b"\x80\x02" + payload + b".")
    expect_error(lambda: safe_load(path), str(path), "pickle refused", what)
    # an array over its whole buffer, or a part of it, loads
    data = np.array([1.5, -2.0, 4.0]).tobytes()
    ok = _file(tmp_path, b"\x80\x02" + _ndarray((2,), "<f8", data, _int(8)) + b".", "ok.pkl")
    np.testing.assert_array_equal(safe_load(ok), [-2.0, 4.0])


# -- P5: unicode arrays hold valid code points ----------------------------------------------------
_FROMBUFFER = _global("numpy.core.numeric", "_frombuffer")


def _unicode(codes: list[int]) -> bytes:
    data = struct.pack(f"<{len(codes)}I", *codes)
    dims = b"(" + _int(len(codes)) + b"t"
    return _call(_FROMBUFFER, _bytes(data), _dtype("<U1"), dims, _text("C"))


@pytest.mark.parametrize(
    "code, why", [(0xFFFFFFFF, "above U+10FFFF"), (0x110000, "above"), (0xD800, "surrogate")]
)
def test_unicode_arrays_with_invalid_code_points_are_refused(
    tmp_path: Path, code: int, why: str
) -> None:
    """numpy never checks a U array's code points; reading an item past U+10FFFF is a
    SystemError in Python, so the loader checks them all, naming where the array sits."""
    payload = b"}" + _text("sentences") + b"]" + _unicode([0x61, code]) + b"as"  # {..: [arr]}
    path = _file(tmp_path, b"\x80\x02" + payload + b".")
    expect_error(lambda: safe_load(path), str(path), "at ['sentences'][0]", f"0x{code:X}", why)
    scalar = _call(
        _global("numpy.core.multiarray", "scalar"), _dtype("<U1"), _bytes(struct.pack("<I", code))
    )
    path = _file(tmp_path, b"\x80\x02" + scalar + b".", "scalar.pkl")
    expect_error(lambda: safe_load(path), str(path), "unicode scalar", f"0x{code:X}")
    # characters beyond the BMP are valid
    good = _file(tmp_path, b"\x80\x02" + _unicode([0x61, 0x1F600]) + b".", "good.pkl")
    assert safe_load(good).tolist() == ["a", "\U0001f600"]


# -- P6, P10: structures and object arrays --------------------------------------------------------
def test_deep_nesting_is_one_line_naming_the_cause(tmp_path: Path) -> None:
    # a global makes the loader walk the result: 100,000 nested lists
    payload = _global("__builtin__", "list") + b"0" + b"]" * 100_000 + b"a" * 99_999
    path = _file(tmp_path, b"\x80\x02" + payload + b".")
    expect_error(lambda: safe_load(path), str(path), "nests too deeply")


def test_structure_guard_names_file_and_expectation(tmp_path: Path) -> None:
    from ercgraph.data.pickles.common import structure_guard

    def nest() -> None:
        with structure_guard(tmp_path / "f.pkl", "the dialoguegcn layout"):
            raise RecursionError("maximum recursion depth exceeded")

    expect_error(nest, "f.pkl", "nests too deeply or refers to itself", "dialoguegcn layout")


def test_fortran_object_array_gives_back_the_originals() -> None:
    """Items of a Fortran-ordered object array are restored in place (a reshape of it is a
    copy), so no stand-in is left in the result."""
    items = b"](" + _global("collections", "Counter") + _global("__builtin__", "list") * 3 + b"e"
    data = b"\x80\x02" + _empty_array((0,), "O") + _array_state((2, 2), "O", items, True) + b"."
    arr = safe_load(io.BytesIO(data))
    assert type(arr) is np.ndarray and arr.shape == (2, 2)
    assert arr.flags.f_contiguous and not arr.flags.c_contiguous
    assert arr[0, 0] is collections.Counter
    assert all(arr.flat[i] is list for i in range(1, 4))


def _edit(path: Path, index: int, key, value) -> None:
    obj = list(pickle.loads(path.read_bytes()))
    obj[index][key] = value
    dump(path, tuple(obj))


@pytest.mark.parametrize(
    "value, what",
    [
        (np.ones((3, 100), np.complex64), "complex numbers"),
        ([[1j] * 100] * 3, "complex numbers"),
        (np.full((3, 100), b"1.5"), "bytes strings"),
        ([[b"1.5"] * 100] * 3, "bytes strings"),
        ([["1.5"] * 100] * 3, "strings"),
    ],
)
def test_pickle_features_must_be_real_numbers(tmp_path: Path, value, what: str) -> None:
    """Complex features lost their imaginary part and bytes were parsed as numbers; both are
    refused like feature files refuse them, naming the file, dialogue and field."""
    fx = WRITERS["mmgcn_iemocap"](tmp_path)
    _edit(fx.path, 3, "Ses01F_impro01", value)
    expect_error(
        lambda: read_pickle_features(DataConfig(reader="pickle", path=str(fx.path)), None),
        str(fx.path),
        "dialogue key 'Ses01F_impro01'",
        "'videoText'",
        what,
    )


_SELF_REF = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (800 << 20, 800 << 20))
from pathlib import Path
from ercgraph.config import DataConfig
from ercgraph.data.pickles.detect import _load
from ercgraph.data.pickles.parse import parse_layout
from ercgraph.errors import ErcgraphError
path = Path(sys.argv[1])
obj, layout = _load(path, DataConfig(reader="pickle", path=str(path)))
parsed = parse_layout(obj, path, DataConfig(reader="pickle", path=str(path)), layout)
try:
    parsed.feature_matrix(obj[3], "videoText", path)
except ErcgraphError as exc:
    print(exc)
    sys.exit(3)
"""


def test_self_referential_features_are_refused_before_numpy(tmp_path: Path) -> None:
    """numpy follows a list that contains itself 64 levels deep and allocates without end (a
    MemoryError under a limit, the machine's memory without one); the parser refuses it first.
    Run in a child with a few hundred MB of address space."""
    fx = WRITERS["mmgcn_iemocap"](tmp_path)
    loop: list = []
    loop += [loop, loop]
    _edit(fx.path, 3, "Ses01F_impro01", [loop] * 3)
    done = subprocess.run(
        [sys.executable, "-c", _SELF_REF, str(fx.path)], capture_output=True, text=True
    )
    assert done.returncode == 3, (done.returncode, done.stderr[-800:])
    assert str(fx.path) in done.stdout and "containing itself" in done.stdout


# -- feature files: P4 (tensors that repeat their storage), P5 (code points), P10 (float ids) -----
TABLE = """dlg,spk,emo,part,uid
d1,A,joy,train,u0
d1,B,sad,train,u1
d2,A,joy,dev,u2
d2,B,sad,dev,u3
d3,C,joy,test,u4
"""
COLS = {"dialogue_id": "dlg", "speaker": "spk", "label": "emo", "split": "part"}


def _feature_file(tmp_path: Path, **spec):
    write(tmp_path / "all.csv", TABLE)
    corpus = read_table(DataConfig(reader="table", path="all.csv", columns=COLS), tmp_path)
    return lambda: read_feature_file(FeatureFileConfig(**spec), "audio", corpus, tmp_path)


@pytest.mark.parametrize(
    "tensor", [torch.zeros(1).expand(5, 100_000), torch.arange(4.0).expand(5, 4)]
)
def test_pt_tensor_that_repeats_its_storage_is_refused(tmp_path: Path, tensor) -> None:
    """``torch.zeros(1).expand(40, 10**9)`` is 4 bytes on disk and 160 GB once copied; a tensor
    whose storage holds fewer bytes than its shape needs is refused before any copy."""
    torch.save({"X": tensor}, tmp_path / "f.pt")
    read = _feature_file(tmp_path, path="f.pt", key="X")
    expect_error(read, "f.pt", "array 'X'", "its storage holds", "repeats its data")
    # a view that fits its storage (a transposed tensor) loads
    torch.save({"X": torch.arange(20.0).reshape(4, 5).T}, tmp_path / "f.pt")
    assert read().features["audio"].shape == (5, 4)


def _bad_ids(code: int) -> np.ndarray:
    ids = np.array(["u0", "u1", "u2", "u3", "u4"])
    raw = ids.view("<u4").copy()
    raw[7] = code  # the second character of 'u3'
    return raw.view("<U2")


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
@pytest.mark.parametrize("code", [0xFFFFFFFF, 0xDC80])
def test_id_arrays_with_invalid_code_points_are_refused(
    tmp_path: Path, suffix: str, code: int
) -> None:
    x, ids = np.ones((5, 3), np.float32), _bad_ids(code)
    if suffix == ".npz":
        np.savez(tmp_path / "f.npz", X=x, ids=ids)
    else:
        torch.save({"X": torch.from_numpy(x), "ids": ids}, tmp_path / "f.pt")
    read = _feature_file(tmp_path, path="f" + suffix, key="X", id_column="uid", id_key="ids")
    expect_error(read, "f" + suffix, "'ids'", f"0x{code:X}", "not a character")


def test_float_ids_too_large_for_integers_are_named(tmp_path: Path) -> None:
    """1e300 was cast to int64's minimum for every row: "id '-9223372036854775808' appears more
    than once"."""
    ids = np.array([0.0, 1e300, 2e300, 3.0, 4.0])
    np.savez(tmp_path / "f.npz", X=np.ones((5, 3), np.float32), ids=ids)
    read = _feature_file(tmp_path, path="f.npz", key="X", id_column="uid", id_key="ids")
    msg = expect_error(read, "f.npz", "'ids'", "1e+300", "file row 1", "2**53")
    assert "more than once" not in msg
