"""M2FNet: the ``m2fnet`` body (dialogue transformers, then fusion), the ``adaptive_triplet`` loss
term, and its RAVDESS config run from the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from ercgraph.errors import ErcgraphError
from ercgraph.losses import build_objective
from ercgraph.registry import LOSSES, MODELS
from tests.cli_helpers import train_quick_cv
from tests.components import fit, toy_setup

REPO = Path(__file__).resolve().parents[2]
CROSS = {"name": "cross_attention", "query": "text", "layers": 2}


def m2fnet(**kw):
    model, batch, _ = toy_setup(heads=["emotion"], model="m2fnet", **kw)
    return model.eval(), batch


def test_m2fnet_is_registered_where_the_cli_looks_it_up():
    # a fresh interpreter: only what the registry itself imports counts
    code = "from ercgraph.registry import MODELS; print('m2fnet' in MODELS.names())"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert res.stdout.strip() == "True", res.stderr[-2000:]


@pytest.mark.parametrize("fusion,width", [("mean", 16), ("concat", 32), (CROSS, 16)])
def test_m2fnet_shapes(fusion, width):
    model, batch = m2fnet(fusion=fusion, options={"layers": 2})
    out = model(batch)
    n = batch.y.numel()
    assert out.utterance.shape == (n, width) and model.body.out_dim == width
    assert out.logits.shape == (n, 3)
    assert {m: tuple(v.shape) for m, v in out.nodes.items()} == {"text": (n, 16), "audio": (n, 16)}
    assert "layers=2" in repr(model.body)


def _rows(batch, graph: int) -> torch.Tensor:
    return batch["text"].batch == graph


def test_dialogues_of_one_batch_never_attend_to_each_other():
    model, batch = m2fnet(fusion=CROSS, options={"layers": 2})
    with torch.no_grad():
        before = model(batch)
        other = batch.clone()
        d2 = _rows(batch, 1)
        gen = torch.Generator().manual_seed(1)
        for m in ("text", "audio"):
            x = other[m].x.clone()
            x[d2] += 5.0 * torch.randn(x[d2].shape, generator=gen)
            other[m].x = x
        after = model(other)
    keep = ~d2
    for m in ("text", "audio"):
        assert torch.allclose(before.nodes[m][keep], after.nodes[m][keep], atol=1e-6)
    assert torch.allclose(before.utterance[keep], after.utterance[keep], atol=1e-6)
    assert not torch.allclose(before.utterance[d2], after.utterance[d2], atol=1e-3)


def test_utterances_of_one_dialogue_do_attend_to_each_other():
    model, batch = m2fnet()
    with torch.no_grad():
        before = model(batch).nodes["text"]
        other = batch.clone()
        first = _rows(batch, 0).nonzero().view(-1)
        x = other["text"].x.clone()
        x[first[0]] += 5.0
        other["text"].x = x
        after = model(other).nodes["text"]
    assert not torch.allclose(before[first[1:]], after[first[1:]], atol=1e-4)


def test_graph_edges_are_ignored():
    model, batch = m2fnet(fusion=CROSS)
    bare = batch.clone()
    for et in bare.edge_types:
        bare[et].edge_index = torch.empty(2, 0, dtype=torch.long)
    with torch.no_grad():
        assert torch.allclose(model(batch).utterance, model(bare).utterance, atol=1e-6)


def test_missing_modality_is_masked():
    model, batch = m2fnet(fusion=CROSS)
    missing = ~batch["audio"].present_mask
    assert missing.any()
    with torch.no_grad():
        before = model(batch)
        other = batch.clone()
        x = other["audio"].x.clone()
        x[missing] = 1e3  # garbage where audio is missing must not reach anything
        other["audio"].x = x
        after = model(other)
    assert torch.all(before.nodes["audio"][missing] == 0)
    assert torch.allclose(before.utterance, after.utterance, atol=1e-5)
    assert torch.allclose(before.nodes["audio"], after.nodes["audio"], atol=1e-5)
    assert torch.allclose(before.nodes["text"], after.nodes["text"], atol=1e-5)


def test_a_dialogue_without_a_modality_gives_finite_outputs_and_gradients():
    model, batch = m2fnet()
    present = batch["audio"].present_mask.clone()
    present[_rows(batch, 0)] = False
    batch["audio"].present_mask = present
    model.train()
    out = model(batch)
    assert torch.isfinite(out.utterance).all()
    out.logits.sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_hidden_must_split_over_the_attention_heads():
    with pytest.raises(ErcgraphError, match="multiple of heads"):
        MODELS.get("m2fnet")({"text": 8}, [], 3, hidden=16, heads=3)


def test_zero_layers_is_the_projection_alone():
    model, batch = m2fnet(options={"layers": 0})
    assert len(model.body.encoders) == 0
    with torch.no_grad():
        out = model(batch)
    assert out.utterance.shape == (batch.y.numel(), 16)


# -- adaptive triplet ---------------------------------------------------------------------------
def fake(z: torch.Tensor, y: torch.Tensor, present: torch.Tensor | None = None):
    present = present if present is not None else torch.ones(len(y), dtype=torch.bool)
    return SimpleNamespace(nodes={"a": z}, present={"a": present}), SimpleNamespace(y=y)


def clusters(spread: float, per_class: int = 5, seed: int = 0):
    """Three classes around centres 20 apart (spread = noise std)."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[20.0, 0.0, 0.0], [0.0, 20.0, 0.0], [0.0, 0.0, 20.0]])
    y = torch.arange(3).repeat_interleave(per_class)
    return centres[y] + spread * torch.randn(len(y), 3, generator=gen), y


def triplet(**options):
    return LOSSES.create({"name": "adaptive_triplet", **options})


@pytest.mark.parametrize("mining", ["hard", "all"])
def test_triplet_is_zero_when_classes_are_separated_beyond_the_margin(mining):
    z, y = clusters(spread=0.1)
    assert float(triplet(mining=mining)(*fake(z, y))) == 0.0


@pytest.mark.parametrize("mining", ["hard", "all"])
def test_triplet_is_positive_when_classes_overlap(mining):
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(15, 3, generator=gen, requires_grad=True)
    y = torch.arange(3).repeat(5)
    loss = triplet(mining=mining)(*fake(z, y))
    assert float(loss.detach()) > 1.0
    loss.backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_margin_grows_with_the_hardness_of_the_triplet():
    from ercgraph.losses.triplet import adaptive_margin

    def m(ap, an):
        return float(adaptive_margin(torch.tensor(ap), torch.tensor(an)))

    assert m(1.0, -1.0) == pytest.approx(2 + 2 * math.exp(-4) + 2 * math.exp(-8))
    assert m(1.0, -1.0) < m(0.0, -1.0) < m(-1.0, -1.0)  # positive turning away
    assert m(1.0, -1.0) < m(1.0, 0.0) < m(1.0, 1.0)  # negative coming close


def test_close_negatives_raise_the_loss_more_than_far_ones():
    z, y = clusters(spread=0.1)
    near = z.clone()
    near[y == 1] = z[y == 0][:1] + torch.tensor([0.0, 3.0, 0.0])  # class 1 next to class 0
    loss = triplet()
    assert float(loss(*fake(near, y))) > float(loss(*fake(z, y))) == 0.0


def test_unlabelled_and_missing_rows_are_ignored():
    z, y = clusters(spread=0.1)
    # rows sitting on top of another class would be hard violations if they counted
    extra = z[y == 0][:3]
    zz = torch.cat([z, extra, extra])
    yy = torch.cat([y, torch.full((3,), -1), torch.full((3,), 1)])
    present = torch.cat(
        [torch.ones(len(y) + 3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)]
    )
    assert float(triplet()(*fake(zz, yy, present))) == 0.0
    assert float(triplet()(*fake(zz, yy))) > 0.0  # the same rows, present and labelled


def test_triplet_is_none_with_nothing_to_score():
    z, y = clusters(spread=1.0)
    assert triplet()(*fake(z, torch.full_like(y, -1))) is None
    assert triplet()(*fake(z, torch.zeros_like(y))) is None  # one emotion: no negative


def test_normalised_distances_never_reach_zero_but_rank_the_same():
    z, y = clusters(spread=0.1)
    far = float(triplet(normalize=True)(*fake(z, y)))
    gen = torch.Generator().manual_seed(0)
    mixed = float(triplet(normalize=True)(*fake(torch.randn(15, 3, generator=gen), y)))
    assert 0.0 < far < mixed


def test_variance_and_covariance_regularisers():
    from ercgraph.losses.triplet import covariance_penalty, variance_penalty

    gen = torch.Generator().manual_seed(0)
    wide = 3.0 * torch.randn(2000, 4, generator=gen)
    assert float(variance_penalty(wide)) == 0.0
    assert float(variance_penalty(torch.zeros(10, 4))) == pytest.approx(1.0, abs=0.02)
    assert float(covariance_penalty(wide)) < 0.2
    tied = torch.cat([wide[:, :1], wide[:, :1]], dim=1)  # two identical dimensions
    assert float(covariance_penalty(tied)) > 10.0
    z, y = clusters(spread=0.1)
    base = float(triplet()(*fake(z, y)))
    assert float(triplet(variance=1.0, covariance=1.0)(*fake(z, y))) > base


def test_triplet_options_are_checked():
    with pytest.raises(ErcgraphError, match="mining"):
        triplet(mining="semi")
    with pytest.raises(ErcgraphError, match="not modalities"):
        z, y = clusters(spread=0.1)
        triplet(modalities=["video"])(*fake(z, y))
    assert "mining='hard'" in repr(triplet())


def test_triplet_term_trains_the_m2fnet_states():
    model, batch, _ = toy_setup(heads=["emotion"], model="m2fnet")
    objective = build_objective([{"name": "adaptive_triplet"}], {})
    with torch.no_grad():
        start = float(objective(model.eval()(batch), batch)[0])
    fit(model, objective, batch, steps=40)
    with torch.no_grad():
        end = float(objective(model.eval()(batch), batch)[0])
    assert end < 0.7 * start


# -- the RAVDESS config from the CLI ------------------------------------------------------------
def test_ravdess_m2fnet_config_runs_from_the_cli(tmp_path, data_root):
    out = train_quick_cv(REPO / "configs" / "ravdess_m2fnet.yaml", data_root, tmp_path)
    m = json.loads((out / "metrics.json").read_text())
    assert m["folds"] == 2 and m["folds_done"] == [0, 1]
    model = json.loads((out / "fold_0" / "model.json").read_text())
    assert model["in_dims"] == {"audio": 259, "visual": 35}
    history = json.loads((out / "fold_0" / "seed_0" / "result.json").read_text())["history"]
    assert math.isfinite(history[0]["train_loss_adaptive_triplet"])
