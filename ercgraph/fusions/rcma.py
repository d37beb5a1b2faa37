"""Recursive cross-modal attention (RCMA) fusion of the modality states of each utterance."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ercgraph.errors import ErcgraphError
from ercgraph.fusions.base import Fusion, stack
from ercgraph.registry import FUSIONS

COMBINE = ("concat", "mean")


class CrossModalStep(nn.Module):
    r"""One cross-modal attention step for every modality (one recursion of RCMA).

    For modality :math:`m`, the joint representation of the others is the projection of their
    masked concatenation, :math:`J_m = W^J_m [p_k h_k]_{k \ne m}` (no bias, so a missing
    modality adds exactly nothing). Per head, the cross-correlation of :math:`h_m` with
    :math:`J_m` is :math:`c = \tanh(q \cdot k / \sqrt{d_h})` with :math:`q = W^Q_m h_m`,
    :math:`k = W^K_m J_m`; the attended output is :math:`W^O_m \mathrm{ReLU}([c\, v]_{heads})`
    with :math:`v = W^V_m J_m`, and it is zero where no other modality is present.
    """

    def __init__(self, modalities: list[str], dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.modalities = modalities
        self.heads = heads
        n_other = len(modalities) - 1
        self.joint = nn.ModuleDict(
            {m: nn.Linear(n_other * dim, dim, bias=False) for m in modalities}
        )
        self.query = nn.ModuleDict({m: nn.Linear(dim, dim) for m in modalities})
        self.key = nn.ModuleDict({m: nn.Linear(dim, dim, bias=False) for m in modalities})
        self.value = nn.ModuleDict({m: nn.Linear(dim, dim, bias=False) for m in modalities})
        self.out = nn.ModuleDict({m: nn.Linear(dim, dim) for m in modalities})
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x`` ``[N, M, d]`` states, ``mask`` ``[N, M, 1]`` float presence → ``[N, M, d]``."""
        n, num, d = x.shape
        dh = d // self.heads
        masked = x * mask
        updates = []
        for i, m in enumerate(self.modalities):
            others = [j for j in range(num) if j != i]
            joint = self.joint[m](masked[:, others].flatten(1))  # [N, d]
            q = self.query[m](x[:, i]).view(n, self.heads, dh)
            k = self.key[m](joint).view(n, self.heads, dh)
            v = self.value[m](joint).view(n, self.heads, dh)
            corr = torch.tanh((q * k).sum(-1, keepdim=True) / math.sqrt(dh))  # [N, heads, 1]
            attended = self.out[m](torch.relu(corr * v).flatten(1))
            any_other = mask[:, others].amax(1)  # [N, 1]: 0 when no other modality is present
            updates.append(self.dropout(attended) * any_other)
        return x + torch.stack(updates, dim=1)


@FUSIONS.register("rcma")
class RCMAFusion(Fusion):
    r"""Recursive cross-modal attention (Praveen et al., "Recursive Cross-Modal Attention for
    Multimodal Fusion in Dimensional Emotion Recognition", CVPR Workshops (ABAW) 2024).

    Each modality attends to the joint representation of the *other* modalities (the projection
    of their concatenation), the attended output is added back to it (residual), and the step
    repeats ``iterations`` times, every step reading the previous step's outputs of all
    modalities. The modality outputs are then combined into one vector per utterance.

    Our reading, where the paper works on time windows of one clip and we work on utterances:
    RCMA's attention weights are cross-correlations between a modality's features and the joint
    features over the frames of a window; here the attention is within one utterance, across
    its modality tokens, and temporal context comes from the model below (the ``rcma`` body's
    temporal convolutions). The correlation keeps RCMA's form, a ``tanh`` of a scaled dot
    product (per head, :class:`CrossModalStep`) rather than a softmax, so that it still weighs
    the joint representation when it is a single token (two modalities). The paper writes the
    recursion with per-iteration weights :math:`W^{(l)}`; that is our default
    (``share_weights: false``), ``share_weights: true`` reuses one step's weights.

    Missing modalities (``present`` False) never contribute: they are zeroed in every joint
    representation and in the combination, and a modality whose others are all missing keeps
    its state. With one modality there is nothing to attend to and the fusion is the
    combination alone.

    Args:
        modalities: the modality names.
        dim: the size of each modality's node state.
        iterations: number of recursive attention steps (0 = combination only).
        heads: correlation heads (``dim`` must be a multiple).
        share_weights: one set of attention weights for all iterations.
        combine: ``concat`` (the masked concatenation projected back to ``dim``, RCMA's
            concatenation before its regressor) or ``mean`` (masked mean).
        dropout: dropout on each attended output.

    Shapes:
        input: ``h[m]`` ``[N, dim]`` and ``present[m]`` bool ``[N]``.
        output: ``[N, dim]`` (``out_dim`` = ``dim`` for both ``combine`` choices).
    """

    def __init__(
        self,
        modalities: list[str],
        dim: int,
        iterations: int = 2,
        heads: int = 4,
        share_weights: bool = False,
        combine: str = "concat",
        dropout: float = 0.0,
    ) -> None:
        super().__init__(modalities, dim)
        if iterations < 0:
            raise ErcgraphError(f"rcma fusion: iterations must be >= 0, got {iterations}")
        if heads < 1 or dim % heads:
            raise ErcgraphError(
                f"rcma fusion: dim={dim} must be a multiple of heads={heads} (set model.hidden "
                "or the fusion's heads)"
            )
        if combine not in COMBINE:
            raise ErcgraphError(f"rcma fusion: combine must be one of {COMBINE}, got {combine!r}")
        self.iterations = iterations
        self.heads = heads
        self.share_weights = share_weights
        self.combine = combine
        self.dropout = dropout
        n_steps = 0 if len(self.modalities) < 2 else 1 if share_weights else iterations
        self.steps = nn.ModuleList(
            CrossModalStep(self.modalities, dim, heads, dropout) for _ in range(n_steps)
        )
        self.project = nn.Linear(len(self.modalities) * dim, dim) if combine == "concat" else None

    def forward(self, h: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        x, mask = stack(h, present, self.modalities)  # [N, M, d], [N, M, 1]
        if self.steps:
            for i in range(self.iterations):
                x = self.steps[0 if self.share_weights else i](x, mask)
        if self.project is not None:
            return self.project((x * mask).flatten(1))
        return (x * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, iterations={self.iterations}, heads={self.heads}, "
            f"share_weights={self.share_weights}, combine={self.combine!r}, "
            f"dropout={self.dropout}"
        )
