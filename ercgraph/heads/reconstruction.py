"""Masked-feature reconstruction, the auxiliary task of CBERL's multi-task design."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ercgraph.errors import ErcgraphError
from ercgraph.heads.base import Head, HeadContext
from ercgraph.registry import HEADS

MASK_MODES = ("features", "nodes")


@HEADS.register("reconstruction")
class ReconstructionHead(Head):
    """Masks node inputs during training and decodes the originals from the node states.

    Our reading of CBERL's (Meng et al., 2024) multi-task design: a fraction of the present
    modality nodes is masked (their projected input replaced by a learned mask embedding) before
    message passing; a per-modality decoder maps the final node states of the masked nodes back
    to their input features, written as ``reconstruction/<modality>`` in ``out.aux``. The
    ``reconstruction`` loss term scores them. Outside training nothing is masked.

    Args:
        ctx: the head context (node state size ``hidden``, input dims).
        mask_ratio: fraction of present nodes masked per step, in [0, 1).
        mode: ``features`` masks each modality's nodes independently, ``nodes`` masks every
            modality node of a chosen utterance at once.
    """

    PRODUCES = ("reconstruction",)

    def __init__(self, ctx: HeadContext, mask_ratio: float = 0.15, mode: str = "features") -> None:
        super().__init__(ctx)
        if not 0.0 <= mask_ratio < 1.0:
            raise ErcgraphError(
                f"reconstruction head: mask_ratio must be in [0, 1), got {mask_ratio}"
            )
        if mode not in MASK_MODES:
            raise ErcgraphError(
                f"reconstruction head: mode must be one of {MASK_MODES}, got {mode!r}"
            )
        self.mask_ratio, self.mode = mask_ratio, mode
        self.mask_token = nn.Parameter(torch.zeros(ctx.hidden))
        self.decoders = nn.ModuleDict(
            {
                m: nn.Sequential(
                    nn.Linear(ctx.hidden, ctx.hidden), nn.ReLU(), nn.Linear(ctx.hidden, d)
                )
                for m, d in ctx.in_dims.items()
            }
        )

    def draw(self, present: dict[str, Tensor]) -> dict[str, Tensor]:
        """Boolean masks ``[N]`` per modality (only present nodes are ever masked)."""
        n = next(iter(present.values())).numel()
        device = next(iter(present.values())).device
        if self.mode == "nodes":
            shared = torch.rand(n, device=device) < self.mask_ratio
            return {m: shared & p for m, p in present.items()}
        return {m: (torch.rand(n, device=device) < self.mask_ratio) & p for m, p in present.items()}

    def input_hook(self, h, present):
        masks = self.draw(present)
        masked = {
            m: torch.where(masks[m][:, None], self.mask_token.expand_as(x), x) for m, x in h.items()
        }
        return masked, masks

    def forward(self, out: Any, batch: Any) -> dict[str, Tensor]:
        return {
            f"reconstruction/{m}": self.decoders[m](out.nodes[m][mask])
            for m, mask in out.node_masks.items()
            if m in self.decoders
        }

    def extra_repr(self) -> str:
        return f"mask_ratio={self.mask_ratio}, mode={self.mode!r}, in_dims={self.ctx.in_dims}"
