"""M2FNet's adaptive-margin triplet loss (with its variance and covariance regularisers) as a
loss term on the per-modality node states."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ercgraph.errors import ErcgraphError
from ercgraph.losses.base import LossTerm
from ercgraph.registry import LOSSES

MINING = ("hard", "all")


def adaptive_margin(sim_ap: Tensor, sim_an: Tensor) -> Tensor:
    r"""The adaptive margin :math:`m = m_{sim} + m_{dissim}` of a triplet from its cosine
    similarities, :math:`m_{sim} = 1 + 2 e^{-4 S_{ap}}` and :math:`m_{dissim} = 1 + 2
    e^{4 S_{an} - 4}`: about 2 for an easy triplet (positive aligned, negative opposite), larger
    as the positive turns away (up to about 110) or the negative comes close (up to 5)."""
    return 2.0 + 2.0 * torch.exp(-4.0 * sim_ap) + 2.0 * torch.exp(4.0 * sim_an - 4.0)


def variance_penalty(z: Tensor, eps: float = 1e-4) -> Tensor:
    """VICReg's variance term: mean over dimensions of ``relu(1 - std)`` across the rows."""
    return F.relu(1.0 - torch.sqrt(z.var(dim=0) + eps)).mean()


def covariance_penalty(z: Tensor) -> Tensor:
    """VICReg's covariance term: squared off-diagonal covariances summed, over the dimension."""
    n, d = z.shape
    zc = z - z.mean(dim=0)
    cov = zc.T @ zc / (n - 1)
    off = cov - torch.diag(torch.diagonal(cov))
    return off.pow(2).sum() / d


def pairwise_distance(z: Tensor) -> Tensor:
    """Euclidean distances ``[n, n]``; the floor keeps the gradient of a zero distance finite."""
    return (z[:, None, :] - z[None, :, :]).pow(2).sum(-1).clamp(min=1e-12).sqrt()


@LOSSES.register("adaptive_triplet")
class AdaptiveTripletLoss(LossTerm):
    r"""M2FNet's adaptive-margin triplet loss (Chudasama et al., CVPR Workshops 2022, arXiv
    2206.02187) on each modality's node states (``out.nodes``), with labels ``batch.y``.

    For an anchor :math:`a`, a positive :math:`p` (same emotion) and a negative :math:`n`
    (another emotion), mined inside the batch among the labelled utterances where the modality is
    present, with Euclidean distances :math:`D` and cosine similarities :math:`S`:

    .. math::
        \ell = \max\bigl(0,\; D_{ap} - \tfrac12 (D_{an} + D_{pn}) + m(S_{ap}, S_{an})\bigr)

    where the margin (:func:`adaptive_margin`) grows with the hardness of the triplet and the
    distance to the negative is averaged from the anchor's and the positive's side. Optional
    VICReg-style regularisers, which the paper adds to the triplet loss when it trains its audio
    and visual extractors, keep every state dimension's standard deviation near 1
    (``variance``) and decorrelate the dimensions (``covariance``), computed on the same rows.
    The value is the mean over modalities with at least one triplet; ``None`` when no modality
    has one (no labelled rows, or a single emotion in the batch).

    Our reading: we could not consult the paper's equations; the form above (two margin parts
    of the form ``1 + 2 e^{...}``, the negative distance averaged over anchor and positive, the
    variance and covariance terms) follows a public re-implementation's reading of it. Ours
    differs there in that the margin's exponents take cosine *similarities* (so that a harder
    triplet has the larger margin; with distances in their place the margin would reward
    pulling negatives closer) and the loss is hinged at zero. Also ours: the margin is a
    constant of the step (detached), so gradients flow through the distances only; the paper
    trains separate extractors with this loss before the fusion network, whereas here it trains
    the model's own per-modality states jointly with the emotion loss.

    Args:
        mining: ``hard`` (per anchor its farthest positive and nearest negative, Hermans et
            al. 2017; cost O(n²) per modality) or ``all`` (every valid triplet, averaged;
            O(n³) memory, for small batches).
        normalize: measure distances between L2-normalised states (then distances are at most
            2 and, the margin being at least 2, the loss never reaches zero).
        modalities: the modalities to train (default: every modality of the model).
        variance: weight of the variance regulariser (0 = off).
        covariance: weight of the covariance regulariser (0 = off).
    """

    def __init__(
        self,
        mining: str = "hard",
        normalize: bool = False,
        modalities: list[str] | None = None,
        variance: float = 0.0,
        covariance: float = 0.0,
    ) -> None:
        super().__init__()
        if mining not in MINING:
            raise ErcgraphError(f"adaptive_triplet: mining must be one of {MINING}, got {mining!r}")
        if variance < 0 or covariance < 0:
            raise ErcgraphError(
                f"adaptive_triplet: variance and covariance weights must be >= 0, got "
                f"{variance} and {covariance}"
            )
        self.mining, self.normalize = mining, bool(normalize)
        self.modalities = list(modalities) if modalities is not None else None
        self.variance, self.covariance = float(variance), float(covariance)

    def triplet(self, z: Tensor, y: Tensor) -> Tensor | None:
        """Mean adaptive-margin triplet loss of states ``z`` [n, d] with labels ``y`` [n]."""
        unit = F.normalize(z, dim=-1)
        dist = pairwise_distance(unit if self.normalize else z)
        sim = (unit @ unit.T).detach()
        same = y[:, None] == y[None, :]
        eye = torch.eye(len(y), dtype=torch.bool, device=y.device)
        pos, neg = same & ~eye, ~same
        anchors = pos.any(1) & neg.any(1)
        if not bool(anchors.any()):
            return None
        if self.mining == "hard":
            a = anchors.nonzero().view(-1)
            p = dist.detach().masked_fill(~pos, -1.0)[a].argmax(1)
            n = dist.detach().masked_fill(~neg, float("inf"))[a].argmin(1)
            gap = dist[a, p] - 0.5 * (dist[a, n] + dist[p, n])
            return F.relu(gap + adaptive_margin(sim[a, p], sim[a, n])).mean()
        valid = pos[:, :, None] & neg[:, None, :]  # [a, p, n]
        gap = dist[:, :, None] - 0.5 * (dist[:, None, :] + dist[None, :, :])
        margin = adaptive_margin(sim[:, :, None], sim[:, None, :])
        return F.relu(gap + margin)[valid].mean()

    def forward(self, out: Any, batch: Any) -> Tensor | None:
        names = self.modalities if self.modalities is not None else list(out.nodes)
        unknown = [m for m in names if m not in out.nodes]
        if unknown:
            raise ErcgraphError(
                f"adaptive_triplet: modalities {unknown} are not modalities of the model; "
                f"it has {list(out.nodes)}"
            )
        labelled = batch.y >= 0
        values = []
        for m in names:
            keep = labelled & out.present[m]
            z, y = out.nodes[m][keep], batch.y[keep]
            value = self.triplet(z, y)
            if value is None:
                continue
            if self.variance:
                value = value + self.variance * variance_penalty(z)
            if self.covariance:
                value = value + self.covariance * covariance_penalty(z)
            values.append(value)
        if not values:
            return None
        return torch.stack(values).mean()

    def extra_repr(self) -> str:
        return (
            f"mining={self.mining!r}, normalize={self.normalize}, modalities={self.modalities}, "
            f"variance={self.variance}, covariance={self.covariance}"
        )
