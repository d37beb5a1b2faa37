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


@SAMPLERS.register("two_stage")
class TwoStageSampler(Sampler[int]):
    """Choose a class, then a dialogue that holds it (our reading of class-then-instance
    sampling, lifted to dialogues so a minority utterance keeps its graph context).

    A draw picks class ``c`` with probability ``q_c ∝ n_c ** (1 / temperature)`` (``n_c``: training
    utterances of ``c``; ``temperature=1`` keeps the natural mix, larger flattens it towards
    uniform), then one of the dialogues holding ``c`` uniformly (not by length, so long dialogues
    are not favoured). With ``cover`` (default) an epoch is every training dialogue once plus
    ``extra`` × (number of dialogues) class-driven draws, shuffled together, so no dialogue goes
    unseen; without it, ``num_samples`` class-driven draws.

    A sampled dialogue still carries its other utterances (mostly the majority class), so the
    utterance mix the loss sees lags behind ``q``. :meth:`class_weights` gives, per class, the
    weight that turns the expected utterance mix of an epoch into ``q`` exactly; with
    ``reweight: true`` the trainer passes them to the classification loss (``ce``), which
    multiplies its class weights by them: utterance-level reweighting inside the sampled
    dialogues.

    Args:
        dialogue_labels: one label tensor per training dialogue.
        num_classes: number of classes.
        generator: random generator (seeded by the trainer).
        temperature: > 0.
        cover: every dialogue once per epoch, plus the class-driven draws.
        extra: class-driven draws per epoch as a multiple of the number of dialogues (with
            ``cover``).
        num_samples: class-driven draws per epoch without ``cover`` (default: the number of
            dialogues).
        reweight: pass :meth:`class_weights` to the loss.
    """

    def __init__(
        self,
        dialogue_labels: list[Tensor],
        num_classes: int,
        generator: torch.Generator | None = None,
        temperature: float = 2.0,
        cover: bool = True,
        extra: float = 0.5,
        num_samples: int | None = None,
        reweight: bool = False,
    ) -> None:
        if temperature <= 0:
            raise ErcgraphError(f"sampler.options.temperature must be > 0, got {temperature}")
        if extra < 0:
            raise ErcgraphError(f"sampler.options.extra must be >= 0, got {extra}")
        self.generator, self.cover, self.reweight = generator, bool(cover), bool(reweight)
        n = len(dialogue_labels)
        # counts[d, c]: utterances of class c in dialogue d
        counts = torch.zeros(n, num_classes)
        for d, y in enumerate(dialogue_labels):
            y = y[y >= 0]
            if y.numel():
                counts[d] += torch.bincount(y, minlength=num_classes).float()
        self.counts = counts
        totals = counts.sum(0)
        holders = counts > 0
        q = torch.where(totals > 0, totals.clamp(min=1.0).pow(1.0 / temperature), 0.0)
        self.target = q / q.sum().clamp(min=1e-12)
        self.holders = [torch.nonzero(holders[:, c]).flatten() for c in range(num_classes)]
        self.draws = round(extra * n) if self.cover else (num_samples or n)
        self.n = n

    def dialogue_probabilities(self) -> Tensor:
        """The chance of each dialogue in one class-driven draw."""
        p = torch.zeros(self.n)
        for c, held in enumerate(self.holders):
            if held.numel():
                p[held] += self.target[c] / held.numel()
        return p

    def expected_share(self) -> Tensor:
        """The expected utterance share of each class in an epoch's dialogues."""
        visits = self.draws * self.dialogue_probabilities()
        if self.cover:
            visits = visits + 1.0
        per_class = (visits[:, None] * self.counts).sum(0)
        return per_class / per_class.sum().clamp(min=1e-12)

    def class_weights(self) -> Tensor | None:
        """Per-class weights turning :meth:`expected_share` into the target mix (mean 1 over the
        classes present), or None without ``reweight``."""
        if not self.reweight:
            return None
        share = self.expected_share()
        w = torch.where(share > 0, self.target / share.clamp(min=1e-12), 0.0)
        present = share > 0
        return w / w[present].mean()

    def __iter__(self) -> Iterator[int]:
        classes = (
            torch.multinomial(self.target, self.draws, replacement=True, generator=self.generator)
            if self.draws
            else torch.zeros(0, dtype=torch.long)
        )
        picks = torch.empty(self.draws, dtype=torch.long)
        for c in torch.unique(classes).tolist():
            where = torch.nonzero(classes == c).flatten()
            held = self.holders[c]
            picks[where] = held[
                torch.randint(held.numel(), (where.numel(),), generator=self.generator)
            ]
        order = torch.cat([torch.arange(self.n), picks]) if self.cover else picks
        yield from order[torch.randperm(order.numel(), generator=self.generator)].tolist()

    def __len__(self) -> int:
        return self.n + self.draws if self.cover else self.draws
