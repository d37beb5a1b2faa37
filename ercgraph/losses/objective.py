"""The training objective: a weighted sum of named loss terms, each logged on its own."""

from __future__ import annotations

import inspect
import math
from typing import Any

from torch import Tensor, nn

from ercgraph.errors import ErcgraphError
from ercgraph.registry import LOSSES


class Objective(nn.Module):
    """Named, weighted loss terms in a ``ModuleDict`` (so learnable loss parameters reach the
    optimiser and the checkpoint).

    ``objective(out, batch)`` returns the weighted total and each term's unweighted value; a term
    that returns ``None`` (nothing to score in this step) is left out of both. A non-finite total
    raises, showing every term.
    """

    def __init__(self, terms: dict[str, nn.Module], weights: dict[str, float]) -> None:
        super().__init__()
        self.terms = nn.ModuleDict(terms)
        self.weights = dict(weights)

    def forward(self, out: Any, batch: Any) -> tuple[Tensor | None, dict[str, float]]:
        total: Tensor | None = None
        values: dict[str, float] = {}
        parts: dict[str, Tensor] = {}
        for name, term in self.terms.items():
            value = term(out, batch)
            if value is None:
                continue
            parts[name] = value
            values[name] = float(value.detach())
            weighted = self.weights[name] * value
            total = weighted if total is None else total + weighted
        if total is not None and not math.isfinite(float(total.detach())):
            shown = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
            raise ErcgraphError(f"the loss is not finite: total={float(total):.4g} ({shown})")
        return total, values

    @property
    def views(self) -> int:
        """How many forward passes of a training batch the terms need (2 for R-Drop)."""
        return max([int(getattr(t, "VIEWS", 1)) for t in self.terms.values()] or [1])

    def extra_repr(self) -> str:
        return ", ".join(f"{k}×{w:g}" for k, w in self.weights.items())


def add_second_view(out: Any, second: Any) -> None:
    """Attach a second forward pass of the same batch (other dropout masks) to ``out.aux`` as
    ``logits_view2`` and ``utterance_view2``, for terms with ``VIEWS = 2`` (R-Drop)."""
    if second.logits is not None:
        out.aux["logits_view2"] = second.logits
    out.aux["utterance_view2"] = second.utterance


def _term_key(name: str, taken: set[str]) -> str:
    base = name.replace(":", ".").split(".")[-1] or "term"
    key, i = base, 2
    while key in taken:
        key, i = f"{base}_{i}", i + 1
    return key


def build_objective(terms: list[Any], context: dict[str, Any]) -> Objective:
    """Resolve ``loss:`` terms (``{"name", "weight", "options"}`` dicts or objects with those
    attributes) into an :class:`Objective`.

    A term's constructor receives its options plus the entries of ``context`` (training-split
    facts such as ``class_counts``, ``num_classes``, ``labels``) that it names as parameters.
    """
    built: dict[str, nn.Module] = {}
    weights: dict[str, float] = {}
    for spec in terms:
        if isinstance(spec, dict):
            name, weight, options = spec["name"], spec.get("weight", 1.0), spec.get("options", {})
        else:
            name, weight, options = spec.name, spec.weight, spec.options
        cls = LOSSES.get(name)
        params = inspect.signature(cls.__init__).parameters
        extra = {k: v for k, v in context.items() if k in params and k not in options}
        term = LOSSES.create({"name": name, **options}, **extra)
        key = _term_key(name, set(built))
        built[key] = term
        weights[key] = float(weight)
    if not built:
        raise ErcgraphError("loss: no loss term configured")
    return Objective(built, weights)


def requirements(terms: list[Any]) -> dict[str, tuple[str, ...]]:
    """term name → the output keys it reads (its ``REQUIRES``)."""
    out = {}
    for spec in terms:
        name = spec["name"] if isinstance(spec, dict) else spec.name
        out[name] = tuple(getattr(LOSSES.get(name), "REQUIRES", ()))
    return out
