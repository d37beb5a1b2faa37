"""R-Drop consistency and the supervised contrastive (SPCL-style) loss terms, and the graph
trainer's second forward pass for terms that need one."""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from ercgraph.losses import build_objective
from ercgraph.losses.objective import add_second_view
from ercgraph.registry import LOSSES


def _out(logits, utterance=None, second=None):
    aux = {} if second is None else {"logits_view2": second}
    return SimpleNamespace(logits=logits, utterance=utterance, aux=aux)


def test_rdrop_is_the_symmetric_kl_and_needs_two_views():
    term = LOSSES.create("rdrop")
    p = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    q = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    lp, lq = p.log_softmax(-1), q.log_softmax(-1)
    kl = lambda a, b: (a.exp() * (a - b)).sum(-1)  # noqa: E731
    expected = 0.5 * (kl(lp, lq) + kl(lq, lp)).mean()
    got = term(_out(p, second=q), SimpleNamespace(y=torch.tensor([0, -1])))
    torch.testing.assert_close(got, expected)
    assert float(term(_out(p, second=p.clone()), None)) == 0.0
    assert term(_out(p), None) is None  # one pass (evaluation): nothing to compare
    obj = build_objective(
        [{"name": "ce"}, {"name": "rdrop", "weight": 0.5}], {"class_counts": torch.ones(3)}
    )
    assert obj.views == 2
    assert build_objective([{"name": "ce"}], {"class_counts": torch.ones(3)}).views == 1


def test_add_second_view_feeds_rdrop():
    first = SimpleNamespace(logits=torch.zeros(2, 3), utterance=torch.zeros(2, 4), aux={})
    second = SimpleNamespace(logits=torch.ones(2, 3), utterance=torch.ones(2, 4), aux={})
    add_second_view(first, second)
    assert torch.equal(first.aux["logits_view2"], second.logits)
    assert torch.equal(first.aux["utterance_view2"], second.utterance)


def test_supcon_pulls_classes_together():
    term = LOSSES.create("supcon", num_classes=2, temperature=0.5, prototypes=False)
    y = torch.tensor([0, 0, 1, 1, -1])
    apart = torch.tensor([[1.0, 0], [1.0, 0.01], [0, 1.0], [0.01, 1.0], [5.0, 5.0]])
    mixed = torch.tensor([[1.0, 0], [0, 1.0], [1.0, 0.01], [0.01, 1.0], [5.0, 5.0]])
    low = term(_out(None, apart), SimpleNamespace(y=y))
    high = term(_out(None, mixed), SimpleNamespace(y=y))
    assert float(low) < float(high)
    # by hand for the separated case: each anchor has one positive (sim 1) and two negatives
    z = F.normalize(apart[:4], dim=-1)
    s = z @ z.T / 0.5
    by_hand = -torch.stack(
        [
            s[a, b] - torch.logsumexp(s[a][torch.arange(4) != a], 0)
            for a, b in ((0, 1), (1, 0), (2, 3), (3, 2))
        ]
    ).mean()
    torch.testing.assert_close(low, by_hand, atol=1e-5, rtol=1e-5)
    # the unlabelled row takes no part: moving it changes nothing
    moved = apart.clone()
    moved[4] = torch.tensor([-3.0, 1.0])
    torch.testing.assert_close(term(_out(None, moved), SimpleNamespace(y=y)), low)
    # a batch without a positive pair has nothing to score
    assert term(_out(None, apart[:2]), SimpleNamespace(y=torch.tensor([0, 1]))) is None


def test_supcon_prototypes_give_lonely_rows_a_positive():
    term = LOSSES.create("supcon", num_classes=3, temperature=0.1, prototypes=True)
    term.train()
    first = torch.randn(6, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    loss = term(_out(None, first), SimpleNamespace(y=y))
    loss.backward()
    assert first.grad.abs().sum() > 0 and term.prototypes.shape == (3, 4)
    # next batch: one row per class, no pair inside the batch, yet the prototypes pair them
    lonely = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    value = term(_out(None, lonely), SimpleNamespace(y=torch.tensor([0, 1, 2])))
    assert value is not None and math.isfinite(float(value))
    assert torch.allclose(term.prototypes.norm(dim=1), torch.ones(3))


def test_graph_trainer_runs_rdrop_and_supcon(tmp_path, meld_slice, cache):
    from tests.test_run_dir import train

    out = tmp_path / "run"
    terms = "loss=[{name: ce}, {name: rdrop, weight: 1.0}, {name: supcon, weight: 0.1}]"
    assert train(out, meld_slice, cache, "meld_text", "--set", terms) == 0
    import json

    first = json.loads((out / "seed_0" / "result.json").read_text())["history"][0]
    assert first["train_loss_rdrop"] > 0 and first["train_loss_supcon"] > 0
    # evaluation runs one pass: R-Drop has nothing to compare there, the contrastive term does
    assert "dev_loss_rdrop" not in first and "dev_loss_supcon" in first
