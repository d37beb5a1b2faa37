"""Build a registered model body and its heads from the config."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from ercgraph.config import ModelConfig
from ercgraph.errors import ErcgraphError
from ercgraph.heads.base import HeadContext
from ercgraph.models.composite import ERCModel
from ercgraph.registry import HEADS, MODELS

EdgeType = tuple[str, str, str]
_FIXED = ("self", "in_dims", "edge_types", "num_classes")


def build_body(
    cfg: ModelConfig, in_dims: dict[str, int], edge_types: list[EdgeType], num_classes: int
) -> Any:
    """Instantiate ``cfg.name`` with the config fields its constructor takes.

    A config field the chosen model does not use is an error when it differs from the default
    (a flag that would be parsed and then ignored), naming the field.
    """
    cls = MODELS.get(cfg.name)
    params = inspect.signature(cls.__init__).parameters
    defaults = ModelConfig()
    kwargs = {}
    for f in dataclasses.fields(cfg):
        if f.name in ("name", "options", "linear_skip"):  # linear_skip: the heads' (ctx)
            continue
        value = getattr(cfg, f.name)
        if f.name in params:
            kwargs[f.name] = value
        elif value != getattr(defaults, f.name):
            raise ErcgraphError(
                f"model {cfg.name!r} does not use model.{f.name} (set to {value!r}); "
                f"its arguments are: {', '.join(p for p in params if p != 'self')}"
            )
    fields = {f.name for f in dataclasses.fields(cfg)}
    for key, value in cfg.options.items():
        if key in fields or key in _FIXED:
            raise ErcgraphError(
                f"model.options.{key} would shadow a config field; set it where it lives "
                f"(model.{key})"
            )
        if key not in params:
            raise ErcgraphError(
                f"unknown option model.options.{key} for model {cfg.name!r}; allowed: "
                f"{', '.join(p for p in params if p not in _FIXED)}"
            )
        kwargs[key] = value
    if "conv" in kwargs:
        from ercgraph.models.layers import check_conv

        check_conv(kwargs["conv"], kwargs.get("hidden", defaults.hidden), kwargs.get("heads", 4))
    return cls(in_dims=in_dims, edge_types=edge_types, num_classes=num_classes, **kwargs)


def head_key(name: str) -> str:
    """The head's key in the model and in ``head_states``: its name, or the class name of a
    dotted path."""
    return name.replace(":", ".").split(".")[-1]


def head_specs(heads: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    """``heads:`` entries (names or ``{"name": ..., **options}``) → ``(name, options)`` pairs."""
    out = []
    for spec in heads:
        if isinstance(spec, str):
            out.append((spec, {}))
        elif isinstance(spec, dict) and "name" in spec:
            opts = {k: v for k, v in spec.items() if k != "name"}
            out.append((spec["name"], opts))
        else:
            raise ErcgraphError(f"heads: each entry is a name or {{name: ..., ...}}, got {spec!r}")
    names = [n for n, _ in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ErcgraphError(f"heads: {dup} listed more than once")
    return out


def build_model(
    cfg: ModelConfig,
    in_dims: dict[str, int],
    edge_types: list[EdgeType],
    labels: list[str],
    heads: list[Any] | None = None,
    head_states: dict[str, dict[str, Any]] | None = None,
) -> ERCModel:
    """The model body plus its heads.

    Args:
        cfg: the ``model`` section.
        in_dims: modality → input feature size.
        edge_types: the edge types of every graph.
        labels: the emotion label vocabulary (empty for a corpus without emotion labels).
        heads: ``heads:`` entries (default: the emotion head).
        head_states: head name → what its :meth:`~ercgraph.heads.base.Head.fit` learned.
    """
    labels = list(labels)
    body = build_body(cfg, in_dims, edge_types, len(labels))
    built = {}
    for name, options in head_specs(heads if heads is not None else ["emotion"]):
        ctx = HeadContext(
            in_dim=body.out_dim,
            hidden=cfg.hidden,
            in_dims=dict(in_dims),
            num_classes=len(labels),
            labels=labels,
            dropout=cfg.dropout,
            state=(head_states or {}).get(head_key(name), {}),
            linear_skip=bool(getattr(cfg, "linear_skip", False)),
        )
        built[head_key(name)] = HEADS.create({"name": name, **options}, ctx=ctx)
    return ERCModel(body, built)
