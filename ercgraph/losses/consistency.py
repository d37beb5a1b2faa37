"""Text-ERC training objectives that read more than one row at a time: R-Drop consistency and a
supervised contrastive (SPCL-style) loss.

Both are plain loss terms, so they serve the graph trainer and the text-encoder fine-tuning alike
(``loss:`` and ``features.text.finetune.loss:``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ercgraph.errors import ErcgraphError
from ercgraph.losses.base import LossTerm
from ercgraph.registry import LOSSES


@LOSSES.register("rdrop")
class RDropLoss(LossTerm):
    """R-Drop (Liang et al., 2021): the symmetric KL divergence between the emotion
    distributions of two forward passes of the same batch under different dropout masks.

    ``VIEWS = 2`` asks the trainer for the second pass; it arrives as ``out.aux["logits_view2"]``.
    Our reading of the paper: the classification terms score the first pass only and this term
    adds ``(KL(p1 || p2) + KL(p2 || p1)) / 2`` averaged over every row (labelled or not, since
    consistency needs no label); the paper's ``alpha`` is this term's ``weight``. Outside
    training (one pass) the term returns None.
    """

    REQUIRES = ("logits",)
    VIEWS = 2

    def forward(self, out: Any, batch: Any) -> Tensor | None:
        second = out.aux.get("logits_view2")
        if second is None or out.logits is None or out.logits.numel() == 0:
            return None
        lp, lq = F.log_softmax(out.logits.float(), -1), F.log_softmax(second.float(), -1)
        kl_pq = F.kl_div(lq, lp, log_target=True, reduction="none").sum(-1)
        kl_qp = F.kl_div(lp, lq, log_target=True, reduction="none").sum(-1)
        return 0.5 * (kl_pq + kl_qp).mean()


@LOSSES.register("supcon")
class SupervisedContrastiveLoss(LossTerm):
    """Supervised contrastive loss (Khosla et al., 2020) on the utterance representations, the
    core of SPCL (Song et al., 2022) without its curriculum.

    Rows are L2-normalised ``out.utterance`` vectors of the labelled rows in the batch; for each
    anchor the positives are the other rows of its class, and the loss is
    ``-mean_p log(exp(s_ap / t) / sum_{k != a} exp(s_ak / t))``, averaged over anchors that have
    a positive. With ``prototypes: true`` each class also keeps a running-mean prototype
    (momentum 0.9, updated from the batch, not a parameter) that joins every batch as one more
    row, so minority classes rarely present in a batch still get a positive; this is our reading
    of SPCL's prototype term. A batch without a positive pair returns None.

    Args:
        num_classes: number of emotion classes (given by the trainer).
        temperature: the softmax temperature ``t``.
        prototypes: add the class prototypes as extra rows.
    """

    REQUIRES = ("utterance",)

    def __init__(self, num_classes: int, temperature: float = 0.1, prototypes: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ErcgraphError(f"loss supcon: temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.use_prototypes = bool(prototypes)
        self.num_classes = int(num_classes)
        self.register_buffer("prototypes", torch.zeros(0), persistent=False)

    def forward(self, out: Any, batch: Any) -> Tensor | None:
        labelled = batch.y >= 0
        if int(labelled.sum()) < 1:
            return None
        z = F.normalize(out.utterance[labelled].float(), dim=-1)
        y = batch.y[labelled]
        if self.use_prototypes:
            z, y = self._with_prototypes(z, y)
        n = len(y)
        if n < 2:
            return None
        sim = z @ z.T / self.temperature
        self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
        sim = sim.masked_fill(self_mask, float("-inf"))
        log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
        pos = (y[:, None] == y[None, :]) & ~self_mask
        has = pos.any(1)
        if not bool(has.any()):
            return None
        log_prob = log_prob.masked_fill(~pos, 0.0)
        per_anchor = log_prob.sum(1)[has] / pos.sum(1)[has]
        return -per_anchor.mean()

    def _with_prototypes(self, z: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if self.prototypes.numel() == 0:
            self.prototypes = torch.zeros(self.num_classes, z.shape[1], device=z.device)
        protos = self.prototypes.to(z.device)
        if self.training:
            with torch.no_grad():
                for c in torch.unique(y).tolist():
                    mean = z[y == c].mean(0)
                    seen = protos[c].abs().sum() > 0
                    protos[c] = F.normalize(0.9 * protos[c] + 0.1 * mean if seen else mean, dim=0)
                self.prototypes = protos
        known = protos.abs().sum(1) > 0
        ids = torch.arange(self.num_classes, device=z.device)[known]
        return torch.cat([z, protos[known].detach()]), torch.cat([y, ids])
