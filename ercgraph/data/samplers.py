"""Dialogue-level training samplers, chosen by name from :data:`ercgraph.registry.SAMPLERS`.

A sampler is built as ``cls(dialogue_labels, num_classes, generator, **options)`` where
``dialogue_labels`` holds one label tensor per training dialogue (``-1`` = unlabelled), and yields
dialogue indices for one epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import Sampler

from ercgraph.errors import ErcgraphError
from ercgraph.registry import SAMPLERS


@SAMPLERS.register("random")
class RandomDialogueSampler(Sampler[int]):
    """Every training dialogue once per epoch, in a random order (the default)."""

    def __init__(
        self,
        dialogue_labels: list[Tensor],
        num_classes: int,
        generator: torch.Generator | None = None,
    ) -> None:
        self.n = len(dialogue_labels)
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        yield from torch.randperm(self.n, generator=self.generator).tolist()

    def __len__(self) -> int:
        return self.n


@SAMPLERS.register("class_aware")
class ClassAwareDialogueSampler(Sampler[int]):
    """Draw dialogues with replacement, weighted by the rarest emotion they contain.

    A dialogue whose rarest label (by training-split utterance count) is class ``c`` gets weight
    ``(1 / n_c) ** (1 / temperature)``: ``temperature=1`` is inverse frequency of that class, a
    large temperature tends to uniform sampling. Our reading of dialogue-level class-aware
    sampling: whole dialogues are resampled, so the graph context of a minority utterance is kept.

    Args:
        dialogue_labels: one label tensor per training dialogue.
        num_classes: number of classes.
        generator: random generator (seeded by the trainer).
        temperature: > 0; higher = closer to uniform.
        num_samples: dialogues per epoch (default: the number of dialogues).
    """

    def __init__(
        self,
        dialogue_labels: list[Tensor],
        num_classes: int,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        num_samples: int | None = None,
    ) -> None:
        if temperature <= 0:
            raise ErcgraphError(f"sampler.options.temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.generator = generator
        self.num_samples = num_samples or len(dialogue_labels)
        lengths = torch.tensor([len(y) for y in dialogue_labels])
        flat = torch.cat(dialogue_labels) if dialogue_labels else torch.empty(0, dtype=torch.long)
        counts = torch.bincount(flat[flat >= 0], minlength=num_classes).float()
        # per utterance: count of its class (inf when unlabelled), then min per dialogue
        per_utt = torch.where(flat >= 0, counts[flat.clamp(min=0)], torch.tensor(float("inf")))
        dia = torch.repeat_interleave(torch.arange(len(dialogue_labels)), lengths)
        rarest = torch.full((len(dialogue_labels),), float("inf")).scatter_reduce(
            0, dia, per_utt, reduce="amin"
        )
        rarest = torch.where(torch.isinf(rarest), counts.max().clamp(min=1.0), rarest)
        self.weights = rarest.clamp(min=1.0).reciprocal().pow(1.0 / temperature)

    def __iter__(self) -> Iterator[int]:
        yield from torch.multinomial(
            self.weights, self.num_samples, replacement=True, generator=self.generator
        ).tolist()

    def __len__(self) -> int:
        return self.num_samples
