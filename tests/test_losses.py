"""Losses: weights come from counts, unlabelled targets are ignored, registry contract."""

import pytest
import torch

from ercgraph.errors import ErcgraphError
from ercgraph.losses import class_weights
from ercgraph.registry import LOSSES


def test_inverse_weights_favour_rare_classes():
    w = class_weights(torch.tensor([100.0, 10.0, 1.0]), "inverse")
    assert w[2] > w[1] > w[0]
    assert torch.isclose(w.mean(), torch.tensor(1.0))


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_ignores_unlabelled_and_is_differentiable(name):
    counts = torch.tensor([50.0, 30.0, 5.0])
    loss_fn = LOSSES.create(name, class_counts=counts)
    logits = torch.randn(6, 3, requires_grad=True)
    target = torch.tensor([0, 1, 2, -1, -1, 0])
    loss = loss_fn(logits, target)
    loss.backward()
    assert torch.isfinite(loss)
    assert logits.grad[3:5].abs().sum() == 0  # unlabelled rows get no gradient
    assert logits.grad[[0, 1, 2, 5]].abs().sum() > 0


def test_unknown_loss_lists_choices():
    with pytest.raises(ErcgraphError, match="ce"):
        LOSSES.create("cross_entropyy", class_counts=torch.ones(2))


def test_unknown_loss_option_is_an_error():
    with pytest.raises(ErcgraphError, match="weigting"):
        LOSSES.create({"name": "ce", "weigting": "inverse"}, class_counts=torch.ones(2))
