"""Fusions: masks respected, output sizes, gating behaviour, and planted complementarity."""

import pandas as pd
import pytest
import torch
from torch_geometric.data import Batch

from ercgraph.config import ModelConfig
from ercgraph.data.corpus import Corpus
from ercgraph.data.features import FeatureStore
from ercgraph.fusions import ConcatFusion, GatedFusion, MeanFusion
from ercgraph.graphs.build import build_graphs
from ercgraph.losses import build_objective
from ercgraph.models import build_model
from ercgraph.registry import FUSIONS
from tests.components import fit

MODS = ["text", "audio"]


def states(n=5, present_audio=None):
    gen = torch.Generator().manual_seed(0)
    h = {m: torch.randn(n, 4, generator=gen) for m in MODS}
    audio = torch.ones(n, dtype=torch.bool) if present_audio is None else present_audio
    return h, {"text": torch.ones(n, dtype=torch.bool), "audio": audio}


def test_mean_ignores_a_missing_modality():
    h, present = states(present_audio=torch.tensor([True, False, True, False, True]))
    out = MeanFusion(MODS, 4)(h, present)
    assert torch.allclose(out[1], h["text"][1]) and torch.allclose(out[3], h["text"][3])
    assert torch.allclose(out[0], (h["text"][0] + h["audio"][0]) / 2)


def test_concat_has_a_slot_per_modality_and_zeros_for_a_missing_one():
    h, present = states(present_audio=torch.tensor([True, False, True, True, True]))
    fusion = ConcatFusion(MODS, 4)
    out = fusion(h, present)
    assert fusion.out_dim == 8 and out.shape == (5, 8)
    assert torch.equal(out[1, 4:], torch.zeros(4)) and torch.equal(out[1, :4], h["text"][1])


def test_gated_weights_are_a_softmax_over_present_modalities():
    torch.manual_seed(0)
    h, present = states(present_audio=torch.tensor([True, False, True, True, True]))
    fusion = GatedFusion(MODS, 4, gate_hidden=8)
    out = fusion(h, present)
    assert torch.allclose(out[1], h["text"][1], atol=1e-6)  # only text present: its state
    # a convex combination: each coordinate lies between the two states
    lo, hi = torch.minimum(h["text"], h["audio"]), torch.maximum(h["text"], h["audio"])
    keep = present["audio"]
    assert bool(((out[keep] >= lo[keep] - 1e-6) & (out[keep] <= hi[keep] + 1e-6)).all())
    assert "gate_hidden=8" in repr(fusion)


def test_gated_with_no_modality_present_gives_zeros_not_nan():
    h, _ = states()
    none = {m: torch.zeros(5, dtype=torch.bool) for m in MODS}
    assert torch.equal(GatedFusion(MODS, 4)(h, none), torch.zeros(5, 4))


def test_unknown_fusion_lists_the_choices():
    from ercgraph.errors import ErcgraphError

    with pytest.raises(ErcgraphError, match="gated"):
        FUSIONS.get("gatted")


def planted_xor(n: int, seed: int):
    """One-utterance dialogues whose label is XOR of the signs of feature 0 of text and audio:
    each modality alone carries no information about the label."""
    gen = torch.Generator().manual_seed(seed)
    text, audio = torch.randn(n, 3, generator=gen), torch.randn(n, 3, generator=gen)
    y = ((text[:, 0] > 0) ^ (audio[:, 0] > 0)).long()
    df = pd.DataFrame(
        {
            "split": ["train"] * (n // 2) + ["dev"] * (n // 4) + ["test"] * (n - n // 2 - n // 4),
            "dialogue_id": [f"c{i}" for i in range(n)],
            "turn": 0,
            "speaker": "s",
            "label": [("a", "b")[int(v)] for v in y],
        }
    )
    return Corpus(df, "xor", ("a", "b")), {"text": text, "audio": audio}


def fit_accuracy(fusion: str, modalities: list[str], seed: int = 0) -> float:
    corpus, feats = planted_xor(1200, seed)
    store = FeatureStore({m: feats[m] for m in modalities})
    graphs = build_graphs(corpus, store, [{"name": "modality"}] if len(modalities) > 1 else [])
    split = corpus.df.groupby("dialogue_id", sort=False)["split"].first()
    train = Batch.from_data_list([g for g in graphs if split[g.dialogue_id] == "train"])
    test = Batch.from_data_list([g for g in graphs if split[g.dialogue_id] == "test"])
    torch.manual_seed(seed)
    model = build_model(
        ModelConfig(name="mlp", hidden=32, dropout=0.0, fusion=fusion),
        store.dims(),
        list(train.edge_types),
        ["a", "b"],
    )
    fit(model, build_objective([{"name": "ce"}], {"class_counts": torch.ones(2)}), train, 400)
    with torch.no_grad():
        pred = model.eval()(test).logits.argmax(1)
    return float((pred == test.y).float().mean())


@pytest.mark.parametrize("fusion", ["mean", "concat", "gated"])
def test_planted_complementarity_every_fusion_reads_both_modalities(fusion):
    assert fit_accuracy(fusion, ["text", "audio"]) >= 0.9


@pytest.mark.parametrize("modality", ["text", "audio"])
def test_planted_complementarity_one_modality_alone_is_at_chance(modality):
    assert abs(fit_accuracy("mean", [modality]) - 0.5) < 0.1
