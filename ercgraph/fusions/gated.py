"""Gated fusion: a learned, per-utterance weighting of the modality states."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ercgraph.fusions.base import Fusion, stack
from ercgraph.registry import FUSIONS


@FUSIONS.register("gated")
class GatedFusion(Fusion):
    r"""Gated fusion of the modality states of each utterance.

    Each modality state :math:`h_m` gets a scalar score :math:`s_m = w_m^\top \tanh(W_m h_m)`
    (a small per-modality gate network); the scores are soft-maxed over the modalities present for
    that utterance and weight the states, :math:`\sum_m \alpha_m h_m`. With one modality present
    the output is that modality's state. Our reading of the gated multimodal units used across
    the ERC literature (e.g. Arevalo et al., 2017), as a per-utterance attention over modalities.

    Args:
        modalities: the modality names.
        dim: the size of each modality's node state.
        gate_hidden: hidden size of each gate network.
    """

    def __init__(self, modalities: list[str], dim: int, gate_hidden: int = 64) -> None:
        super().__init__(modalities, dim)
        self.gate_hidden = gate_hidden
        self.gates = nn.ModuleDict(
            {
                m: nn.Sequential(nn.Linear(dim, gate_hidden), nn.Tanh(), nn.Linear(gate_hidden, 1))
                for m in self.modalities
            }
        )

    def forward(self, h: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        x, mask = stack(h, present, self.modalities)  # [N, M, d], [N, M, 1]
        scores = torch.cat([self.gates[m](h[m]) for m in self.modalities], dim=1)  # [N, M]
        scores = scores.masked_fill(mask.squeeze(-1) == 0, float("-inf"))
        alpha = torch.softmax(scores, dim=1).nan_to_num(0.0)  # no modality present: all zero
        return (alpha.unsqueeze(-1) * x).sum(1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gate_hidden={self.gate_hidden}"
