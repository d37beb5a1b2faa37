"""The masked-reconstruction head and its loss term: masking rules, learning, config errors."""

import pytest
import torch

from ercgraph.config import Config, ModelConfig, MultitaskConfig, effective_heads, effective_loss
from ercgraph.errors import ErcgraphError
from ercgraph.heads.base import HeadContext
from ercgraph.heads.reconstruction import ReconstructionHead
from ercgraph.losses import build_objective
from ercgraph.models import build_model
from tests.models.test_models import toy_batches


def make(batch, name="hierarchical_gcn", **opts):
    dims = {m: batch[m].x.size(1) for m in batch.node_types}
    heads = ["emotion", {"name": "reconstruction", **opts}]
    return build_model(
        ModelConfig(name=name, hidden=32, dropout=0.0),
        dims,
        list(batch.edge_types),
        ["a", "b"],
        heads,
    )


@pytest.mark.parametrize("name", ["hierarchical_gcn"])
def test_reconstruction_loss_falls_with_training(name):
    # features shared inside a dialogue: a masked node is predictable from its neighbours
    batches = toy_batches(64, 0, audio=True)
    gen = torch.Generator().manual_seed(0)
    for b in batches:
        base = torch.randn(b.num_graphs, 8, generator=gen)
        b["text"].x = base[b["text"].batch] + 0.05 * torch.randn(b["text"].x.shape, generator=gen)
    torch.manual_seed(0)
    model = make(batches[0], name, mask_ratio=0.5)
    objective = build_objective([{"name": "reconstruction"}], {})
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        for b in batches:
            loss, values = objective(model(b), b)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(values["reconstruction"])
    assert sum(losses[-4:]) / 4 < 0.7 * sum(losses[:4]) / 4


@pytest.mark.parametrize("name", ["mlp", "dialoguegcn"])
def test_every_body_accepts_the_masking_head(name):
    b = toy_batches(16, 1, audio=True)[0]
    torch.manual_seed(0)
    out = make(b, name, mask_ratio=0.5).train()(b)
    assert any(bool(m.any()) for m in out.node_masks.values())
    loss, _ = build_objective([{"name": "reconstruction"}], {})(out, b)
    loss.backward()


def test_eval_mode_masks_nothing_and_is_deterministic():
    b = toy_batches(16, 1, audio=True)[0]
    model = make(b, mask_ratio=0.9).eval()
    with torch.no_grad():
        o1, o2 = model(b), model(b)
    assert torch.equal(o1.logits, o2.logits)
    assert o1.node_masks == {} and not any(k.startswith("reconstruction/") for k in o1.aux)
    objective = build_objective([{"name": "reconstruction"}], {})
    assert objective(o1, b) == (None, {})  # nothing to score: no value, nothing logged


def test_training_mode_masks_and_decodes_only_masked_present_nodes():
    b = toy_batches(16, 1, audio=True)[0]
    torch.manual_seed(0)
    out = make(b, mask_ratio=0.5).train()(b)
    for m, mask in out.node_masks.items():
        assert not (mask & ~b[m].present_mask).any()
        assert out.aux[f"reconstruction/{m}"].shape == (int(mask.sum()), b[m].x.size(1))


def test_node_mode_masks_whole_utterances_and_only_present_nodes():
    torch.manual_seed(0)
    ctx = HeadContext(in_dim=8, hidden=8, in_dims={"text": 4, "audio": 4}, num_classes=2)
    rec = ReconstructionHead(ctx, mask_ratio=0.5, mode="nodes")
    present = {"text": torch.ones(200, dtype=torch.bool), "audio": torch.arange(200) % 2 == 0}
    masks = rec.draw(present)
    assert not (masks["audio"] & ~present["audio"]).any()
    assert torch.equal(masks["audio"], masks["text"] & present["audio"])
    assert 0.3 < masks["text"].float().mean() < 0.7


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_mask_fraction_outside_unit_interval_is_an_error(ratio):
    with pytest.raises(ErcgraphError, match=r"mask_ratio must be in \[0, 1\)"):
        make(toy_batches(16, 0)[0], mask_ratio=ratio)


def test_multitask_section_is_shorthand_for_the_head_and_the_loss_term():
    cfg = Config(multitask=MultitaskConfig(enabled=True, mask_ratio=0.3, mode="nodes", weight=0.2))
    assert effective_heads(cfg) == [
        "emotion",
        {"name": "reconstruction", "mask_ratio": 0.3, "mode": "nodes"},
    ]
    terms = effective_loss(cfg)
    assert [(t.name, t.weight) for t in terms] == [("ce", 1.0), ("reconstruction", 0.2)]
