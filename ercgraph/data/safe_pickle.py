"""Load user-supplied pickles without letting them run code.

``pickle.load`` calls whatever function a pickle names, so a feature file from the internet could
run ``os.system``. :func:`safe_load` uses an :class:`pickle.Unpickler` whose ``find_class``
resolves only an allowlist: plain builtin containers and scalars (``list``, ``dict``, ``set``,
``frozenset``, ``tuple``, ``str``, ``bytes``, ``bytearray``, ``int``, ``float``, ``complex``,
``bool``, ``slice``, ``range``; never ``eval``/``exec``/``getattr``/``__import__``/``open`` or
``object``), the dict subclasses ``collections.OrderedDict``/``defaultdict``/``Counter`` (data
only; ``namedtuple`` builds classes and is refused), ``_codecs.encode`` (how protocol-2 pickles
store bytes), and numpy array/scalar/dtype reconstruction under both the ``numpy.core`` (numpy 1)
and ``numpy._core`` (numpy 2) module names. Anything else is refused with an
:class:`~ercgraph.errors.ErcgraphError` before it is imported. Python-2 names (``__builtin__``,
``xrange``) are mapped to their Python-3 equivalents first.

Callers that must read pickles of custom classes (e.g. COGMEN's ``Sample``) pass ``extra``, a
``{(module, name): replacement}`` map, typically to a stub class.

Allowed callables can still be asked for memory that the file does not hold: ``bytes(10**12)``,
``list(range(10**12))``, ``numpy.ndarray((10**6, 10**6))``, ``str()`` of a list whose shared
references expand exponentially. The calls that take a size are checked before they run: what
they would allocate counts against ``max_bytes`` (:data:`MAX_BYTES`, 4 GiB, per load; data held
in the file itself, such as an array's bytes, is not counted), and ``str()`` takes scalars and
bytes only. An array's pickled state is checked against its shape before numpy reads it (numpy
crashes the process on an object array whose item list is too short). Every refusal is an
:class:`~ercgraph.errors.ErcgraphError` naming the file.
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
from collections.abc import Mapping
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
# memory charged per element when a container is filled from a range (pointer plus int object)
_ITEM_BYTES = 64
_STR_ARGS = (str, bytes, bytearray, int, float, complex, bool, type(None))


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
    subclass of ``ndarray`` and become plain arrays there.
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
        self._arrays_made = False

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.extra:
            return self.extra[(module, name)]
        obj = resolve_allowed(module, name)
        if obj is None:
            raise ErcgraphError(
                f"{self.source}: pickle tries to import {module}.{name}; only builtins and numpy "
                f"are allowed"
            )
        if id(obj) not in self._guards:
            guard = self._guard(obj, module, name)
            self._guards[id(obj)] = guard
            if guard is not obj:
                self._originals[id(guard)] = obj
        return self._guards[id(obj)]

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

    def _guard(self, obj: Any, module: str, name: str) -> Any:
        """``obj`` itself, or a stand-in that checks what a call would allocate."""
        if obj is str:
            return self._str
        if obj is range:
            return self._range
        if obj in (bytes, bytearray):
            return functools.partial(self._sized, obj)
        if module.startswith("numpy"):
            return self._numpy_guard(obj, name)
        return obj

    def _range(self, *args: Any) -> range:
        out = range(*args)
        # a range is lazy, but list(), set(), bytes(), Counter()... expand it
        self.charge(len(out) * _ITEM_BYTES, f"a range of {len(out):,} items")
        return out

    def _sized(self, fn: type, *args: Any, **kwargs: Any) -> Any:
        size = args[0] if args else kwargs.get("source")
        if not isinstance(size, (str, bytes, bytearray, list, tuple, range)) and hasattr(
            type(size), "__index__"
        ):
            n = operator.index(size)
            self.charge(n, f"{fn.__name__}({n:,})")
        return fn(*args, **kwargs)

    def _str(self, *args: Any, **kwargs: Any) -> str:
        for arg in (*args, *kwargs.values()):
            numpy_scalar = type(arg).__module__ == "numpy" and not hasattr(arg, "__len__")
            if not (isinstance(arg, _STR_ARGS) or numpy_scalar):
                raise ErcgraphError(
                    f"{self.source}: pickle calls str() of a {type(arg).__name__}; only "
                    f"scalars and bytes are converted (the text of nested shared references "
                    f"grows exponentially)"
                )
        return str(*args, **kwargs)

    def _numpy_guard(self, obj: Any, name: str) -> Any:
        """Checked stand-ins for the numpy callables that allocate by shape or dtype.

        ``numpy.ndarray`` resolves to a checked function; ``_reconstruct`` (how every array
        pickles) accepts it as the array type and builds the array as a checking subclass,
        turned back into plain arrays by :meth:`finish`.
        """
        import numpy as np

        def nbytes(shape: Any, dtype: Any) -> int:
            return math.prod(_shape(shape)) * np.dtype(dtype).itemsize

        if obj is np.ndarray:

            def ndarray(shape: Any, dtype: Any = float, buffer: Any = None, *args: Any) -> Any:
                if buffer is None:
                    self.charge(nbytes(shape, dtype), f"an empty array of shape {shape}")
                return np.ndarray(shape, dtype, buffer, *args)

            return ndarray
        if name == "_reconstruct":

            def reconstruct(subtype: Any, shape: Any, dtype: Any) -> Any:
                if self._originals.get(id(subtype), subtype) is not np.ndarray:
                    raise _StateError(f"cannot rebuild an array of type {subtype!r}")
                self.charge(nbytes(shape, dtype), f"an empty array of shape {shape}")
                self._arrays_made = True
                return obj(_checked_array(), shape, dtype)

            return reconstruct
        if name == "scalar":

            def scalar(dtype: Any, *args: Any) -> Any:
                self.charge(np.dtype(dtype).itemsize, f"a scalar of dtype {dtype}")
                return obj(dtype, *args)

            return scalar
        return obj

    def finish(self, obj: Any) -> Any:
        """``obj`` with the arrays of this load turned into plain ``numpy.ndarray`` objects and
        each checking stand-in kept as data (``defaultdict(str)``'s factory...) put back to the
        object it stands for."""
        if not (self._arrays_made or self._originals):
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
        ErcgraphError: when the pickle references a disallowed global, asks for more memory
            than ``max_bytes``, or is truncated or corrupt, naming the file.
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
    except _StateError as exc:
        raise ErcgraphError(f"{source}: corrupt pickle: {exc}") from None
    except (AttributeError, ImportError) as exc:
        # an unknown class in an allowed module ends up here
        raise ErcgraphError(
            f"{source}: pickle tries to import a name that cannot be resolved ({exc}); only "
            f"builtins and numpy are allowed"
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


# -- numpy arrays -------------------------------------------------------------------------------
class _StateError(ValueError):
    """An array call or state that does not fit its shape (raised before numpy reads it)."""


def _shape(shape: Any) -> tuple[int, ...]:
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    if any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in dims):
        raise _StateError(f"invalid array shape {shape!r}")
    return dims


@functools.cache
def _checked_array() -> type:
    """The ``ndarray`` subclass arrays are unpickled as (made on first use: no numpy import
    when this module is imported)."""
    import numpy as np

    class CheckedArray(np.ndarray):
        """Checks its pickled state against its shape before numpy reads it."""

        def __setstate__(self, state: Any) -> None:
            if not isinstance(state, tuple) or len(state) not in (4, 5):
                raise _StateError(f"array state must be a 4- or 5-tuple, got {type(state)}")
            dims, dtype, data = _shape(state[-4]), np.dtype(state[-3]), state[-1]
            count = math.prod(dims)
            if dtype.hasobject:
                if not isinstance(data, list) or len(data) != count:
                    got = f"{len(data)} items" if isinstance(data, list) else type(data).__name__
                    raise _StateError(
                        f"an object array of shape {dims} needs {count} items, got {got}"
                    )
            elif not isinstance(data, (bytes, bytearray)) or len(data) != count * dtype.itemsize:
                got = len(data) if isinstance(data, (bytes, bytearray)) else type(data).__name__
                raise _StateError(
                    f"an array of shape {dims} and dtype {dtype} needs "
                    f"{count * dtype.itemsize} bytes of data, got {got}"
                )
            super().__setstate__(state)

    return CheckedArray


def _restore(obj: Any, seen: dict[int, Any], originals: dict[int, Any]) -> Any:
    """``obj`` with checked arrays replaced by plain ``ndarray`` views of them and stand-ins by
    their originals, inside lists, dicts, tuples, object arrays and instances (stubs); shared
    objects stay shared."""
    import numpy as np

    key = id(obj)
    if key in originals:
        return originals[key]
    if key in seen:
        return seen[key]
    if isinstance(obj, np.ndarray):
        out = obj.view(np.ndarray) if type(obj) is _checked_array() else obj
        seen[key] = out
        if out.dtype.hasobject:
            flat = out.reshape(-1)
            for i, item in enumerate(flat):
                flat[i] = _restore(item, seen, originals)
        return out
    seen[key] = obj
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            obj[i] = _restore(item, seen, originals)
    elif isinstance(obj, dict):
        if isinstance(obj, collections.defaultdict):
            obj.default_factory = _restore(obj.default_factory, seen, originals)
        for k, item in obj.items():
            obj[k] = _restore(item, seen, originals)
    elif isinstance(obj, tuple):
        items = [_restore(item, seen, originals) for item in obj]
        if any(a is not b for a, b in zip(items, obj)):
            seen[key] = obj = type(obj)(items)
    elif isinstance(getattr(obj, "__dict__", None), dict) and not isinstance(obj, type):
        for k, item in vars(obj).items():
            vars(obj)[k] = _restore(item, seen, originals)
    return obj
