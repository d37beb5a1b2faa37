"""A model body plus its heads: what the trainer, ``evaluate`` and ``predict`` run."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ercgraph.models.outputs import ModelOutput


class ERCModel(nn.Module):
    """A registered model body (graph encoder) and named heads.

    ``forward(batch)`` runs the body (with the heads' input hooks in training), then every head,
    whose tensors join ``out.aux``; the emotion head's ``logits`` also become ``out.logits``.

    Args:
        body: a ``MODELS`` entry returning a :class:`ModelOutput`.
        heads: head name → ``HEADS`` instance.
    """

    def __init__(self, body: nn.Module, heads: dict[str, nn.Module]) -> None:
        super().__init__()
        self.body = body
        self.heads = nn.ModuleDict(heads)

    def _input_hook(self, h: dict[str, Tensor], present: dict[str, Tensor]):
        masks: dict[str, Tensor] = {}
        for head in self.heads.values():
            res = head.input_hook(h, present)
            if res is not None:
                h, new = res
                masks.update(new)
        return h, masks

    def forward(self, batch: Any) -> ModelOutput:
        out = self.body(batch, input_hook=self._input_hook if self.training else None)
        for head in self.heads.values():
            out.aux.update(head(out, batch))
        out.logits = out.aux.get("logits")
        return out
