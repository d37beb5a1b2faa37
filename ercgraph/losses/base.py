"""Loss terms: the base classes of the ``LOSSES`` registry.

A term is built from its config options plus whatever training-split facts its constructor asks
for by name (``class_counts``, ``num_classes``, ``labels``; see
:func:`ercgraph.losses.objective.build_objective`) and is called as ``term(out, batch)`` with the
model's :class:`~ercgraph.models.outputs.ModelOutput` and the batch. It returns a scalar, or
``None`` when it has nothing to score in this step (no masked node, no labelled row), which is
then neither added nor logged.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ercgraph.errors import ErcgraphError


class LossTerm(nn.Module):
    """Base class of every loss term.

    ``REQUIRES`` names the :class:`ModelOutput` fields or ``aux`` keys the term reads; a config
    whose heads do not produce them is refused before training starts.
    """

    REQUIRES: tuple[str, ...] = ()

    def forward(self, out: Any, batch: Any) -> Tensor | None:
        raise NotImplementedError


class ClassificationLoss(LossTerm):
    """An emotion loss: reads ``out.logits`` and ``batch.y``, ignoring unlabelled rows (-1).

    Subclasses implement :meth:`classify` on the labelled rows.
    """

    REQUIRES = ("logits",)

    def classify(self, logits: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, out: Any, batch: Any) -> Tensor | None:
        if out.logits is None:
            raise ErcgraphError(
                f"loss {type(self).__name__} needs emotion logits (an emotion head)"
            )
        labelled = batch.y >= 0
        if not bool(labelled.any()):
            return None
        return self.classify(out.logits[labelled], batch.y[labelled])
