"""Open registries for the pluggable components (readers, graph builders, models, fusions,
heads, losses, samplers).

A registry maps a name to a class. Components register with a decorator; duplicate names raise.
A name can also be a dotted path ``pkg.module:Class`` (or ``pkg.module.Class``), and plug-ins
installed by other packages are discovered through entry-point groups such as
``ercgraph.graph_builders``. A broken plug-in warns instead of crashing the CLI.

Built-ins register themselves when their module is imported; a registry imports its built-in
modules, and every module of its built-in packages, on first lookup, so a new component is one
new file in such a package.

Dotted paths are code execution, so they are resolved only while :func:`dotted_paths_allowed`
is on (``train`` from the user's own config), and what they name must be a class of the
registry's kind before anything calls it. Re-reading a run directory (``evaluate``, ``predict``,
``train --resume`` with the run's own ``config.yaml``) switches them off unless the user passes
``--trust``; ``--import FILE`` registers plain names and unlocks no dotted path.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.util
import inspect
import pkgutil
import sys
import warnings
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Generic, TypeVar

from ercgraph.errors import ErcgraphError

T = TypeVar("T")

_DOTTED = {"allowed": True}


@contextlib.contextmanager
def dotted_paths_allowed(allowed: bool) -> Iterator[None]:
    """Allow or forbid resolving ``pkg.module:Class`` dotted paths inside the block."""
    before = _DOTTED["allowed"]
    _DOTTED["allowed"] = allowed
    try:
        yield
    finally:
        _DOTTED["allowed"] = before


class Registry(Generic[T]):
    """A name → class mapping for one kind of component.

    Args:
        kind: Human-readable kind, used in error messages ("graph builder").
        entry_point_group: Entry-point group scanned for plug-ins, e.g. ``ercgraph.graph_builders``.
        builtin_modules: Modules imported on first lookup so their built-ins register themselves;
            a package name imports every module inside it.
        base: Import path ``module:Class`` of the base class every component must subclass
            (checked before a resolved class is ever called).
    """

    def __init__(
        self,
        kind: str,
        entry_point_group: str | None = None,
        builtin_modules: tuple[str, ...] = (),
        base: str | None = None,
        functions: bool = False,
    ) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.builtin_modules = builtin_modules
        self.base_path = base
        self.functions = functions
        self._items: dict[str, type[T]] = {}
        self._loaded = False

    def register(self, name: str | None = None) -> Callable[[type[T]], type[T]]:
        """Class decorator: ``@BUILDERS.register("temporal")``."""

        def deco(cls: type[T]) -> type[T]:
            key = name or getattr(cls, "name", None) or cls.__name__
            existing = self._items.get(key)
            if existing is not None and existing is not cls:
                raise ErcgraphError(
                    f"{self.kind} name {key!r} is already registered by "
                    f"{existing.__module__}.{existing.__qualname__}; choose another name"
                )
            self._items[key] = cls
            return cls

        return deco

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for mod in self.builtin_modules:
            module = importlib.import_module(mod)
            if hasattr(module, "__path__"):  # a package: every module in it
                for info in pkgutil.iter_modules(module.__path__, prefix=f"{mod}."):
                    importlib.import_module(info.name)
        if self.entry_point_group:
            for ep in entry_points(group=self.entry_point_group):
                try:
                    cls = ep.load()
                    if ep.name not in self._items:
                        self._items[ep.name] = cls
                except Exception as exc:  # a broken plug-in must not crash the CLI
                    warnings.warn(
                        f"could not load {self.kind} plug-in {ep.name!r} ({ep.value}): {exc}",
                        stacklevel=2,
                    )

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, type[T]]]:
        self._load()
        yield from sorted(self._items.items())

    @property
    def base(self) -> type | None:
        if self.base_path is None:
            return None
        mod, _, attr = self.base_path.partition(":")
        return getattr(importlib.import_module(mod), attr)

    def get(self, name: str) -> type[T]:
        """Resolve a registered name or a dotted path to a class of this registry's kind."""
        self._load()
        if not isinstance(name, str):
            raise ErcgraphError(f"a {self.kind} name must be a string, got {name!r}")
        if name in self._items:
            return self._items[name]
        if ":" in name or "." in name:
            if not _DOTTED["allowed"]:
                raise ErcgraphError(
                    f"{self.kind} {name!r} is a dotted path to code outside ercgraph; it is not "
                    "imported from a run directory's config (evaluate, predict, train --resume). "
                    "If you trust that module, pass --trust (it must be importable, e.g. on "
                    "PYTHONPATH)"
                )
            obj = load_dotted(name, self.kind)
            self.check_class(obj, name)
            return obj
        close = difflib.get_close_matches(name, self._items, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ErcgraphError(
            f"unknown {self.kind} {name!r}. Known: {', '.join(self.names())}.{hint} "
            f"(A custom one? Use a dotted path 'pkg.module:Class' or --import file.py.)"
        )

    def create(self, spec: Any, **extra: Any) -> T:
        """Build from a name or a ``{"name": ..., **kwargs}`` dict; an instance passes through."""
        if not isinstance(spec, (str, dict)):
            return spec
        if isinstance(spec, str):
            name, kwargs = spec, {}
        else:
            kwargs = dict(spec)
            if "name" not in kwargs:
                raise ErcgraphError(f"a {self.kind} entry needs a 'name' key, got {spec!r}")
            name = kwargs.pop("name")
        cls = self.get(name)
        check_kwargs(cls, kwargs, f"{self.kind} {name!r}")
        return cls(**kwargs, **extra)

    def check_class(self, obj: Any, name: str) -> None:
        """Raise unless ``obj`` is a class of this registry's kind (called before ``obj``)."""
        if self.functions and inspect.isfunction(obj):
            return
        base = self.base
        if not inspect.isclass(obj) or (base is not None and not issubclass(obj, base)):
            what = f"a {type(obj).__name__}" if not inspect.isclass(obj) else f"class {obj!r}"
            need = f"a subclass of {base.__module__}.{base.__qualname__}" if base else "a class"
            raise ErcgraphError(f"{self.kind} {name!r} is {what}, not {need}")

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items


def check_kwargs(cls: type, kwargs: dict[str, Any], what: str) -> None:
    """Raise an error naming an unknown keyword argument and listing the allowed ones."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = [p for p in params if p != "self"]
    for key in kwargs:
        if key not in allowed:
            raise ErcgraphError(
                f"unknown argument {key!r} for {what}; allowed: {', '.join(allowed) or 'none'}"
            )


def load_dotted(path: str, kind: str = "object") -> Any:
    """Import ``pkg.module:Name`` or ``pkg.module.Name``."""
    mod_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ErcgraphError(
            f"cannot import module {mod_name!r} for {kind} {path!r}: {exc}"
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise ErcgraphError(f"module {mod_name!r} has no {kind} named {attr!r}") from exc


def import_file(path: str | Path, what: str = "--import") -> None:
    """Execute a user's Python file (``--import file.py``) so its decorators register components.

    Args:
        path: The ``.py`` file.
        what: Where the path came from, for errors (``--import``, a config's ``imports:``).
    """
    if not isinstance(path, (str, Path)):
        raise ErcgraphError(f"{what}: expected a Python file path, got {path!r}")
    path = Path(path)
    if not path.is_file():
        raise ErcgraphError(f"{what}: no such file {str(path)!r}")
    name = f"ercgraph_user_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ErcgraphError(f"{what}: cannot load {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


BUILDERS: Registry = Registry(
    "graph builder",
    "ercgraph.graph_builders",
    ("ercgraph.graphs.temporal", "ercgraph.graphs.speaker", "ercgraph.graphs.modality"),
    base="ercgraph.graphs.base:GraphBuilder",
)
MODELS: Registry = Registry(
    "model",
    "ercgraph.models",
    ("ercgraph.models",),  # every module of the package: a new body is one file
    base="torch.nn:Module",
)
FUSIONS: Registry = Registry(
    "fusion", "ercgraph.fusions", ("ercgraph.fusions",), base="ercgraph.fusions.base:Fusion"
)
HEADS: Registry = Registry(
    "head", "ercgraph.heads", ("ercgraph.heads",), base="ercgraph.heads.base:Head"
)
LOSSES: Registry = Registry(
    "loss",
    "ercgraph.losses",
    ("ercgraph.losses", "ercgraph.heads"),  # heads register the terms that train them
    base="ercgraph.losses.base:LossTerm",
)
SAMPLERS: Registry = Registry(
    "sampler", "ercgraph.samplers", ("ercgraph.data.samplers",), base="torch.utils.data:Sampler"
)
READERS: Registry = Registry(
    "data reader",
    "ercgraph.readers",
    ("ercgraph.data.meld", "ercgraph.data.table", "ercgraph.data.pickles", "ercgraph.data.iemocap"),
    functions=True,
)

#: Every registry by the name ``ercgraph list`` uses.
REGISTRIES: dict[str, Registry] = {
    "readers": READERS,
    "builders": BUILDERS,
    "models": MODELS,
    "fusions": FUSIONS,
    "heads": HEADS,
    "losses": LOSSES,
    "samplers": SAMPLERS,
}
