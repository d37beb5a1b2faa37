"""Meta-tests over every registered component (pykeen-style): builders are checked in
``tests/graphs/test_contract.py``; here every loss term, sampler, fusion, head and model is built
from its defaults, shows a ``repr``, takes one training step on a tiny graph, and has a test of
its own somewhere in the suite. A new component without a test fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ercgraph.fusions.base import Fusion
from ercgraph.losses import build_objective
from ercgraph.losses.objective import add_second_view
from ercgraph.registry import FUSIONS, HEADS, LOSSES, MODELS, REGISTRIES, SAMPLERS
from tests.components import ALL_HEADS, toy_setup

TESTS = Path(__file__).resolve().parent
COUNTS = torch.tensor([5.0, 3.0, 2.0])


def _builtin(registry):
    return [(n, c) for n, c in registry.items() if c.__module__.startswith("ercgraph.")]


def _step(model, objective, batch) -> float:
    model.train()
    params = list(model.parameters()) + list(objective.parameters())
    opt = torch.optim.SGD(params, lr=0.01)
    out = model(batch)
    if objective.views > 1:  # R-Drop: the trainer's second dropout pass
        add_second_view(out, model(batch))
    loss, values = objective(out, batch)
    assert loss is not None and torch.isfinite(loss), values
    opt.zero_grad()
    loss.backward()
    grads = [p.grad for p in params if p.grad is not None]
    assert grads and any(bool(g.abs().sum() > 0) for g in grads)
    opt.step()
    return float(loss.detach())


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_term_trains_one_step_with_the_head_it_reads(name):
    cls = LOSSES.get(name)
    # the shared heads, plus any head that writes what this term reads (e.g. label_matching)
    writers = [h for h, c in HEADS.items() if set(c.PRODUCES) & set(cls.REQUIRES)]
    heads = ALL_HEADS + [h for h in writers if h not in ALL_HEADS]
    # and the fusion whose outputs it reads (the joint VAE's terms)
    model, batch, _ = toy_setup(heads=heads, fusion=getattr(cls, "REQUIRES_FUSION", None) or "mean")
    produced = {k for h in heads for k in HEADS.get(h).PRODUCES} | {"utterance", "nodes"}
    assert set(cls.REQUIRES) <= produced, f"{name} reads {cls.REQUIRES}: no head writes it"
    objective = build_objective([{"name": name}], {"class_counts": COUNTS, "num_classes": 3})
    assert repr(objective)
    _step(model, objective, batch)


@pytest.mark.parametrize("name", HEADS.names())
def test_every_head_builds_from_defaults_and_trains_with_a_loss_term(name):
    cls = HEADS.get(name)
    readers = [n for n, c in LOSSES.items() if set(c.REQUIRES) & set(cls.PRODUCES)]
    assert readers, f"head {name!r} writes {cls.PRODUCES}, which no loss term reads"
    model, batch, _ = toy_setup(heads=[name])
    assert name in repr(model.heads) or cls.__name__ in repr(model.heads)
    objective = build_objective([{"name": readers[0]}], {"class_counts": COUNTS})
    _step(model, objective, batch)
    model.eval()
    with torch.no_grad():
        out = model(batch)
        collected = model.heads[name].collect(out, batch)
    if cls.METRICS:
        scores = model.heads[name].score(collected["pred"].numpy(), collected["target"].numpy())
        assert set(cls.selectable()) <= set(scores)


@pytest.mark.parametrize("name", FUSIONS.names())
def test_every_fusion_builds_from_defaults_and_trains(name):
    fusion = FUSIONS.create(name, modalities=["text", "audio"], dim=16)
    assert isinstance(fusion, Fusion) and repr(fusion)
    h = {"text": torch.randn(7, 16), "audio": torch.randn(7, 16)}
    present = {"text": torch.ones(7, dtype=torch.bool), "audio": torch.arange(7) % 2 == 0}
    assert fusion(h, present).shape == (7, fusion.out_dim)
    model, batch, _ = toy_setup(heads=["emotion"], fusion=name)
    _step(model, build_objective([{"name": "ce"}], {"class_counts": COUNTS}), batch)


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_trains_one_step_with_every_head(name):
    model, batch, _ = toy_setup(model=name)
    assert repr(model)
    terms = [{"name": "ce"}, {"name": "sentiment"}, {"name": "ccc"}, {"name": "reconstruction"}]
    _step(model, build_objective(terms, {"class_counts": COUNTS}), batch)


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_every_sampler_builds_from_defaults_and_yields_training_dialogues(name):
    labels = [torch.tensor([0, 1]), torch.tensor([2]), torch.tensor([0, 0, -1])]
    sampler = SAMPLERS.create(
        name, dialogue_labels=labels, num_classes=3, generator=torch.Generator().manual_seed(0)
    )
    assert repr(sampler)
    drawn = list(sampler)
    assert len(drawn) == len(sampler) and all(0 <= i < 3 for i in drawn)


@pytest.mark.parametrize(
    "kind,name",
    [
        (kind, name)
        for kind in ("models", "fusions", "heads", "losses", "samplers")
        for name, _ in _builtin(REGISTRIES[kind])
    ],
)
def test_every_builtin_component_has_a_test_of_its_own(kind, name):
    """Its registered name or class name appears in a test module other than this one."""
    cls = REGISTRIES[kind].get(name)
    sources = [p.read_text() for p in TESTS.rglob("test_*.py") if p.name != Path(__file__).name]
    needles = (f'"{name}"', f"'{name}'", cls.__name__)
    assert any(n in s for s in sources for n in needles), (
        f"{kind} {name!r} ({cls.__name__}) has no test: add one under tests/"
    )
