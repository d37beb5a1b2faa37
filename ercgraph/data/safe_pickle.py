"""Load untrusted pickles without letting them run code, patch classes or corrupt memory.

``pickle.load`` calls whatever function a pickle names, so a feature file from the internet could
run ``os.system``. :func:`safe_load` uses an :class:`pickle.Unpickler` whose ``find_class``
resolves only an allowlist:

* plain builtin containers and scalars (``list``, ``dict``, ``set``, ``frozenset``, ``tuple``,
  ``str``, ``bytes``, ``bytearray``, ``int``, ``float``, ``complex``, ``bool``, ``slice``,
  ``range``; never ``eval``/``exec``/``getattr``/``__import__``/``open`` or ``object``);
* the dict subclasses ``collections.OrderedDict``/``defaultdict``/``Counter`` (data only;
  ``namedtuple`` builds classes and is refused);
* ``_codecs.encode`` (how protocol-2 pickles store bytes);
* numpy array, scalar and dtype reconstruction (``numpy.ndarray``, ``numpy.dtype``,
  ``multiarray._reconstruct``, ``multiarray.scalar``, ``numeric._frombuffer``) under both the
  ``numpy.core`` (numpy 1) and ``numpy._core`` (numpy 2) module names.

Anything else is refused with an :class:`~ercgraph.errors.ErcgraphError` before it is imported.
Python-2 names (``__builtin__``, ``xrange``) are mapped to their Python-3 equivalents first.
Callers that must read pickles of custom classes (e.g. COGMEN's ``Sample``) pass ``extra``, a
``{(module, name): replacement}`` map, typically to a stub class.

What an allowed name gives the pickle:

* **No state on classes or functions.** ``find_class`` hands out an immutable type itself (the
  builtins, ``OrderedDict``, ``defaultdict``) and for everything else a stand-in: a callable that
  forwards calls and refuses ``BUILD`` state, so a pickle cannot patch ``Counter`` (or a numpy
  function) for the whole process. A stub class from ``extra`` is handed out as a fresh sealed
  subclass (a class, so ``NEWOBJ`` works; setting its attributes is refused); its instances take
  state as usual and come back as instances of the stub. Stand-ins kept as data
  (``defaultdict(Counter)``'s factory) are put back to what they stand for.
* **Only these dtypes**: bool, signed and unsigned integers, floats, complex, fixed-width bytes
  (``S``) and unicode (``U``) strings, and plain object arrays whose items come as a Python list
  (object dtype is refused for scalars and for arrays read from raw bytes). Structured, void,
  subarray, datetime and timedelta dtypes are refused. A pickled ``numpy.dtype`` becomes a
  :class:`DtypeSpec` whose state may set the byte order and a string's width and nothing else;
  every dtype that reaches numpy (an array's state, ``_reconstruct``, ``scalar``, ``_frombuffer``,
  ``ndarray``) is checked from its kind, fields and subarray and rebuilt from its type code, so
  flags in a pickled state (which tell numpy whether the bytes hold object pointers) never reach
  numpy.
* **Bounded memory.** Allowed callables can still be asked for memory that the file does not
  hold: ``bytes(10**12)``, ``list(range(10**12))``, ``numpy.ndarray((10**6, 10**6))``, ``str()``
  of a list whose shared references expand exponentially, or one buffer kept in the memo and
  copied a thousand times. The calls that take a size, and those that copy or expand an argument
  (the containers, ``bytes``, ``bytearray``, ``str``, ``_codecs.encode``), are checked before
  they run: what they would allocate counts against ``max_bytes`` (:data:`MAX_BYTES`, 4 GiB, per
  load). The first copy of an object is free (its data is in the file, or was charged when a
  call made it); every further copy of it is charged. ``str()`` takes scalars and bytes only,
  and text codecs are limited to latin-1, ascii and utf-8 (at most 4 bytes a character). An
  array's pickled state is checked against its shape and dtype before numpy reads it; an array
  over a buffer takes no strides and must fit its buffer; zero-width string dtypes hold no items.
* **Valid arrays only.** :meth:`RestrictedUnpickler.finish` checks every array it hands back:
  no zero or negative stride (:func:`stride_problem`) and, for unicode arrays, valid code points
  (:func:`unicode_problem`), naming where the array sits (``at [3]['Ses01F_impro01']``).

Every refusal is an :class:`~ercgraph.errors.ErcgraphError` naming the file.

``.pt`` files read with ``torch.load(weights_only=True)`` (feature files) may hold numpy arrays of
numbers and strings: :func:`torch_numpy_globals` lets torch's allowlist build them through the
same checks (never object arrays there), and :func:`weights_only_cause` turns torch's refusal into
a one-line cause.
"""

from __future__ import annotations

import _compat_pickle
import builtins
import collections
import functools
import importlib
import math
import operator
import pickle
import re
import reprlib
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from ercgraph.errors import ErcgraphError

SAFE_BUILTINS = frozenset(
    {
        "list",
        "dict",
        "set",
        "frozenset",
        "tuple",
        "str",
        "bytes",
        "bytearray",
        "int",
        "float",
        "complex",
        "bool",
        "slice",
        "range",
    }
)
SAFE_COLLECTIONS = frozenset({"OrderedDict", "defaultdict", "Counter"})
# numpy names, each looked up in numpy._core (numpy 2) first and numpy.core (numpy 1) second
_NUMPY_CORE = {
    "multiarray": frozenset({"_reconstruct", "scalar"}),
    "numeric": frozenset({"_frombuffer"}),
}
_NUMPY_TOP = frozenset({"ndarray", "dtype"})

#: Most bytes the sized calls of one load may allocate, unless ``max_bytes`` says otherwise; far
#: above what a feature pickle asks for (its arrays carry their data in the file).
MAX_BYTES = 4 * 1024**3
# memory charged per item when a container copies or expands its argument (a pointer, a hash
# slot, and a new object for each item of a range or a string)
_ITEM_BYTES = 64
# bytes charged per character when text is encoded, decoded or repr'd (UTF-8 and UCS-4 take at
# most 4 a character; the repr of a byte, \xff, is 4)
_CHAR_BYTES = 4
# encodings and error handlers a pickle may use in str(), bytes() and _codecs.encode(): each
# writes at most _CHAR_BYTES a character (a name replacement such as \N{...} writes dozens)
_CODECS = frozenset(
    {"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1", "ascii", "us-ascii", "utf-8", "utf8"}
)
_CODEC_ERRORS = frozenset({"strict", "ignore", "replace", "surrogateescape", "surrogatepass"})
_STR_ARGS = (str, bytes, bytearray, int, float, complex, bool, type(None))
# builtins that copy or expand their argument: charged per item at every call
_CONTAINERS = (
    list,
    tuple,
    set,
    frozenset,
    dict,
    collections.OrderedDict,
    collections.defaultdict,
    collections.Counter,
)

#: dtype kinds the loaders accept: bool, signed and unsigned integers, floats, complex, bytes,
#: unicode and (pickled arrays only, items as a list) Python objects.
ARRAY_KINDS = "biufcSUO"
_ALLOWED_TEXT = "bool, integer, float, complex, fixed-width bytes or unicode"
_KIND_NAMES = {
    "V": "a structured or void dtype",
    "M": "a datetime64 dtype",
    "m": "a timedelta64 dtype",
    "O": "an object dtype (Python objects)",
}
# Py_TPFLAGS_IMMUTABLETYPE: setting an attribute on such a class raises TypeError
_IMMUTABLE_TYPE = 1 << 8


class PickleRefused(ValueError):
    """A call or state in a pickle that the checks refuse (raised before numpy or a class sees
    it); the loaders turn it into an :class:`~ercgraph.errors.ErcgraphError` naming the file."""


def _what(value: Any) -> str:
    return f"a {type(value).__name__}"


def _check_codec(call: str, args: tuple[Any, ...]) -> None:
    """Refuse an encoding or error handler outside :data:`_CODECS`/:data:`_CODEC_ERRORS`
    (``args``: the encoding and errors arguments of ``str()``, ``bytes()``, ``encode``)."""
    for value, allowed in zip(args, (_CODECS, _CODEC_ERRORS)):
        if isinstance(value, str) and value.lower().replace("_", "-") not in allowed:
            raise PickleRefused(
                f"{call}() with {value!r}: a pickle may use the encodings latin-1, ascii and "
                f"utf-8 with the error handlers {', '.join(sorted(_CODEC_ERRORS))}"
            )


# -- classes a pickle may hold ------------------------------------------------------------------
class _Sealed(type):
    """Metaclass of the classes a pickle may get hold of: once sealed (:func:`_seal`), their
    attributes cannot be set or deleted, and ``BUILD`` on the class itself is refused (its
    ``__setstate__`` is looked up here first); instances are not affected."""

    def __setattr__(cls, name: str, value: Any) -> None:
        if cls.__dict__.get("_sealed_"):
            raise PickleRefused(f"pickle sets attribute {name!r} on the class {cls.__qualname__}")
        super().__setattr__(name, value)

    def __delattr__(cls, name: str) -> None:
        if cls.__dict__.get("_sealed_"):
            raise PickleRefused(
                f"pickle deletes attribute {name!r} of the class {cls.__qualname__}"
            )
        super().__delattr__(name)

    @property
    def __setstate__(cls) -> Callable[[Any], None]:
        def refuse(state: Any) -> None:
            raise PickleRefused(
                f"pickle sets state on the class {cls.__qualname__} itself; only its instances "
                "take state"
            )

        return refuse


def _seal(cls: type) -> type:
    type.__setattr__(cls, "_sealed_", True)  # past _Sealed.__setattr__, which now refuses
    return cls


@functools.cache
def _sealed_meta(meta: type) -> type:
    """``_Sealed`` combined with a stub's own metaclass."""
    if meta is type or issubclass(meta, _Sealed):
        return _Sealed if meta is type else meta
    return type(f"Sealed{meta.__name__}", (_Sealed, meta), {})


def _sealed_subclass(cls: type) -> type:
    """A fresh subclass of a stub class, with the same instance layout, that refuses state."""
    namespace = {
        "__slots__": (),
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
    }
    return _seal(_sealed_meta(type(cls))(cls.__name__, (cls,), namespace))


class _StandIn:
    """What ``find_class`` hands out for an allowed callable other than an immutable type:
    calls go through (checked where they allocate), ``BUILD`` state is refused, and
    :meth:`RestrictedUnpickler.finish` puts the original back where it ends up as data."""

    __slots__ = ("_call", "_name")

    def __init__(self, call: Callable[..., Any], name: str) -> None:
        self._call = call
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)

    def __setstate__(self, state: Any) -> None:
        raise PickleRefused(
            f"pickle sets state on {self._name} itself; allowed classes and functions take none"
        )

    def __repr__(self) -> str:
        return f"<checked {self._name}>"


# -- dtypes ---------------------------------------------------------------------------------------
def dtype_problem(dtype: Any, objects: bool = True) -> str | None:
    """Why ``dtype`` is not one the loaders accept, or None when it is.

    Decided from the dtype's own fields (kind, fields, subarray), never from its flags, which a
    pickled state can set to anything. Accepted: bool, integers, floats, complex, fixed-width
    bytes and unicode, and (``objects``) plain object dtypes. Structured dtypes are refused as a
    whole (their fields are named), so no field needs a recursive check.
    """
    import numpy as np

    if not isinstance(dtype, np.dtype):
        return f"{_what(dtype)}, not a dtype"
    if dtype.names is not None or dtype.fields is not None:
        fields = ", ".join(f"{n!r}: {dtype.fields[n][0]}" for n in (dtype.names or ())[:4])
        more = ", ..." if len(dtype.names or ()) > 4 else ""
        return f"a structured dtype (fields {fields}{more})"
    if dtype.subdtype is not None:
        return f"a subarray dtype ({dtype.subdtype[0]} of shape {dtype.subdtype[1]})"
    if dtype.kind == "O" and not objects:
        return _KIND_NAMES["O"]
    if dtype.kind not in ARRAY_KINDS:
        return _KIND_NAMES.get(dtype.kind, f"dtype kind {dtype.kind!r}")
    return None


def _refuse_dtype(dtype: Any, problem: str, objects: bool) -> PickleRefused:
    allowed = _ALLOWED_TEXT + (" and object arrays" if objects else "")
    return PickleRefused(f"dtype {dtype}: {problem} is not allowed; allowed are {allowed}")


def _parse_code(code: Any) -> Any:
    """The dtype a type code string names (a string carries no flags)."""
    import numpy as np

    if isinstance(code, (bytes, bytearray)):
        code = bytes(code).decode("latin1")
    if not isinstance(code, str) or len(code) > 64:
        raise PickleRefused(f"a pickled dtype is a short type code string, got {_what(code)}")
    try:
        return np.dtype(code)
    except Exception:  # numpy's parser raises TypeError, ValueError, SyntaxError...
        raise PickleRefused(f"{code!r} is not a numpy type code") from None


def canonical_dtype(value: Any, objects: bool = True) -> Any:
    """A dtype equal to ``value`` (a :class:`DtypeSpec`, a dtype or a type code string), rebuilt
    from its type code after :func:`dtype_problem` accepts it, so no flags carry over.

    Raises:
        PickleRefused: for a dtype the loaders do not accept, or anything else.
    """
    import numpy as np

    if isinstance(value, DtypeSpec):
        dtype = value.resolve()
    elif isinstance(value, (str, bytes, bytearray)):
        dtype = _parse_code(value)
    elif isinstance(value, np.dtype):
        dtype = value
    else:
        raise PickleRefused(f"expected a dtype, got {_what(value)}")
    problem = dtype_problem(dtype, objects)
    if problem is not None:
        raise _refuse_dtype(dtype, problem, objects)
    fresh = np.dtype(dtype.str)
    if fresh.kind != dtype.kind or fresh.itemsize != dtype.itemsize:
        raise PickleRefused(f"dtype {dtype} does not match its type code {dtype.str!r}")
    return fresh


class DtypeSpec(metaclass=_Sealed):
    """What a pickled ``numpy.dtype(code, align, copy)`` call and its ``BUILD`` state say.

    Unpickling makes this instead of a dtype, so the state (numpy's includes flags that say
    whether the bytes are object pointers) is never applied by numpy: it may set the byte order
    and the width of a bytes/unicode dtype and nothing else. :func:`canonical_dtype` turns it
    into a dtype where one is used.
    """

    __slots__ = ("_base", "_order", "_size")

    def __new__(cls, code: Any = None, align: Any = False, copy: Any = True) -> DtypeSpec:
        base = _parse_code(code)
        problem = dtype_problem(base)
        if problem is not None:
            raise _refuse_dtype(base, problem, True)
        self = object.__new__(cls)
        self._base, self._order, self._size = base, None, None
        return self

    def __setstate__(self, state: Any) -> None:
        # numpy's dtype state: (version, byteorder, subarray, names, fields, elsize, alignment,
        # flags[, metadata]); 6-item states of old numpy have no names
        if not isinstance(state, tuple) or not 6 <= len(state) <= 9:
            raise PickleRefused(f"a dtype state is a tuple of 6 to 9 items, got {_what(state)}")
        order = state[1].decode("latin1") if isinstance(state[1], bytes) else state[1]
        if order not in ("<", ">", "|", "="):
            raise PickleRefused(f"a dtype state has byte order {order!r}")
        if len(state) == 6:
            subarray, names, fields, elsize = state[2], None, state[3], state[4]
        else:
            subarray, names, fields, elsize = state[2:6]
        if subarray is not None or names is not None or fields is not None:
            raise PickleRefused(
                f"a dtype state adds fields or a subarray to {self._base} (a structured dtype), "
                "which is not allowed"
            )
        if not isinstance(elsize, int) or isinstance(elsize, bool):
            raise PickleRefused(f"a dtype state has item size {elsize!r}")
        size = None
        if self._base.kind in "SU" and elsize >= 0:  # numpy honours it for strings only
            if self._base.kind == "U" and elsize % 4:
                raise PickleRefused(f"a unicode dtype state has item size {elsize}")
            size = elsize
        self._order, self._size = order, size

    def resolve(self) -> Any:
        """The dtype described (checked again by :func:`canonical_dtype` where it is used)."""
        import numpy as np

        base = self._base
        if self._size is not None:
            width = self._size // 4 if base.kind == "U" else self._size
            base = np.dtype(f"{base.kind}{width}")
        if self._order in ("<", ">") and base.kind in "biufcU":
            base = base.newbyteorder(self._order)
        return base

    def __repr__(self) -> str:
        return f"DtypeSpec({self._base.str!r}, order={self._order!r}, size={self._size!r})"


_seal(DtypeSpec)


# -- arrays ---------------------------------------------------------------------------------------
def _shape(shape: Any) -> tuple[int, ...]:
    many = isinstance(shape, (tuple, list)) and len(shape) > 64  # numpy has 64 dims at most
    if many or not isinstance(shape, (int, tuple, list)):
        raise PickleRefused(f"invalid array shape: {_what(shape)}")
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    if any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in dims):
        raise PickleRefused(f"invalid array shape {shape!r}")
    return dims


def _check_width(dtype: Any, dims: tuple[int, ...]) -> None:
    """Refuse items of a zero-width dtype (``S0``, ``U0``): numpy widens them to one byte each,
    memory that neither the file nor the charged size accounts for."""
    if dtype.itemsize == 0 and math.prod(dims):
        raise PickleRefused(
            f"an array of shape {dims} has the zero-width dtype {dtype}; strings are at least "
            "one character wide"
        )


def unicode_problem(array: Any) -> str | None:
    """Why a unicode (``U``) array does not hold valid characters, or None when it does (or is
    not a unicode array).

    numpy stores a ``U`` array as UCS-4 code points and never checks them: one above U+10FFFF
    crashes Python when the item is read (``SystemError``), a surrogate (U+D800 to U+DFFF)
    cannot be encoded. Checked on the array's ``uint32`` view, without copying it when it is
    contiguous.
    """
    import numpy as np

    if not isinstance(array, np.ndarray) or array.dtype.kind != "U" or array.size == 0:
        return None
    codes = np.ascontiguousarray(array).reshape(-1).view(array.dtype.str[0] + "u4")
    bad = (codes > 0x10FFFF) | ((codes >= 0xD800) & (codes <= 0xDFFF))
    if not bad.any():
        return None
    code = int(codes[int(np.flatnonzero(bad)[0])])
    why = "a surrogate" if 0xD800 <= code <= 0xDFFF else "above U+10FFFF"
    return (
        f"a unicode array (dtype {array.dtype}) holds code point 0x{code:X}, which is not a "
        f"character ({why})"
    )


def stride_problem(array: Any) -> str | None:
    """Why an array's layout is refused (a zero or negative stride: items that share memory, so
    a copy can be far larger than the data), or None."""
    if any(st <= 0 and n > 1 for st, n in zip(array.strides, array.shape)):
        return (
            f"an array of shape {array.shape} has strides {array.strides}; a zero or negative "
            "stride repeats or reverses its data"
        )
    return None


@functools.cache
def _array_classes() -> tuple[type, type]:
    """The ``ndarray`` subclasses arrays are unpickled as: one that allows object arrays (pickle
    files) and one that does not (``.pt`` files). Made on first use: no numpy import when this
    module is imported."""
    import numpy as np

    class CheckedArray(np.ndarray, metaclass=_Sealed):
        """Checks its pickled state against its shape and dtype before numpy reads it.

        Made only by the checked numpy calls of the loaders; calling the class is refused.
        """

        objects = True

        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            raise PickleRefused("a pickle calls numpy.ndarray's constructor directly")

        def __setstate__(self, state: Any) -> None:
            if not isinstance(state, tuple) or len(state) not in (4, 5):
                raise PickleRefused(f"array state must be a 4- or 5-tuple, got {_what(state)}")
            dims, data = _shape(state[-4]), state[-1]
            dtype = canonical_dtype(state[-3], type(self).objects)
            _check_width(dtype, dims)
            count = math.prod(dims)
            if dtype.kind == "O":
                if not isinstance(data, list) or len(data) != count:
                    got = f"{len(data)} items" if isinstance(data, list) else _what(data)
                    raise PickleRefused(
                        f"an object array of shape {dims} needs a list of {count} items, got {got}"
                    )
            elif not isinstance(data, (bytes, bytearray)) or len(data) != count * dtype.itemsize:
                got = len(data) if isinstance(data, (bytes, bytearray)) else _what(data)
                raise PickleRefused(
                    f"an array of shape {dims} and dtype {dtype} needs "
                    f"{count * dtype.itemsize} bytes of data, got {got}"
                )
            super().__setstate__((*state[:-3], dtype, *state[-2:]))

    class CheckedDataArray(CheckedArray):
        """A :class:`CheckedArray` that refuses object dtypes (``.pt`` files)."""

        objects = False

    return _seal(CheckedArray), _seal(CheckedDataArray)


def _np_reconstruct() -> Any:
    import numpy as np

    return np.ndarray.__reduce__(np.empty(0))[0]  # numpy's array unpickler, whatever its module


def _reconstruct_for_torch(subtype: Any, shape: Any, dtype: Any) -> Any:
    """numpy's ``_reconstruct`` for ``torch.load``: numbers and strings only, checked state."""
    data_array = _array_classes()[1]
    if subtype is not data_array:  # the only class "numpy.ndarray" resolves to there
        raise PickleRefused(f"cannot rebuild an array of type {subtype!r}")
    dtype = canonical_dtype(dtype, objects=False)
    _check_width(dtype, _shape(shape))
    nbytes = math.prod(_shape(shape)) * dtype.itemsize
    if nbytes > MAX_BYTES:
        raise PickleRefused(f"an empty array of shape {shape} needs {nbytes:,} bytes")
    return _np_reconstruct()(data_array, shape, dtype)


def torch_numpy_globals() -> list[tuple[Any, str]]:
    """Entries for ``torch.serialization.safe_globals`` that let ``torch.load(weights_only=True)``
    read numpy arrays of numbers and strings through this module's checks.

    ``numpy.dtype`` resolves to :class:`DtypeSpec`, ``numpy.ndarray`` to a checking subclass that
    refuses object dtypes and cannot be called, and ``_reconstruct`` (numpy 1 and 2 names) to a
    checked version; pass the loaded object through :func:`plain_arrays` afterwards.
    """
    data_array = _array_classes()[1]
    allowed: list[tuple[Any, str]] = [(DtypeSpec, "numpy.dtype"), (data_array, "numpy.ndarray")]
    for core in ("numpy.core", "numpy._core"):
        allowed.append((_reconstruct_for_torch, f"{core}.multiarray._reconstruct"))
    return allowed


def plain_arrays(obj: Any) -> Any:
    """``obj`` with checked arrays turned into plain ``ndarray`` views and :class:`DtypeSpec`
    values into dtypes (after ``torch.load`` with :func:`torch_numpy_globals`)."""
    return _restore(obj, {}, {})


# -- the unpickler --------------------------------------------------------------------------------
def _resolve_numpy(module: str, name: str) -> Any:
    if module == "numpy" and name in _NUMPY_TOP:
        return getattr(importlib.import_module("numpy"), name)
    for prefix in ("numpy._core.", "numpy.core."):
        if module.startswith(prefix):
            sub = module[len(prefix) :]
            if name not in _NUMPY_CORE.get(sub, ()):
                return None
            for base in ("numpy._core.", "numpy.core."):
                try:
                    return getattr(importlib.import_module(base + sub), name)
                except (ImportError, AttributeError):
                    continue
    return None


def resolve_allowed(module: str, name: str) -> Any | None:
    """The object an allowed ``module.name`` stands for, or None when it is not allowed."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    if module == "builtins":
        return getattr(builtins, name) if name in SAFE_BUILTINS else None
    if module == "collections":
        return getattr(collections, name) if name in SAFE_COLLECTIONS else None
    if module == "_codecs" and name == "encode":
        import _codecs

        return _codecs.encode
    if module == "numpy" or module.startswith("numpy."):
        return _resolve_numpy(module, name)
    return None


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only allowlisted globals (see the module docstring).

    Args:
        file: A binary file object.
        source: Name used in error messages (the file path).
        extra: ``{(module, name): object}`` resolutions allowed on top of the allowlist.
        encoding: Decoding of Python-2 ``str`` objects (``latin1`` for numpy arrays of the era).
        max_bytes: Most bytes the sized calls of this load may allocate (see the module
            docstring).

    After :meth:`load`, pass the result through :meth:`finish`: arrays are built as a checking
    subclass of ``ndarray``, dtypes as :class:`DtypeSpec`, stub instances as a sealed subclass,
    and allowed callables are stand-ins; ``finish`` turns them all back into what they stand for.
    """

    def __init__(
        self,
        file: IO[bytes],
        source: str,
        extra: Mapping[tuple[str, str], Any] | None = None,
        encoding: str = "ASCII",
        max_bytes: int = MAX_BYTES,
    ) -> None:
        super().__init__(file, encoding=encoding)
        self.source = source
        self.extra = dict(extra or {})
        self.max_bytes = int(max_bytes)
        self.allocated = 0
        # id(allowed object) -> what find_class hands out; id(stand-in) -> the allowed object
        self._guards: dict[int, Any] = {}
        self._originals: dict[int, Any] = {}
        # id -> object of the arguments copied or expanded once (see _expand)
        self._expanded: dict[int, Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        stub = (module, name) in self.extra
        obj = self.extra[(module, name)] if stub else resolve_allowed(module, name)
        if obj is None:
            raise ErcgraphError(
                f"{self.source}: pickle tries to import {module}.{name}; only builtins and numpy "
                f"are allowed"
            )
        if id(obj) not in self._guards:
            guard = self._hand_out(obj, f"{module}.{name}", stub)
            self._guards[id(obj)] = guard
            if guard is not obj:
                self._originals[id(guard)] = obj
        return self._guards[id(obj)]

    def _hand_out(self, obj: Any, where: str, stub: bool) -> Any:
        """What the pickle gets for ``obj``: an immutable type itself, a sealed subclass of a
        stub class, or a stand-in (checked where the call allocates)."""
        checked = None if stub else self._checked_call(obj, where)
        if checked is not None:
            return _StandIn(checked, where)
        if isinstance(obj, type):
            if obj.__flags__ & _IMMUTABLE_TYPE or obj.__dict__.get("_sealed_"):
                return obj
            if stub:  # NEWOBJ needs a class
                return _sealed_subclass(obj)
        return _StandIn(obj, where)  # Counter, functions: a callable that takes no state

    def _checked_call(self, obj: Any, where: str) -> Callable[..., Any] | None:
        if obj is str:
            return self._str
        if obj is range:
            return self._range
        if obj is bytes or obj is bytearray:
            return lambda *args, **kwargs: self._sized(obj, *args, **kwargs)
        if obj in _CONTAINERS:
            return lambda *args, **kwargs: self._container(obj, *args, **kwargs)
        if where == "_codecs.encode":
            return self._encode
        if where.startswith("numpy"):
            return self._numpy_call(obj, where.rsplit(".", 1)[1])
        return None

    # -- allocation checks ---------------------------------------------------------------------
    def charge(self, nbytes: int, what: str) -> None:
        """Count ``nbytes`` against ``max_bytes``; refuse the call that would exceed it."""
        self.allocated += max(0, int(nbytes))
        if self.allocated > self.max_bytes:
            raise ErcgraphError(
                f"{self.source}: pickle asks for {what} of about {int(nbytes):,} bytes, over the "
                f"{self.max_bytes:,} bytes one load may allocate (max_bytes); a feature pickle "
                f"holds its data in the file (crafted or corrupt?)"
            )

    def _range(self, *args: Any) -> range:
        out = range(*args)
        # lazy, but charged as if expanded: a range reaching an unforeseen consumer stays bounded
        self.charge(len(out) * _ITEM_BYTES, f"a range of {len(out):,} items")
        return out

    def _expand(self, fn: str, arg: Any, per_item: int) -> None:
        """Charge a call that copies or expands ``arg``. The first expansion of an object is
        free (its data is in the file, or was charged when a call made it); every further one is
        charged, so a range or buffer kept in the memo and expanded many times is charged each
        time."""
        if isinstance(arg, (str, bytes, bytearray, list, tuple, range, set, frozenset, dict)):
            if id(arg) not in self._expanded:
                self._expanded[id(arg)] = arg  # held, so that no other object takes its id
                return
            what = f"{fn}() of a {type(arg).__name__} of {len(arg):,} items"
            self.charge(len(arg) * per_item, what)

    def _container(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        name = getattr(fn, "__name__", str(fn))
        for arg in args[1:] if fn is collections.defaultdict else args:
            self._expand(name, arg, _ITEM_BYTES)
        self.charge(len(kwargs) * _ITEM_BYTES, f"{name}() of keyword arguments")
        return fn(*args, **kwargs)

    def _sized(self, fn: type, *args: Any, **kwargs: Any) -> Any:
        size = args[0] if args else kwargs.get("source")
        _check_codec(fn.__name__, (*args[1:], *kwargs.values()))
        if isinstance(size, str):
            self._expand(fn.__name__, size, _CHAR_BYTES)  # encoded: at most 4 bytes a character
        elif isinstance(size, (bytes, bytearray, list, tuple, range)):
            self._expand(fn.__name__, size, 1)
        elif hasattr(type(size), "__index__"):
            n = operator.index(size)
            self.charge(n, f"{fn.__name__}({n:,})")
        return fn(*args, **kwargs)

    def _encode(self, obj: Any, *args: Any, **kwargs: Any) -> Any:
        import _codecs

        _check_codec("_codecs.encode", (*args, *kwargs.values()))
        self._expand("_codecs.encode", obj, _CHAR_BYTES)
        return _codecs.encode(obj, *args, **kwargs)

    def _str(self, *args: Any, **kwargs: Any) -> str:
        for arg in (*args, *kwargs.values()):
            numpy_scalar = type(arg).__module__ == "numpy" and not hasattr(arg, "__len__")
            if not (isinstance(arg, _STR_ARGS) or numpy_scalar):
                raise ErcgraphError(
                    f"{self.source}: pickle calls str() of a {type(arg).__name__}; only "
                    f"scalars and bytes are converted (the text of nested shared references "
                    f"grows exponentially)"
                )
        _check_codec("str", args[1:] if args else ())
        if args:  # decoded or repr'd: at most 4 bytes a byte
            self._expand("str", args[0], _CHAR_BYTES)
        return str(*args, **kwargs)

    # -- numpy ---------------------------------------------------------------------------------
    def _numpy_call(self, obj: Any, name: str) -> Callable[..., Any]:
        """The checked version of an allowed numpy callable: every dtype is made canonical
        (:func:`canonical_dtype`), sizes are charged, and arrays come out as ``CheckedArray``
        (their state is checked again on ``BUILD``)."""
        import numpy as np

        checked_array = _array_classes()[0]

        def array_bytes(shape: Any, dtype: Any) -> int:
            dims = _shape(shape)
            _check_width(dtype, dims)
            return math.prod(dims) * dtype.itemsize

        if obj is np.dtype:
            return DtypeSpec
        if obj is np.ndarray:

            def ndarray(
                shape: Any,
                dtype: Any = "f8",
                buffer: Any = None,
                offset: Any = 0,
                strides: Any = None,
                order: Any = None,
            ) -> Any:
                dtype = canonical_dtype(dtype)
                need = array_bytes(shape, dtype)
                if strides is not None:  # a zero stride makes terabytes of a few bytes
                    raise PickleRefused(f"an array with explicit strides {strides!r}")
                if order not in (None, "C", "F"):
                    raise PickleRefused(f"array order {order!r} is not 'C' or 'F'")
                if buffer is None:
                    self.charge(need, f"an empty array of shape {shape}")
                    return np.ndarray.__new__(checked_array, _shape(shape), dtype, order=order)
                if dtype.kind == "O" or not isinstance(buffer, (bytes, bytearray)):
                    raise PickleRefused("an array over a buffer holds numbers or strings in bytes")
                if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
                    raise PickleRefused(f"an array's buffer offset is {offset!r}")
                if len(buffer) < offset + need:
                    raise PickleRefused(
                        f"an array of shape {shape} and dtype {dtype} at offset {offset} needs "
                        f"{offset + need} bytes of buffer, got {len(buffer)}"
                    )
                return np.ndarray.__new__(
                    checked_array, _shape(shape), dtype, buffer, offset, order=order
                )

            return ndarray
        if name == "_reconstruct":

            def reconstruct(subtype: Any, shape: Any, dtype: Any) -> Any:
                if self._originals.get(id(subtype), subtype) is not np.ndarray:
                    raise PickleRefused(f"cannot rebuild an array of type {subtype!r}")
                dtype = canonical_dtype(dtype)
                self.charge(array_bytes(shape, dtype), f"an empty array of shape {shape}")
                return obj(checked_array, shape, dtype)

            return reconstruct
        if name == "scalar":

            def scalar(dtype: Any, data: Any) -> Any:
                dtype = canonical_dtype(dtype, objects=False)
                if isinstance(data, str):  # a Python-2 str decoded with latin1
                    data = data.encode("latin1")
                if not isinstance(data, bytes) or len(data) != dtype.itemsize:
                    got = len(data) if isinstance(data, bytes) else _what(data)
                    raise PickleRefused(
                        f"a scalar of dtype {dtype} needs {dtype.itemsize} bytes, got {got}"
                    )
                problem = unicode_problem(np.frombuffer(data, dtype) if data else None)
                if problem is not None:
                    raise PickleRefused(problem.replace("a unicode array", "a unicode scalar"))
                return obj(dtype, data)

            return scalar
        if name == "_frombuffer":

            def frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> Any:
                dtype = canonical_dtype(dtype, objects=False)
                need = array_bytes(shape, dtype)
                if not isinstance(buf, (bytes, bytearray)) or len(buf) != need:
                    got = len(buf) if isinstance(buf, (bytes, bytearray)) else _what(buf)
                    raise PickleRefused(
                        f"an array of shape {shape} and dtype {dtype} needs {need} bytes, got {got}"
                    )
                if order not in ("C", "F"):
                    raise PickleRefused(f"array order {order!r} is not 'C' or 'F'")
                flat = np.frombuffer(buf, dtype=dtype) if need else np.empty(0, dtype)
                return flat.reshape(_shape(shape), order=order).view(checked_array)

            return frombuffer
        raise PickleRefused(f"numpy.{name} has no checked version")  # not on the allowlist

    def finish(self, obj: Any) -> Any:
        """``obj`` with the arrays of this load turned into plain ``numpy.ndarray`` objects,
        dtypes into canonical dtypes, stub instances into instances of the stub, and each
        stand-in kept as data (``defaultdict(str)``'s factory...) put back to the object it
        stands for."""
        if not self._guards:
            return obj
        return _restore(obj, {}, self._originals)


def safe_load(
    path_or_file: str | Path | IO[bytes],
    encoding: str = "ASCII",
    extra: Mapping[tuple[str, str], Any] | None = None,
    max_bytes: int = MAX_BYTES,
) -> Any:
    """Unpickle a file through :class:`RestrictedUnpickler`.

    Args:
        path_or_file: A path, or an open binary file.
        encoding: Decoding of Python-2 ``str`` objects; ``latin1`` for Python-2 era pickles.
        extra: Additional ``{(module, name): object}`` resolutions (stubs for custom classes).
        max_bytes: Most bytes that calls with a size (``bytes(n)``, ``list(range(n))``, empty
            numpy arrays of a shape...) may allocate in this load; default :data:`MAX_BYTES`.

    Returns:
        The unpickled object.

    Raises:
        ErcgraphError: when the pickle references a disallowed global, sets state on an allowed
            class or function, holds a dtype outside the allowed ones, asks for more memory than
            ``max_bytes``, or is truncated or corrupt, naming the file.
    """
    if isinstance(path_or_file, (str, Path)):
        path = Path(path_or_file)
        if not path.is_file():
            raise ErcgraphError(f"{path}: no such pickle file")
        with path.open("rb") as fh:
            return _load(fh, str(path), encoding, extra, max_bytes)
    source = str(getattr(path_or_file, "name", "<pickle stream>"))
    return _load(path_or_file, source, encoding, extra, max_bytes)


def _load(
    fh: IO[bytes],
    source: str,
    encoding: str,
    extra: Mapping[tuple[str, str], Any] | None,
    max_bytes: int,
) -> Any:
    try:
        unpickler = RestrictedUnpickler(fh, source, extra, encoding, max_bytes)
        return unpickler.finish(unpickler.load())
    except ErcgraphError:
        raise
    except PickleRefused as exc:
        raise ErcgraphError(f"{source}: pickle refused: {exc}") from None
    except (AttributeError, ImportError) as exc:
        # an unknown class in an allowed module ends up here
        raise ErcgraphError(
            f"{source}: pickle tries to import a name that cannot be resolved ({exc}); only "
            f"builtins and numpy are allowed"
        ) from None
    except RecursionError:
        raise ErcgraphError(
            f"{source}: the pickle's structure nests too deeply to read (lists or dicts nested "
            f"about {sys.getrecursionlimit()} levels or more)"
        ) from None
    except (EOFError, pickle.UnpicklingError) as exc:
        raise ErcgraphError(
            f"{source}: truncated or corrupt pickle ({type(exc).__name__}: {exc})"
        ) from None
    except UnicodeDecodeError as exc:
        raise ErcgraphError(
            f"{source}: a Python-2 string in the pickle is not {encoding} ({exc.reason}); try "
            f"encoding='latin1'"
        ) from None
    except Exception as exc:  # malformed opcode arguments raise ValueError/TypeError/...
        raise ErcgraphError(
            f"{source}: truncated or corrupt pickle ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())})"
        ) from None


# where an object sits in the loaded structure: (parent, step) links, formatted only for a message
_Where = tuple[Any, str] | None


def _at(where: _Where) -> str:
    steps: list[str] = []
    while where is not None:
        where, step = where
        steps.append(step)
    return "at " + "".join(reversed(steps)) if steps else "at the top level"


def _step(key: Any) -> str:
    return f"[{reprlib.repr(key)}]"


def _restore(
    obj: Any, seen: dict[int, Any], originals: dict[int, Any], where: _Where = None
) -> Any:
    """``obj`` with checked arrays replaced by plain ``ndarray`` views of them, dtype specs by
    dtypes, stub instances by instances of the stub and stand-ins by their originals, inside
    lists, dicts, tuples, object arrays and instances (stubs); shared objects stay shared.

    Every array is checked on the way (:func:`stride_problem`, :func:`unicode_problem`), so no
    array that repeats its data or holds invalid characters reaches a reader.
    """
    import numpy as np

    key = id(obj)
    if key in originals:
        return originals[key]
    if key in seen:
        return seen[key]
    if isinstance(obj, DtypeSpec):
        seen[key] = out = canonical_dtype(obj)
        return out
    if isinstance(obj, np.ndarray):
        out = obj.view(np.ndarray) if isinstance(obj, _array_classes()[0]) else obj
        problem = stride_problem(out) or unicode_problem(out)
        if problem is not None:
            raise PickleRefused(f"{_at(where)}: {problem}")
        seen[key] = out
        if out.dtype.hasobject:
            # a view of every item: a Fortran-ordered array is C-ordered once transposed
            flat = out.reshape(-1) if out.flags.c_contiguous else out.T.reshape(-1)
            if not np.shares_memory(flat, out):
                raise PickleRefused(f"{_at(where)}: an object array that is not contiguous")
            for i, item in enumerate(flat):
                flat[i] = _restore(item, seen, originals, (where, f".flat[{i}]"))
        return out
    seen[key] = obj
    if isinstance(type(obj), _Sealed) and id(type(obj)) in originals:
        obj.__class__ = originals[id(type(obj))]  # an instance of a stub's sealed subclass
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            obj[i] = _restore(item, seen, originals, (where, f"[{i}]"))
    elif isinstance(obj, dict):
        if isinstance(obj, collections.defaultdict):
            obj.default_factory = _restore(obj.default_factory, seen, originals, where)
        for k, item in obj.items():
            obj[k] = _restore(item, seen, originals, (where, _step(k)))
    elif isinstance(obj, tuple):
        items = [_restore(item, seen, originals, (where, f"[{i}]")) for i, item in enumerate(obj)]
        if any(a is not b for a, b in zip(items, obj)):
            seen[key] = obj = type(obj)(items)
    elif isinstance(getattr(obj, "__dict__", None), dict) and not isinstance(obj, type):
        for k, item in vars(obj).items():
            vars(obj)[k] = _restore(item, seen, originals, (where, f".{k}"))
    return obj


# -- torch's weights_only refusals ----------------------------------------------------------------
# What was refused, from the message of torch's restricted unpickler, which has kept its wording
# (torch 2.4 to 2.14) while the sentences torch wraps around it changed; True marks a refusal,
# False a file that is no pickle torch can read at all.
_CAUSES = (
    (r"unsupported GLOBAL (\S+) whose module (\S+) is blocked", "unsupported GLOBAL {0}", True),
    (r"GLOBAL (\S+) was not an allowed global", "unsupported GLOBAL {0}", True),
    (r"Can only build .*? but got (<class '[^']+'>|\S+)", "BUILD of {0}", True),
    (r"Can only create new object .*? but got (<class '[^']+'>|\S+)", "NEWOBJ of {0}", True),
    (r"reduce for unrecognized function (<[^>]+>|\S+)", "call of {0}", True),
    (r"(\S+) must be imported to load", "{0} not imported", True),
    (r"Unsupported operand (\S+)", "unsupported pickle opcode {0}", False),
)
# sentences of torch's boilerplate: advice to turn the check off or to allowlist, and links
_BOILERPLATE = re.compile(
    r"weights.only|arbitrary code|trusted source|trust the source|documentation|file an issue|"
    r"safe_globals|two options|https?://",
    re.IGNORECASE,
)


def weights_only_cause(exc: BaseException) -> tuple[bool, str] | None:
    """What ``torch.load(weights_only=True)`` refused, in one line, or None when ``exc`` comes
    neither from torch's restricted unpickler nor from this module's checks.

    Returns:
        ``(refused, cause)``: ``refused`` is False for a file that is no pickle at all (an
        unknown opcode). The cause (``"unsupported GLOBAL posix.system"``) is taken from the
        restricted unpickler's message, whatever sentences torch wraps around it; torch's advice
        to load with ``weights_only=False`` (or to allowlist the global) is dropped.
    """
    if isinstance(exc, PickleRefused):
        return True, " ".join(str(exc).split())
    if not isinstance(exc, pickle.UnpicklingError):
        return None
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    for pattern, template, refused in _CAUSES:
        found = re.search(pattern, text, re.DOTALL)
        if found:
            return refused, template.format(*(g.strip(".,;:`") for g in found.groups()))
    text = text.split("WeightsUnpickler error:")[-1]
    sentences = re.split(r"(?<=[.!?])\s+|\n+", text)
    kept = [s.strip() for s in sentences if s.strip() and not _BOILERPLATE.search(s)]
    cause = " ".join(" ".join(kept).split()) or "an object outside torch's allowlist"
    return True, cause if len(cause) <= 200 else cause[:197] + "..."


def weights_only_error(
    where: str, exc: BaseException, what: str, advice: str
) -> ErcgraphError | None:
    """The one-line error for a file that ``torch.load(weights_only=True)`` could not load, or
    None when ``exc`` is not from its unpickler (see :func:`weights_only_cause`).

    ``"<where>: refused by safe loading (weights_only=True): <cause>; <advice>"``, or for a file
    that is no pickle ``"<where>: not a readable <what> (<cause>); <advice>"``.
    """
    found = weights_only_cause(exc)
    if found is None:
        return None
    refused, cause = found
    if refused:
        return ErcgraphError(
            f"{where}: refused by safe loading (weights_only=True): {cause}; {advice}"
        )
    return ErcgraphError(f"{where}: not a readable {what} ({cause}); {advice}")
