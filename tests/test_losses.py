"""Losses: weights come from counts, unlabelled targets are ignored, registry contract."""

from types import SimpleNamespace

import pytest
import torch

from ercgraph.errors import ErcgraphError
from ercgraph.losses import ClassificationLoss, build_objective, class_weights
from ercgraph.registry import LOSSES

EMOTION_LOSSES = [n for n, c in LOSSES.items() if issubclass(c, ClassificationLoss)]


def test_inverse_weights_favour_rare_classes():
    w = class_weights(torch.tensor([100.0, 10.0, 1.0]), "inverse")
    assert w[2] > w[1] > w[0]
    assert torch.isclose(w.mean(), torch.tensor(1.0))


def test_the_emotion_losses_are_the_four_of_the_design():
    assert set(EMOTION_LOSSES) == {"ce", "class_balanced", "focal", "logit_adjusted"}


@pytest.mark.parametrize("name", EMOTION_LOSSES)
def test_every_emotion_loss_ignores_unlabelled_and_is_differentiable(name):
    counts = torch.tensor([50.0, 30.0, 5.0])
    loss_fn = LOSSES.create(name, class_counts=counts)
    logits = torch.randn(6, 3, requires_grad=True)
    target = torch.tensor([0, 1, 2, -1, -1, 0])
    loss = loss_fn(SimpleNamespace(logits=logits), SimpleNamespace(y=target))
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


def test_objective_weights_terms_and_reports_each_unweighted():
    counts = torch.tensor([5.0, 5.0])
    objective = build_objective(
        [{"name": "ce", "weight": 1.0}, {"name": "focal", "weight": 0.5, "options": {"gamma": 1}}],
        {"class_counts": counts, "num_classes": 2},
    )
    logits = torch.tensor([[2.0, -1.0], [0.0, 1.0]])
    out, batch = SimpleNamespace(logits=logits), SimpleNamespace(y=torch.tensor([0, 0]))
    total, values = objective(out, batch)
    assert set(values) == {"ce", "focal"}
    assert torch.isclose(total, torch.tensor(values["ce"] + 0.5 * values["focal"]))
    # the same term twice gets a second name, never a silent overwrite
    twice = build_objective([{"name": "ce"}, {"name": "ce"}], {"class_counts": counts})
    assert list(twice.terms) == ["ce", "ce_2"]


def test_a_non_finite_loss_raises_showing_every_term():
    objective = build_objective([{"name": "ce"}], {"class_counts": torch.ones(2)})
    out = SimpleNamespace(logits=torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ErcgraphError, match=r"not finite.*ce=nan"):
        objective(out, SimpleNamespace(y=torch.tensor([0])))
