"""The masked-reconstruction head: masking rules, learning, and config errors."""

import pytest
import torch

from ercgraph.config import ModelConfig, MultitaskConfig
from ercgraph.errors import ErcgraphError
from ercgraph.models import build_model
from ercgraph.models.multitask import MaskedReconstruction
from tests.models.test_models import toy_batches


def make(batch, **mt):
    dims = {m: batch[m].x.size(1) for m in batch.node_types}
    return build_model(
        ModelConfig(hidden=32, dropout=0.0),
        dims,
        list(batch.edge_types),
        2,
        MultitaskConfig(enabled=True, **mt),
    )


def test_reconstruction_loss_falls_with_training():
    # features shared inside a dialogue: a masked node is predictable from its neighbours
    batches = toy_batches(64, 0, audio=True)
    gen = torch.Generator().manual_seed(0)
    for b in batches:
        base = torch.randn(b.num_graphs, 8, generator=gen)
        b["text"].x = base[b["text"].batch] + 0.05 * torch.randn(b["text"].x.shape, generator=gen)
    torch.manual_seed(0)
    model = make(batches[0], mask_ratio=0.5)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        for b in batches:
            aux = {}
            model(b, aux)
            opt.zero_grad()
            aux["reconstruction"].backward()
            opt.step()
            losses.append(aux["reconstruction"].item())
    assert sum(losses[-4:]) / 4 < 0.7 * sum(losses[:4]) / 4


def test_eval_mode_masks_nothing_and_is_deterministic():
    b = toy_batches(16, 1, audio=True)[0]
    model = make(b, mask_ratio=0.9).eval()
    aux = {}
    with torch.no_grad():
        a1, a2 = model(b, aux), model(b)
    assert torch.equal(a1, a2) and aux == {}


def test_node_mode_masks_whole_utterances_and_only_present_nodes():
    torch.manual_seed(0)
    rec = MaskedReconstruction({"text": 4, "audio": 4}, 8, mask_ratio=0.5, mode="nodes")
    present = {"text": torch.ones(200, dtype=torch.bool), "audio": torch.arange(200) % 2 == 0}
    masks = rec.draw(present)
    assert not (masks["audio"] & ~present["audio"]).any()
    assert torch.equal(masks["audio"], masks["text"] & present["audio"])
    assert 0.3 < masks["text"].float().mean() < 0.7


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_mask_fraction_outside_unit_interval_is_an_error(ratio):
    with pytest.raises(ErcgraphError, match=r"mask_ratio must be in \[0, 1\)"):
        make(toy_batches(16, 0)[0], mask_ratio=ratio)


def test_models_without_the_head_refuse_it():
    b = toy_batches(16, 0)[0]
    with pytest.raises(ErcgraphError, match="no multi-task head"):
        build_model(
            ModelConfig(name="mlp"),
            {"text": 8},
            list(b.edge_types),
            2,
            MultitaskConfig(enabled=True),
        )
