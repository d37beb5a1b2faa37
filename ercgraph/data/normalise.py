"""A train-fit standardiser between the FeatureStore and the graphs.

Per modality, the mean and standard deviation of every feature dimension are fitted on the
**training split's present rows only**, with a floor on the std so constant dimensions stay
finite (as fairseq's global CMVN does). The statistics are saved as safetensors in the run
directory, never as a pickle, and ``evaluate`` and ``predict`` apply the saved ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from ercgraph.data.features import FeatureStore, atomic_write_bytes
from ercgraph.errors import ErcgraphError

STD_FLOOR = 1e-5


@dataclass
class Standardiser:
    """Per-modality ``(x - mean) / max(std, floor)``.

    Args:
        mean: modality → ``[dim]``.
        std: modality → ``[dim]`` (already floored).
    """

    mean: dict[str, Tensor] = field(default_factory=dict)
    std: dict[str, Tensor] = field(default_factory=dict)

    @classmethod
    def fit(cls, store: FeatureStore, train_rows: Tensor, floor: float = STD_FLOOR) -> Standardiser:
        """Fit on ``train_rows`` (bool ``[N]`` or row indices) where each modality is present."""
        if train_rows.dtype != torch.bool:
            mask = torch.zeros(store.num_rows(), dtype=torch.bool)
            mask[train_rows] = True
            train_rows = mask
        mean, std = {}, {}
        for m, x in store.features.items():
            rows = train_rows & store.present[m].bool()
            if int(rows.sum()) < 2:
                raise ErcgraphError(
                    f"cannot fit the feature normaliser for modality {m!r}: fewer than 2 training "
                    "utterances have it (set features.normalise: none)"
                )
            xs = x[rows].double()
            mean[m] = xs.mean(0).float()
            std[m] = xs.std(0, unbiased=False).clamp(min=floor).float()
        return cls(mean, std)

    def apply(self, store: FeatureStore) -> FeatureStore:
        """A new store with standardised features (missing rows stay as they were: zeros)."""
        feats = {}
        for m, x in store.features.items():
            if m not in self.mean:
                raise ErcgraphError(f"the normaliser has no statistics for modality {m!r}")
            if self.mean[m].numel() != x.shape[1]:
                raise ErcgraphError(
                    f"the normaliser for {m!r} was fitted on {self.mean[m].numel()}-d features, "
                    f"these are {x.shape[1]}-d"
                )
            z = (x - self.mean[m]) / self.std[m]
            feats[m] = torch.where(store.present[m].bool()[:, None], z, torch.zeros_like(z))
        return FeatureStore(feats, dict(store.present), dict(store.manifest))

    def save(self, path: Path) -> None:
        from safetensors.torch import save

        tensors = {f"mean/{m}": v.contiguous() for m, v in self.mean.items()}
        tensors.update({f"std/{m}": v.contiguous() for m, v in self.std.items()})
        atomic_write_bytes(path, save(tensors))

    @classmethod
    def load(cls, path: Path) -> Standardiser:
        from safetensors.torch import load

        try:
            tensors = load(path.read_bytes())
        except Exception as exc:
            raise ErcgraphError(f"normaliser {str(path)!r} is missing or corrupt: {exc}") from exc
        mean = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith("mean/")}
        std = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith("std/")}
        if set(mean) != set(std) or not mean:
            raise ErcgraphError(f"normaliser {str(path)!r} is incomplete")
        return cls(mean, std)
