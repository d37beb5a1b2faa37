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
        return list(s), len(s)

    (a, n), (b, _) = draw(), draw()
    assert a == b and len(a) == n >= len(LABELS)  # an epoch is len(sampler) dialogues
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


# -- two-stage ----------------------------------------------------------------------------------
def _imbalanced() -> list[torch.Tensor]:
    """40 dialogues: mostly class 0; class 2 in two short and one long dialogue."""
    gen = torch.Generator().manual_seed(0)
    out = [
        torch.randint(0, 2, (int(torch.randint(3, 9, (1,), generator=gen)),), generator=gen)
        for _ in range(37)
    ]
    out += [torch.tensor([0, 2]), torch.tensor([2, 0, 0]), torch.tensor([0] * 20 + [2])]
    return out


def _epoch_share(sampler, labels, epochs=200, weights=None):
    seen = torch.zeros(3)
    for _ in range(epochs):
        for d in sampler:
            seen += torch.bincount(labels[d], minlength=3).float()
    if weights is not None:
        seen = seen * weights
    return seen / seen.sum()


def test_two_stage_moves_the_class_mix_covers_every_dialogue_and_reweights_to_target():
    from ercgraph.data.samplers import RandomDialogueSampler, TwoStageSampler

    labels = _imbalanced()
    gen = torch.Generator().manual_seed(1)
    two = TwoStageSampler(labels, 3, gen, temperature=4.0, extra=0.5, reweight=True)
    epoch = list(two)
    assert len(epoch) == len(two) == 40 + 20 and set(epoch) == set(range(40))  # cover
    natural = _epoch_share(RandomDialogueSampler(labels, 3, gen), labels, epochs=5)
    achieved = _epoch_share(two, labels)
    assert achieved[2] > 1.5 * natural[2]  # the rare class's utterance share moves
    torch.testing.assert_close(achieved, two.expected_share(), atol=0.01, rtol=0.0)
    weighted = _epoch_share(two, labels, weights=two.class_weights())
    torch.testing.assert_close(weighted, two.target, atol=0.01, rtol=0.0)
    # a class-driven draw picks among the dialogues holding the class uniformly, not by length
    p = two.dialogue_probabilities()
    assert p[37] == p[38] == p[39] > 0
    # without cover: only class-driven draws, and no weights without reweight
    plain = TwoStageSampler(labels, 3, gen, cover=False, num_samples=30)
    assert len(list(plain)) == 30 and plain.class_weights() is None
    with pytest.raises(ErcgraphError, match="temperature must be > 0"):
        TwoStageSampler(labels, 3, gen, temperature=0)


def test_reweight_needs_the_ce_loss(tmp_path, meld_slice, cache):
    from tests.cli_helpers import cli, train_args

    extra = [
        "--set",
        "sampler={name: two_stage, options: {reweight: true}}",
        "--set",
        "loss={name: focal}",
        "--set",
        "train.epochs=1",
    ]
    assert cli(*train_args(tmp_path / "bad", meld_slice, cache, *extra)) == 2
    ok = [
        "--set",
        "sampler={name: two_stage, options: {reweight: true, temperature: 3}}",
        "--set",
        "train.epochs=1",
    ]
    assert cli(*train_args(tmp_path / "ok", meld_slice, cache, *ok)) == 0
