"""Dialogue samplers: the registry contract and the class-aware sampler's behaviour."""

import pytest
import torch

from ercgraph.errors import ErcgraphError
from ercgraph.registry import SAMPLERS

# class 2 is rare: only dialogue 3 contains it
LABELS = [
    torch.tensor([0, 0, 1]),
    torch.tensor([0, 1]),
    torch.tensor([0, 0, 0, 0]),
    torch.tensor([0, 2, -1]),
]


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_every_sampler_yields_valid_indices_reproducibly(name):
    def draw():
        s = SAMPLERS.create(
            name, dialogue_labels=LABELS, num_classes=3, generator=torch.Generator().manual_seed(0)
        )
        return list(s)

    a, b = draw(), draw()
    assert a == b and len(a) == len(LABELS)
    assert all(0 <= i < len(LABELS) for i in a)


def test_class_aware_raises_the_share_of_minority_dialogues():
    def share(temperature):
        s = SAMPLERS.create(
            {"name": "class_aware", "temperature": temperature, "num_samples": 4000},
            dialogue_labels=LABELS,
            num_classes=3,
            generator=torch.Generator().manual_seed(0),
        )
        return sum(i == 3 for i in s) / 4000

    assert share(1.0) > 0.45  # weights 1/2, 1/2, 1/8, 1: 0.47; uniform gives 0.25
    assert 0.25 < share(4.0) < share(1.0)
    assert abs(share(1000.0) - 0.25) < 0.05


def test_temperature_must_be_positive():
    with pytest.raises(ErcgraphError, match="temperature"):
        SAMPLERS.create(
            {"name": "class_aware", "temperature": 0}, dialogue_labels=LABELS, num_classes=3
        )


def test_unknown_sampler_lists_choices():
    with pytest.raises(ErcgraphError, match="class_aware"):
        SAMPLERS.get("balanced")


def test_random_sampler_visits_every_dialogue_once_in_a_seeded_order():
    from ercgraph.data.samplers import RandomDialogueSampler

    labels = [torch.tensor([i % 3]) for i in range(20)]
    a = list(RandomDialogueSampler(labels, 3, torch.Generator().manual_seed(1)))
    b = list(RandomDialogueSampler(labels, 3, torch.Generator().manual_seed(1)))
    assert sorted(a) == list(range(20)) and a == b and a != list(range(20))
