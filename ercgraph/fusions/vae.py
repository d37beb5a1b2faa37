"""Deep joint VAE fusion (CBERL's second part, Meng et al., arXiv 2312.06337), as we read it.

Each modality's node state is encoded to a Gaussian ``N(mu_m, sigma_m^2)`` over a shared latent;
the joint posterior is their product of experts with a standard normal prior expert
(precision-weighted means), so a missing modality simply contributes no expert and an utterance
with none falls back to the prior. Training samples ``z`` from the joint posterior
(reparameterised), evaluation uses its mean; ``z`` goes through a linear layer to the fused
utterance vector the heads read. Per-modality decoders reconstruct every present modality's
state from ``z``.

The paper does not pin these choices down; ours: product of experts (it handles a missing
modality without imputation), linear encoders and decoders, reconstruction of the detached node
states by mean squared error, and the KL to ``N(0, I)`` averaged over utterances and latent
dimensions (so its scale does not grow with the latent size). The experts' log-variances start
at -4: with unit-variance experts at initialisation the prior halves every mean and the sampled
noise drowns the signal, and in our first MELD runs (KL summed over dimensions) the posterior
collapsed to the prior and the classifier to the majority class. Both terms reach the
objective through the ``vae`` loss term (:class:`VAELoss`): ``reconstruction + beta * KL``, read
from the model output's ``aux`` (``vae/kl``, ``vae/reconstruction``; summed when a model holds
two such fusions). With one modality it is a plain VAE over that modality's states.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ercgraph.errors import ErcgraphError
from ercgraph.fusions.base import Fusion
from ercgraph.losses.base import LossTerm
from ercgraph.registry import FUSIONS, LOSSES


@FUSIONS.register("joint_vae")
class JointVAEFusion(Fusion):
    """Product-of-experts joint VAE over the modality states (see the module docstring).

    Args:
        modalities: the modality names.
        dim: each modality's state size (and the output size).
        latent: the latent size (default: ``dim``).
    """

    def __init__(self, modalities: list[str], dim: int, latent: int | None = None) -> None:
        super().__init__(modalities, dim)
        self.latent = int(latent or dim)
        if self.latent < 1:
            raise ErcgraphError(f"joint_vae fusion: latent must be >= 1, got {latent}")
        self.encode = nn.ModuleDict({m: nn.Linear(dim, 2 * self.latent) for m in modalities})
        for enc in self.encode.values():  # experts start confident (variance e^-4), so the
            nn.init.constant_(enc.bias[self.latent :], -4.0)  # sampled z starts informative
        self.decode = nn.ModuleDict({m: nn.Linear(self.latent, dim) for m in modalities})
        self.out = nn.Linear(self.latent, dim)

    def forward(self, h: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        first = h[self.modalities[0]]
        precision = torch.ones(first.shape[0], self.latent, device=first.device)  # the prior
        weighted = torch.zeros_like(precision)
        for m in self.modalities:
            mu, logvar = self.encode[m](h[m]).chunk(2, dim=-1)
            p = torch.exp(-logvar.clamp(-10.0, 10.0)) * present[m].to(mu.dtype)[:, None]
            precision = precision + p
            weighted = weighted + p * mu
        mean, var = weighted / precision, precision.reciprocal()
        z = mean + var.sqrt() * torch.randn_like(mean) if self.training else mean
        kl = 0.5 * (var + mean.pow(2) - 1.0 - var.log()).mean()  # per latent dimension
        errors = []
        for m in self.modalities:
            keep = present[m]
            if bool(keep.any()):
                rec = self.decode[m](z[keep])
                errors.append((rec - h[m][keep].detach()).pow(2).mean(-1))
        recon = torch.cat(errors).mean() if errors else kl.new_zeros(())
        self.aux = {"vae/kl": kl, "vae/reconstruction": recon}
        return self.out(z)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, latent={self.latent}"


@LOSSES.register("vae")
class VAELoss(LossTerm):
    """The joint VAE's negative ELBO: ``reconstruction + beta * KL`` (``joint_vae`` fusion).

    Args:
        beta: weight of the KL term (>= 0).
    """

    #: the fusion whose outputs this term reads (checked with the config, before any work)
    REQUIRES_FUSION = "joint_vae"

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        if beta < 0:
            raise ErcgraphError(f"loss vae: beta must be >= 0, got {beta}")
        self.beta = beta

    def forward(self, out: Any, batch: Any) -> Tensor | None:
        if "vae/kl" not in out.aux:
            raise ErcgraphError(
                "loss term 'vae' reads the joint_vae fusion's terms, which this model's output "
                "does not hold; set model.fusion: joint_vae"
            )
        return out.aux["vae/reconstruction"] + self.beta * out.aux["vae/kl"]

    def extra_repr(self) -> str:
        return f"beta={self.beta}"
