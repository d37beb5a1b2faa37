"""Models: shapes, the registry contract, and that graph context actually gets used."""

import pytest
import torch
from torch_geometric.data import Batch, HeteroData
from torch_geometric.nn import SAGEConv

from ercgraph.config import ModelConfig
from ercgraph.errors import ErcgraphError
from ercgraph.models import build_model
from ercgraph.registry import MODELS

PAST = ("text", "past", "text")
CROSS = ("text", "cross_modal", "audio")


def toy_dialogue(n: int, gen: torch.Generator, audio: bool = False) -> HeteroData:
    """Label of utterance i = sign of feature 0 of utterance i-1 (own sign for the first)."""
    d = HeteroData()
    x = torch.randn(n, 8, generator=gen)
    prev = torch.cat([x[:1, 0], x[:-1, 0]])
    d["text"].x = x
    d["text"].present_mask = torch.ones(n, dtype=torch.bool)
    d.y = (prev > 0).long()
    d.speaker = torch.arange(n) % 2
    d[PAST].edge_index = torch.stack([torch.arange(n - 1), torch.arange(1, n)])
    if audio:
        d["audio"].x = torch.randn(n, 4, generator=gen)
        d["audio"].present_mask = torch.arange(n) % 3 != 0
        keep = d["audio"].present_mask.nonzero().view(-1)
        d[CROSS].edge_index = torch.stack([keep, keep])
        d[("audio", "cross_modal", "text")].edge_index = torch.stack([keep, keep])
        d[("audio", "past", "audio")].edge_index = torch.empty(2, 0, dtype=torch.long)
    return d


def toy_batches(num: int, seed: int, audio: bool = False) -> list[Batch]:
    gen = torch.Generator().manual_seed(seed)
    graphs = [toy_dialogue(6, gen, audio) for _ in range(num)]
    return [Batch.from_data_list(graphs[i : i + 16]) for i in range(0, num, 16)]


def make(name: str, batch: Batch, **kw) -> torch.nn.Module:
    dims = {m: batch[m].x.size(1) for m in batch.node_types}
    return build_model(
        ModelConfig(name=name, hidden=32, dropout=0.0, **kw),
        dims,
        list(batch.edge_types),
        ["neg", "pos"],
    )


@pytest.mark.parametrize("name", MODELS.names())
def test_every_registered_model_gives_logits_and_gradients(name):
    batch = toy_batches(16, 0, audio=True)[0]
    torch.manual_seed(0)
    model = make(name, batch)
    logits = model(batch).logits
    assert logits.shape == (batch.y.numel(), 2)
    logits.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("conv", ["rgcn", "graphconv", "gat", "transformer", "sage"])
def test_hierarchical_gcn_learns_context_the_mlp_cannot(conv):
    train, test = toy_batches(128, 1), toy_batches(64, 2)

    def fit(name, **kw):
        torch.manual_seed(0)
        model = make(name, train[0], **kw)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(60):
            for b in train:
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(b).logits, b.y).backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            return (
                torch.cat([(model(b).logits.argmax(1) == b.y).float() for b in test]).mean().item()
            )

    gcn = fit("hierarchical_gcn", conv=conv)
    mlp = fit("mlp")
    assert gcn > 0.85, gcn
    assert gcn > mlp + 0.15, (gcn, mlp)


def test_missing_modality_does_not_change_the_prediction_of_its_utterance():
    batch = toy_batches(16, 3, audio=True)[0]
    torch.manual_seed(0)
    model = make("hierarchical_gcn", batch).eval()
    with torch.no_grad():
        before = model(batch).logits
        batch["audio"].x[~batch["audio"].present_mask] = 1e3  # garbage in masked rows
        after = model(batch).logits
    assert torch.allclose(before, after, atol=1e-5)


def test_heads_argument_is_refused_for_convolutions_without_heads():
    batch = toy_batches(16, 0)[0]
    with pytest.raises(ErcgraphError, match="model.heads=2 has no effect"):
        make("hierarchical_gcn", batch, conv="rgcn", heads=2)
    make("hierarchical_gcn", batch, conv="transformer", heads=2)  # acts there


def test_a_pyg_class_name_resolves_through_the_pyg_resolver():
    batch = toy_batches(16, 0)[0]
    model = make("hierarchical_gcn", batch, conv="SAGEConv")
    convs = list(model.body.intra[0].convs.values())
    assert convs and all(isinstance(c, SAGEConv) for c in convs)


def test_unknown_conv_lists_choices():
    batch = toy_batches(16, 0)[0]
    with pytest.raises(ErcgraphError, match="rgcn"):
        make("hierarchical_gcn", batch, conv="nope")


def test_a_field_the_model_does_not_use_is_an_error():
    batch = toy_batches(16, 0)[0]
    with pytest.raises(ErcgraphError, match="model.conv"):
        make("mlp", batch, conv="gat")


def test_unknown_model_name_suggests():
    with pytest.raises(ErcgraphError, match="hierarchical_gcn"):
        MODELS.get("hierarchical_gc")


@pytest.mark.parametrize(
    "name,kw", [("dialoguegcn", {}), ("hierarchical_gcn", {"context_rnn": True})]
)
def test_scores_do_not_depend_on_batch_composition(name, kw):
    """The sequence encoder is packed: padding from a longer dialogue changes nothing."""
    gen = torch.Generator().manual_seed(5)
    short, long = toy_dialogue(3, gen), toy_dialogue(9, gen)
    torch.manual_seed(0)
    model = make(name, Batch.from_data_list([short]), **kw).eval()
    with torch.no_grad():
        alone = model(Batch.from_data_list([short])).logits
        together = model(Batch.from_data_list([short, long])).logits[:3]
    assert torch.allclose(alone, together, atol=1e-5)
