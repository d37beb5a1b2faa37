"""Meta-tests over every registered graph builder, and the three ways to plug one in.

Every builder in the registry (built-ins and installed plug-ins) must be constructible with
defaults, show every argument in its ``repr``, leave its input untouched, stay inside the
validated contract, and ship with a test module. A new builder without that support fails here.
"""

from __future__ import annotations

import inspect
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from ercgraph.errors import ErcgraphError
from ercgraph.graphs.base import (
    PAIR_PREDICATES,
    Dialogues,
    GraphBuilder,
    cache_identity,
    pair_mask,
)
from ercgraph.graphs.build import build_edges, compose
from ercgraph.registry import BUILDERS, import_file

from .helpers import is_sorted_by_dst_src

TESTS = Path(__file__).resolve().parent
MODS = ("text", "audio", "visual")


def sample() -> Dialogues:
    return Dialogues.from_sequences(
        [["A", "B", "A", "C", "B", "A"], ["D"], ["E", "E", "F"], []], modalities=MODS
    )


def check_builder_contract(cls: type) -> None:
    """What every graph builder promises (also applied to plug-ins in the tests below)."""
    name = cls.__name__
    assert isinstance(cls, type) and issubclass(cls, GraphBuilder), (
        f"{name} must subclass ercgraph.graphs.GraphBuilder"
    )
    assert cls.__call__ is GraphBuilder.__call__, f"{name} must not bypass validation in __call__"
    declared = cls.EDGE_TYPES
    assert (
        isinstance(declared, tuple) and declared and all(isinstance(r, str) and r for r in declared)
    ), f"{name}.EDGE_TYPES must list relation names"
    assert len(set(declared)) == len(declared), f"{name}.EDGE_TYPES repeats a relation"

    params = [
        p
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    missing = [p.name for p in params if p.default is inspect.Parameter.empty]
    assert not missing, f"{name}: give {missing} defaults so the contract test can build it"
    builder = cls()
    text = repr(builder)
    assert text.startswith(f"{name}(") and text == repr(cls()), f"{name}: unstable repr {text}"
    for p in params:  # the repr is a cache key: it must show every argument and its value
        assert f"{p.name}={p.default!r}" in text, f"{name}: repr {text} lacks {p.name}"
    assert set(builder.edge_types) <= set(declared)
    assert cache_identity(builder)["repr"] == text  # what the graph cache key holds

    d = sample()
    speaker, ptr = d.speaker.clone(), d.ptr.clone()
    out = builder(d)
    assert torch.equal(d.speaker, speaker) and torch.equal(d.ptr, ptr), f"{name} mutated input"
    assert {k[1] for k in out} <= set(builder.edge_types)
    if cls.SORTED_OUTPUT:  # graph assembly trusts this flag and skips its sort check
        for key, ei in out.items():
            assert is_sorted_by_dst_src(ei), f"{name} sets SORTED_OUTPUT but {key} is unsorted"
    again = builder(d)
    assert list(out) == list(again) and all(torch.equal(out[k], again[k]) for k in out), (
        f"{name} is not deterministic"
    )

    # the size check before building trusts estimate_edges: it must count exactly what is built
    estimate = builder.estimate_edges(d)
    if estimate is not None:
        built = torch.zeros(d.num_dialogues, dtype=torch.long)
        for ei in out.values():
            built += torch.bincount(d.batch[ei[1]], minlength=d.num_dialogues)
        assert estimate.tolist() == built.tolist(), f"{name}.estimate_edges is not exact"

    # a pair rule is what a relation says about its pairs: every edge of the relation obeys it
    rules = cls.PAIR_RULES
    assert isinstance(rules, dict) and set(rules) <= set(declared), f"{name}.PAIR_RULES keys"
    for (_, rel, _), ei in out.items():
        if rel in rules:
            assert set(rules[rel]) <= set(PAIR_PREDICATES), f"{name}: unknown rule {rules[rel]}"
            assert bool(pair_mask(rules[rel], ei[0], ei[1], d.speaker).all()), (name, rel)

    # validation is not optional: out-of-range output is caught for every builder
    rel = builder.edge_types[0] if builder.edge_types else declared[0]
    builder.forward = lambda _: {("text", rel, "text"): torch.tensor([[0], [d.num_utterances]])}
    if rel in builder.edge_types:
        with pytest.raises(ErcgraphError, match="outside"):
            builder(d)


@pytest.mark.parametrize("name", BUILDERS.names())
def test_registered_builder_contract(name: str) -> None:
    check_builder_contract(BUILDERS.get(name))


@pytest.mark.parametrize("name", BUILDERS.names())
def test_registered_builder_has_tests(name: str) -> None:
    cls = BUILDERS.get(name)
    if not cls.__module__.startswith("ercgraph."):
        pytest.skip(f"{name} is a plug-in from {cls.__module__}; its package tests it")
    module = cls.__module__.rsplit(".", 1)[-1]
    path = TESTS / f"test_{module}.py"
    assert path.is_file(), f"builder {name!r} ({cls.__module__}) needs tests in {path}"
    assert cls.__name__ in path.read_text(), f"{path.name} never mentions {cls.__name__}"


def test_registry_lists_builtins_with_edge_types() -> None:
    names = dict(BUILDERS.items())
    assert {"temporal", "speaker", "modality"} <= set(names)
    assert names["temporal"].EDGE_TYPES == ("past", "future")


def test_contract_catches_a_builder_without_support() -> None:
    class Sloppy(GraphBuilder):
        EDGE_TYPES = ("near",)

        def __init__(self, k: int = 2) -> None:
            self._window = k  # not under its own name: repr cannot show it

        def forward(self, d: Dialogues) -> dict:
            return {}

    with pytest.raises(AssertionError, match="lacks k"):
        check_builder_contract(Sloppy)


# -- plug-ins: dotted path, --import file.py, entry points --------------------------------------
PLUGIN = textwrap.dedent('''
    """A user's builder: each utterance receives from itself."""
    import torch

    from ercgraph.graphs.base import Dialogues, IntraModalBuilder
    from ercgraph.registry import BUILDERS


    @BUILDERS.register("self_loop")
    class SelfLoopBuilder(IntraModalBuilder):
        EDGE_TYPES = ("self_loop",)

        def __init__(self, every: int = 1) -> None:
            self.every = every

        def forward_relations(self, dialogues: Dialogues) -> dict:
            i = torch.arange(0, dialogues.num_utterances, self.every)
            return {"self_loop": torch.stack([i, i])}
''')


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_builders: None):
    """Write the plug-in as an importable module with a unique name; remove it afterwards."""
    name = f"ercgraph_test_plugin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def _check_self_loops(builders: list) -> None:
    d = Dialogues.from_sequences([["A", "B"], ["C"]], modalities=("text", "audio"))
    out = build_edges(d, ["temporal", *builders])
    assert out[("audio", "self_loop", "audio")].tolist() == [[0, 1, 2], [0, 1, 2]]
    assert out[("text", "past", "text")].tolist() == [[0], [1]]


def test_plugin_by_dotted_path(plugin_module: str) -> None:
    _check_self_loops([f"{plugin_module}:SelfLoopBuilder"])
    comp = compose([{"name": f"{plugin_module}:SelfLoopBuilder", "every": 2}])
    assert repr(comp.builders[0]) == "SelfLoopBuilder(every=2)"
    check_builder_contract(type(comp.builders[0]))
    with pytest.raises(
        ErcgraphError, match=f"module '{plugin_module}' has no graph builder named 'Nope'"
    ):
        compose([f"{plugin_module}:Nope"])


def test_plugin_by_import_file(tmp_path: Path, restore_builders: None) -> None:
    path = tmp_path / "my_builders.py"
    path.write_text(PLUGIN)
    assert "self_loop" not in BUILDERS
    import_file(path)
    try:
        assert "self_loop" in BUILDERS.names()
        _check_self_loops(["self_loop"])
    finally:
        sys.modules.pop("ercgraph_user_my_builders", None)


def test_plugin_by_entry_point(tmp_path: Path, plugin_module: str) -> None:
    dist = tmp_path / "mypkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mypkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[ercgraph.graph_builders]\nloops = {plugin_module}:SelfLoopBuilder\n"
        "broken = no_such_module_for_ercgraph_tests:Thing\n"
    )
    BUILDERS._loaded = False
    with pytest.warns(UserWarning, match="could not load graph builder plug-in 'broken'"):
        names = BUILDERS.names()
    assert "loops" in names
    _check_self_loops(["loops"])
    check_builder_contract(BUILDERS.get("loops"))


def test_plugins_are_gone_after_the_tests() -> None:
    assert "self_loop" not in BUILDERS and "loops" not in BUILDERS


# -- the repr is the cache key: a plug-in that hides an argument is refused ----------------------
HIDDEN = textwrap.dedent('''
    """A user's builder that keeps ``window`` under another name (its repr cannot show it)."""
    import torch

    from ercgraph.graphs.base import Dialogues, IntraModalBuilder
    from ercgraph.registry import BUILDERS


    @BUILDERS.register("hidden_window")
    class HiddenWindowBuilder(IntraModalBuilder):
        EDGE_TYPES = ("near",)

        def __init__(self, window: int = 1) -> None:
            self._w = window

        def forward_relations(self, dialogues: Dialogues) -> dict:
            i = torch.arange(dialogues.num_utterances)
            return {"near": torch.stack([i, i])}
''')


def test_plugin_hiding_an_argument_is_refused_by_dotted_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_builders: None
) -> None:
    name = f"ercgraph_test_hidden_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(HIDDEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        for spec in (f"{name}:HiddenWindowBuilder", {"name": f"{name}:HiddenWindowBuilder"}):
            with pytest.raises(ErcgraphError, match=r"HiddenWindowBuilder.*'window'") as err:
                compose(["temporal", spec])
            assert "\n" not in str(err.value)
    finally:
        sys.modules.pop(name, None)


def test_plugin_hiding_an_argument_is_refused_by_import_file(
    tmp_path: Path, restore_builders: None
) -> None:
    path = tmp_path / "hidden_builders.py"
    path.write_text(HIDDEN)
    import_file(path)
    try:
        for window in (1, 3):  # two configs must never share a cache entry: refused instead
            with pytest.raises(ErcgraphError, match=r"HiddenWindowBuilder.*'window'"):
                compose([{"name": "hidden_window", "window": window}])
    finally:
        sys.modules.pop("ercgraph_user_hidden_builders", None)
