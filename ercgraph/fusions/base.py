"""Fusion: how the modality nodes of one utterance become one vector.

A fusion is built as ``cls(modalities, dim, **options)`` and called as ``fusion(h, present)``
with ``h[m]`` ``[N, dim]`` node states and ``present[m]`` bool ``[N]``; it returns ``[N, out_dim]``
and tells the next layer its size through ``out_dim`` (as PyG's aggregation resolver does).
Missing modalities (``present`` False) never contribute.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ercgraph.registry import FUSIONS


class Fusion(nn.Module):
    """Base class of the ``FUSIONS`` registry.

    Args:
        modalities: the modality names, in the order the model uses.
        dim: the size of each modality's node state.
    """

    def __init__(self, modalities: list[str], dim: int) -> None:
        super().__init__()
        self.modalities = list(modalities)
        self.dim = dim
        #: tensors the last forward reports to the loss terms (the joint VAE's KL, ...); the
        #: model copies them into its output's ``aux`` with :func:`merge_fusion_aux`
        self.aux: dict[str, Tensor] = {}

    @property
    def out_dim(self) -> int:
        return self.dim

    def forward(self, h: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"modalities={self.modalities}, dim={self.dim}"


def merge_fusion_aux(aux: dict[str, Tensor], *fusions: nn.Module) -> dict[str, Tensor]:
    """Add what fusions report (``fusion.aux``, e.g. the VAE's terms) to a model output's aux,
    summing a key two fusions both report."""
    for fusion in fusions:
        for k, v in getattr(fusion, "aux", {}).items():
            aux[k] = aux[k] + v if k in aux else v
    return aux


def stack(h: dict[str, Tensor], present: dict[str, Tensor], modalities: list[str]):
    """``[N, M, d]`` states and the ``[N, M, 1]`` float presence mask."""
    x = torch.stack([h[m] for m in modalities], dim=1)
    mask = torch.stack([present[m] for m in modalities], dim=1).unsqueeze(-1).to(x.dtype)
    return x, mask


@FUSIONS.register("mean")
class MeanFusion(Fusion):
    """Mean over the modalities present for each utterance (the default)."""

    def forward(self, h: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        x, mask = stack(h, present, self.modalities)
        return (x * mask).sum(1) / mask.sum(1).clamp(min=1.0)


@FUSIONS.register("concat")
class ConcatFusion(Fusion):
    """Concatenation of the modality states in a fixed order; a missing modality is zeros.

    ``out_dim`` is ``len(modalities) * dim``.
    """

    @property
    def out_dim(self) -> int:
        return self.dim * len(self.modalities)

    def forward(self, h: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        x, mask = stack(h, present, self.modalities)
        return (x * mask).flatten(1)
