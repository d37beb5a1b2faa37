"""Heads: what a model predicts from the utterance representations (the ``HEADS`` registry).

A head is built as ``cls(ctx, **options)`` with a :class:`HeadContext` and its config options.
It reads the model's :class:`~ercgraph.models.outputs.ModelOutput` and returns named tensors
that join ``out.aux`` (the emotion head's ``logits`` also become ``out.logits``). Its targets come
from Corpus columns: :meth:`Head.fit` learns what it needs from the **training split only**
(a vocabulary, a mean and std; saved in the run directory as JSON), :meth:`Head.targets` turns
columns into per-utterance tensors that the graphs carry, and :meth:`Head.score` turns collected
predictions into metrics for ``metrics.json``. A head may also mask node inputs before message
passing (:meth:`Head.input_hook`; the reconstruction head does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn


@dataclass
class HeadContext:
    """What a head is built from.

    Args:
        in_dim: size of the utterance representation (``out.utterance``).
        hidden: size of the per-modality node states (``out.nodes``).
        in_dims: modality → input feature size.
        num_classes: number of emotion classes.
        labels: the emotion label vocabulary.
        dropout: the model's dropout probability.
        state: what :meth:`Head.fit` learned on the training split.
        linear_skip: whether heads that support it add a linear skip path (``model.linear_skip``).
    """

    in_dim: int
    hidden: int
    in_dims: dict[str, int]
    num_classes: int
    labels: list[str] = field(default_factory=list)
    dropout: float = 0.0
    state: dict[str, Any] = field(default_factory=dict)
    linear_skip: bool = False


def linear_skip(ctx: HeadContext, out_dim: int) -> nn.Linear | None:
    """The linear skip path of a head (``model.linear_skip``), or None.

    It maps an utterance's own input features (every modality side by side, as standardised
    by the run's normaliser; a missing modality reads as zeros) straight to the head's output.
    Message passing can mix an utterance's representation with its neighbours'; this path
    cannot, so the model contains a linear probe on the same features, and the graph only has
    to learn what context adds. Read it with :func:`skip_input`.
    """
    if not ctx.linear_skip:
        return None
    return nn.Linear(sum(ctx.in_dims.values()), out_dim)


def skip_input(out: Any, modalities: list[str]) -> Tensor:
    """``[N, sum of input dims]``: the raw inputs of ``out`` side by side, zero where missing."""
    return torch.cat(
        [out.inputs[m] * out.present[m].unsqueeze(-1).to(out.inputs[m].dtype) for m in modalities],
        dim=-1,
    )


def mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    """The two-layer classifier every head uses."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)
    )


class Head(nn.Module):
    """Base class of the ``HEADS`` registry.

    Class attributes:
        METRICS: the metric names :meth:`score` reports that can select a model on dev
            (higher is better); the first is the head's headline metric.
        PRODUCES: the ``out.aux`` keys it writes (loss terms name them in ``REQUIRES``).
    """

    METRICS: tuple[str, ...] = ()
    PRODUCES: tuple[str, ...] = ()

    def __init__(self, ctx: HeadContext) -> None:
        super().__init__()
        self.ctx = ctx

    @classmethod
    def selectable(cls, **options: Any) -> tuple[str, ...]:
        """The metrics that can select a model on dev, for these options."""
        return cls.METRICS

    # -- targets (class methods: they run before any model exists) -----------------------------
    @classmethod
    def fit(cls, corpus: Any, **options: Any) -> dict[str, Any]:
        """What the head learns from the training split (JSON-serialisable)."""
        return {}

    @classmethod
    def targets(
        cls, corpus: Any, state: dict[str, Any], required: bool = True, **options: Any
    ) -> dict[str, Tensor]:
        """Per-utterance target tensors ``[N, ...]`` that the graphs carry, by attribute name.

        ``required=False`` (prediction on new data) tolerates missing target columns.
        """
        return {}

    # -- model side -------------------------------------------------------------------------
    def input_hook(
        self, h: dict[str, Tensor], present: dict[str, Tensor]
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]] | None:
        """Optionally change projected node inputs before message passing (training only);
        returns the new inputs and the node masks it applied."""
        return None

    def forward(self, out: Any, batch: Any) -> dict[str, Tensor]:
        raise NotImplementedError

    # -- scoring ----------------------------------------------------------------------------
    def collect(self, out: Any, batch: Any) -> dict[str, Tensor]:
        """Per-utterance predictions and targets to score (``pred`` and ``target``), or {}."""
        return {}

    def score(self, pred: np.ndarray, target: np.ndarray) -> dict[str, Any]:
        """Metrics from all collected predictions of a split."""
        return {}
