"""Build a registered model from the ``model`` config section."""

from __future__ import annotations

import dataclasses
import inspect

from torch import nn

from ercgraph.config import ModelConfig, MultitaskConfig
from ercgraph.errors import ErcgraphError
from ercgraph.registry import MODELS

EdgeType = tuple[str, str, str]
_FIXED = ("self", "in_dims", "edge_types", "num_classes")


def build_model(
    cfg: ModelConfig,
    in_dims: dict[str, int],
    edge_types: list[EdgeType],
    num_classes: int,
    multitask: MultitaskConfig | None = None,
) -> nn.Module:
    """Instantiate ``cfg.name`` with the config fields its constructor takes.

    A config field the chosen model does not use is an error when it differs from the default
    (a flag that would be parsed and then ignored), naming the field. ``multitask`` switches on
    the masked-reconstruction head of models that have one.
    """
    cls = MODELS.get(cfg.name)
    params = inspect.signature(cls.__init__).parameters
    defaults = ModelConfig()
    kwargs = {}
    for f in dataclasses.fields(cfg):
        if f.name in ("name", "options"):
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
        if key in fields or key in _FIXED or key in ("multitask", "mask_ratio", "mask_mode"):
            raise ErcgraphError(
                f"model.options.{key} would shadow a config field; set it where it lives "
                f"(model.{key} or the multitask section)"
            )
        if key not in params:
            raise ErcgraphError(
                f"unknown option model.options.{key} for model {cfg.name!r}; allowed: "
                f"{', '.join(p for p in params if p not in _FIXED)}"
            )
        kwargs[key] = value
    if multitask is not None and multitask.enabled:
        if "multitask" not in params:
            raise ErcgraphError(
                f"multitask.enabled: model {cfg.name!r} has no multi-task head "
                "(use hierarchical_gcn)"
            )
        kwargs.update(multitask=True, mask_ratio=multitask.mask_ratio, mask_mode=multitask.mode)
    return cls(in_dims=in_dims, edge_types=edge_types, num_classes=num_classes, **kwargs)
