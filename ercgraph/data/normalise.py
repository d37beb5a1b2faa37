"""A train-fit standardiser between the FeatureStore and the graphs.

Per modality, the mean and standard deviation of every feature dimension are fitted on the
**training split's present rows only**, with a floor on the std so constant dimensions stay
finite (as fairseq's global CMVN does). The statistics are saved as safetensors in the run
directory, never as a pickle, and ``evaluate`` and ``predict`` apply the saved ones.

``features.normalise: speaker`` is speaker normalisation, the standard remedy for speaker
variability in speaker-independent emotion recognition (e.g. Busso, Mariooryad, Metallinou and
Narayanan, "Iterative feature normalization scheme for automatic emotion detection from
speech", IEEE TAC 2013, and the per-speaker z-normalisation common in SER work). Every speaker
with at least ``speaker_min`` utterances carrying a modality is standardised by the mean and
std of **their own** utterances in the data being processed; rarer speakers get the training
statistics. It uses features only, never labels, but it is transductive: a held-out speaker's
statistics come from that speaker's own (unlabelled) test utterances, as in the cited work. It
helps most where every speaker covers the emotions alike (acted corpora such as RAVDESS); with
few utterances per speaker (new conversations at ``predict``) it falls back to ``standard``, and
says so in the log. Speaker names must name people: names that are positions (``spk0``/``spk1``,
or ``M``/``F`` as some feature pickles give them) would pool everyone in that position, and a
warning says so when one name speaks in more than half of the dialogues.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ercgraph.data.features import FeatureStore, atomic_write_bytes
from ercgraph.errors import ErcgraphError

log = logging.getLogger(__name__)

STD_FLOOR = 1e-5
#: the largest magnitude a saved statistic or weight of a float32 model may have: the square
#: root of float32's largest value (about 1.8e19), beyond which a square (a variance, a
#: LayerNorm, a dot product of two such values) overflows to infinity. No feature statistic or
#: trained weight comes near it; a value beyond it is tampering or corruption.
MAX_MAGNITUDE = float(np.sqrt(np.finfo(np.float32).max))


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
            # in row blocks: never a float64 copy of the training split in memory
            mean[m], std[m] = _blockwise_moments(x, rows)
            std[m] = std[m].clamp(min=floor)
        return cls(mean, std)

    def apply(
        self, store: FeatureStore, speakers: Sequence[str] | None = None, speaker_min: int = 10
    ) -> FeatureStore:
        """A new store with standardised features (missing rows stay as they were: zeros).

        Args:
            store: the features, one row per utterance.
            speakers: with ``features.normalise: speaker``, each row's speaker; a speaker with at
                least ``speaker_min`` present rows of a modality is standardised by their own
                statistics, every other row by the fitted (training) ones.
            speaker_min: the fewest present rows that give a speaker their own statistics.
        """
        if speakers is not None and len(speakers) != store.num_rows():
            raise ErcgraphError(
                f"speaker normalisation: {len(speakers)} speakers for {store.num_rows()} rows"
            )
        self.check(store)
        feats = {}
        for m, x in store.features.items():
            z = (x - self.mean[m]) / self.std[m]
            if speakers is not None:
                z = _per_speaker(x, z, store.present[m].bool(), speakers, speaker_min, m)
            feats[m] = torch.where(store.present[m].bool()[:, None], z, torch.zeros_like(z))
        return FeatureStore(feats, dict(store.present), dict(store.manifest))

    def check(self, store: FeatureStore) -> None:
        """Refuse a store with a modality or dimension these statistics were not fitted on."""
        for m, x in store.features.items():
            if m not in self.mean:
                raise ErcgraphError(f"the normaliser has no statistics for modality {m!r}")
            if self.mean[m].numel() != x.shape[1]:
                raise ErcgraphError(
                    f"the normaliser for {m!r} was fitted on {self.mean[m].numel()}-d features, "
                    f"these are {x.shape[1]}-d"
                )

    def transforms(self, store: FeatureStore) -> dict[str, tuple[Tensor, Tensor]]:
        """``modality → (mean, std)`` for the graphs to apply as they gather rows (checked)."""
        self.check(store)
        return {m: (self.mean[m], self.std[m]) for m in store.modalities}

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
        for m in mean:
            mean[m], std[m] = _check_stats(path, m, mean[m], std[m])
        return cls(mean, std)


def _check_stats(path: Path, modality: str, mean: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
    """Refuse saved statistics that would make the standardised features NaN, infinite or
    overflowing (a NaN or infinite value, one beyond :data:`MAX_MAGNITUDE`, a std that is not
    positive or lies below the :data:`STD_FLOOR` every fit applies) or that do not pair up.

    Returns:
        ``(mean, std)`` as float32, the features' dtype (a float64 or float16 file is
        converted once its values are known to fit).
    """
    for name, t in ((f"mean/{modality}", mean), (f"std/{modality}", std)):
        if t.dim() != 1 or not t.is_floating_point():
            raise ErcgraphError(
                f"normaliser {str(path)!r}: {name} must be a 1-d float tensor, got "
                f"{t.dtype} of shape {list(t.shape)}"
            )
        if not bool(torch.isfinite(t).all()):
            raise ErcgraphError(f"normaliser {str(path)!r}: {name} holds NaN or infinite values")
        big = int((t.double().abs() > MAX_MAGNITUDE).sum())
        if big:
            raise ErcgraphError(
                f"normaliser {str(path)!r}: {name} holds {big} value(s) beyond ±{MAX_MAGNITUDE:.3g}"
                " (no feature statistic is that large; standardising with it overflows)"
            )
    mean, std = mean.float(), std.float()
    if mean.numel() != std.numel():
        raise ErcgraphError(
            f"normaliser {str(path)!r}: mean/{modality} has {mean.numel()} values but "
            f"std/{modality} has {std.numel()}"
        )
    if not bool((std > 0).all()):
        raise ErcgraphError(
            f"normaliser {str(path)!r}: std/{modality} holds {int((std <= 0).sum())} value(s) "
            "<= 0 (a standard deviation is positive)"
        )
    tiny = int((std < torch.tensor(STD_FLOOR, dtype=torch.float32)).sum())
    if tiny:
        raise ErcgraphError(
            f"normaliser {str(path)!r}: std/{modality} holds {tiny} value(s) below {STD_FLOOR:g}, "
            "the floor every fit applies (dividing by it overflows the standardised features)"
        )
    return mean, std


def _blockwise_moments(x: Tensor, rows: Tensor, block: int = 1024) -> tuple[Tensor, Tensor]:
    """Mean and (population) std of ``x[rows]`` in two passes over row blocks, in float64."""
    n = int(rows.sum())
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    for lo in range(0, x.shape[0], block):
        total += x[lo : lo + block][rows[lo : lo + block]].double().sum(0)
    mean = total / n
    sq = torch.zeros_like(total)
    for lo in range(0, x.shape[0], block):
        sq += (x[lo : lo + block][rows[lo : lo + block]].double() - mean).pow(2).sum(0)
    return mean.float(), (sq / n).sqrt().float()


def _per_speaker(
    x: Tensor,
    z: Tensor,
    present: Tensor,
    speakers: Sequence[str],
    speaker_min: int,
    modality: str,
) -> Tensor:
    """``z`` with the rows of every speaker who has ``speaker_min`` present rows replaced by
    their own standardisation (std floored like the training statistics). Rows that keep the
    training statistics are logged, per modality."""
    _, codes = np.unique(np.asarray(speakers, dtype=str), return_inverse=True)
    out = z.clone()
    fallback_rows, fallback_speakers = 0, []
    for code in np.unique(codes):
        rows = torch.from_numpy(codes == code) & present
        n = int(rows.sum())
        if n < max(speaker_min, 2):
            if n:
                fallback_rows += n
                fallback_speakers.append(speakers[int(np.flatnonzero(codes == code)[0])])
            continue
        xs = x[rows].double()
        mean, std = xs.mean(0), xs.std(0, unbiased=False).clamp(min=STD_FLOOR)
        out[rows] = ((xs - mean) / std).float()
    if fallback_rows:
        log.warning(
            "speaker normalisation (%s): %d utterance(s) of %d speaker(s) with fewer than "
            "features.speaker_min=%d utterances of it use the training statistics instead of "
            "their own (e.g. %s)",
            modality,
            fallback_rows,
            len(fallback_speakers),
            speaker_min,
            ", ".join(map(repr, fallback_speakers[:3])),
        )
    return out


def positional_speakers(dialogues: Sequence[str], speakers: Sequence[str]) -> str | None:
    """A speaker name that looks positional rather than personal (``spk0``, ``M``/``F`` in
    feature pickles): one that speaks in more than half of at least 20 dialogues. Speaker
    normalisation would pool everyone behind such a name; the caller warns. None otherwise."""
    import pandas as pd

    pairs = pd.DataFrame({"d": list(dialogues), "s": list(speakers)}).drop_duplicates()
    n = pairs["d"].nunique()
    if n < 20:
        return None
    share = pairs["s"].value_counts() / n
    if share.iloc[0] > 0.5:
        return f"{share.index[0]!r} speaks in {100 * share.iloc[0]:.0f}% of {n} dialogues"
    return None
