"""Masked-feature reconstruction, the auxiliary task of the multi-task head.

Our reading of CBERL's (Meng et al., 2024) multi-task design: during training a fraction of the
present modality nodes is masked (their projected input replaced by a learned mask embedding),
the graph layers run as usual, and a per-modality decoder reconstructs the masked nodes' original
input features from their final node states. The reconstruction loss is ``1 - cosine`` between
decoded and original features (scale-free across encoders), averaged over masked nodes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ercgraph.errors import ErcgraphError

MASK_MODES = ("features", "nodes")


class MaskedReconstruction(nn.Module):
    """Masks node inputs and reconstructs them.

    Args:
        in_dims: modality → input feature dimension (the decoder's output).
        hidden: node state size (the decoder's input).
        mask_ratio: fraction of present nodes masked per step, in [0, 1).
        mode: ``features`` (per modality) or ``nodes`` (all modalities of an utterance).
    """

    def __init__(
        self, in_dims: dict[str, int], hidden: int, mask_ratio: float = 0.15, mode: str = "features"
    ) -> None:
        super().__init__()
        if not 0.0 <= mask_ratio < 1.0:
            raise ErcgraphError(f"multitask.mask_ratio must be in [0, 1), got {mask_ratio}")
        if mode not in MASK_MODES:
            raise ErcgraphError(f"multitask.mode must be one of {MASK_MODES}, got {mode!r}")
        self.mask_ratio, self.mode = mask_ratio, mode
        self.mask_token = nn.Parameter(torch.zeros(hidden))
        self.decoders = nn.ModuleDict(
            {
                m: nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, d))
                for m, d in in_dims.items()
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

    def apply(self, h: dict[str, Tensor], masks: dict[str, Tensor]) -> dict[str, Tensor]:
        return {
            m: torch.where(masks[m][:, None], self.mask_token.expand_as(x), x) for m, x in h.items()
        }

    def loss(self, h: dict[str, Tensor], x: dict[str, Tensor], masks: dict[str, Tensor]) -> Tensor:
        """Mean ``1 - cos(decoded, original)`` over masked nodes of every modality."""
        losses = []
        for m, mask in masks.items():
            if mask.any():
                rec = self.decoders[m](h[m][mask])
                losses.append(1.0 - F.cosine_similarity(rec, x[m][mask], dim=-1))
        if not losses:
            return self.mask_token.sum() * 0.0
        return torch.cat(losses).mean()
