"""Gated fusion: a learned, per-utterance weighting of the modality states."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ercgraph.fusions.base import Fusion, stack
from ercgraph.registry import FUSIONS


@FUSIONS.register("gated")
class GatedFusion(Fusion):
    r"""Gated fusion of the modality states of each utterance.

    Each modality state :math:`h_m` gets a gate score per feature dimension,
    :math:`s_m = V_m \tanh(W_m h_m)` (a small per-modality gate network); the scores are
    soft-maxed over the modalities present for that utterance, separately for every dimension,
    and weight the states, :math:`\sum_m \alpha_m \odot h_m`. With one modality present the
    output is that modality's state. Our reading of the gated multimodal unit (Arevalo et al.,
    2017) generalised to any number of modalities: a per-dimension gate lets the model keep
    dimensions of several modalities at once, where a scalar gate tends to pick one modality.

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
                m: nn.Sequential(
                    nn.Linear(dim, gate_hidden), nn.Tanh(), nn.Linear(gate_hidden, dim)
                )
                for m in self.modalities
            }
        )

    def forward(self, h: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        x, mask = stack(h, present, self.modalities)  # [N, M, d], [N, M, 1]
        scores = torch.stack([self.gates[m](h[m]) for m in self.modalities], dim=1)  # [N, M, d]
        scores = scores.masked_fill(mask == 0, float("-inf"))
        alpha = torch.softmax(scores, dim=1).nan_to_num(0.0)  # no modality present: all zero
        return (alpha * x).sum(1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gate_hidden={self.gate_hidden}"
