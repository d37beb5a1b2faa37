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
"""

from __future__ import annotations

import _compat_pickle
import builtins
import collections
import importlib
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
    """

    def __init__(
        self,
        file: IO[bytes],
        source: str,
        extra: Mapping[tuple[str, str], Any] | None = None,
        encoding: str = "ASCII",
    ) -> None:
        super().__init__(file, encoding=encoding)
        self.source = source
        self.extra = dict(extra or {})

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.extra:
            return self.extra[(module, name)]
        obj = resolve_allowed(module, name)
        if obj is None:
            raise ErcgraphError(
                f"{self.source}: pickle tries to import {module}.{name}; only builtins and numpy "
                f"are allowed"
            )
        return obj


def safe_load(
    path_or_file: str | Path | IO[bytes],
    encoding: str = "ASCII",
    extra: Mapping[tuple[str, str], Any] | None = None,
) -> Any:
    """Unpickle a file through :class:`RestrictedUnpickler`.

    Args:
        path_or_file: A path, or an open binary file.
        encoding: Decoding of Python-2 ``str`` objects; ``latin1`` for Python-2 era pickles.
        extra: Additional ``{(module, name): object}`` resolutions (stubs for custom classes).

    Returns:
        The unpickled object.

    Raises:
        ErcgraphError: when the pickle references a disallowed global, or is truncated or
            corrupt, naming the file.
    """
    if isinstance(path_or_file, (str, Path)):
        path = Path(path_or_file)
        if not path.is_file():
            raise ErcgraphError(f"{path}: no such pickle file")
        with path.open("rb") as fh:
            return _load(fh, str(path), encoding, extra)
    source = str(getattr(path_or_file, "name", "<pickle stream>"))
    return _load(path_or_file, source, encoding, extra)


def _load(
    fh: IO[bytes], source: str, encoding: str, extra: Mapping[tuple[str, str], Any] | None
) -> Any:
    try:
        return RestrictedUnpickler(fh, source, extra, encoding).load()
    except ErcgraphError:
        raise
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
