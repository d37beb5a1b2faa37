"""RCMA: the recursive cross-modal attention fusion (masks, recursion, sizes), the TCN body
(dialogues never mix, causal context) and the RAVDESS preset on the real features."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Batch

from ercgraph.config import ModelConfig
from ercgraph.errors import ErcgraphError
from ercgraph.graphs.build import build_graphs
from ercgraph.losses import build_objective
from ercgraph.models import build_model
from ercgraph.registry import FUSIONS, MODELS
from tests.cli_helpers import train_quick_cv
from tests.components import fit, toy_corpus, toy_setup, toy_store

REPO = Path(__file__).resolve().parents[2]
MODS = ["text", "audio", "visual"]


def states(n: int = 6, dim: int = 8, mods=MODS):
    gen = torch.Generator().manual_seed(0)
    h = {m: torch.randn(n, dim, generator=gen) for m in mods}
    present = {m: torch.ones(n, dtype=torch.bool) for m in mods}
    return h, present


def fusion(**kw):
    torch.manual_seed(0)
    return FUSIONS.create({"name": "rcma", **kw}, modalities=MODS, dim=8).eval()


@pytest.mark.parametrize("combine", ["concat", "mean"])
def test_rcma_fusion_gives_dim_sized_utterances_for_two_and_three_modalities(combine):
    for mods in (MODS, MODS[:2]):
        h, present = states(mods=mods)
        f = FUSIONS.create({"name": "rcma", "combine": combine, "heads": 2}, modalities=mods, dim=8)
        assert f.out_dim == 8 and f(h, present).shape == (6, 8)
        assert "iterations=2" in repr(f) and f"combine='{combine}'" in repr(f)


def test_a_missing_modality_never_contributes():
    h, present = states()
    present["audio"] = torch.tensor([True, False, True, False, False, True])
    present["visual"] = torch.tensor([True, True, False, False, True, True])
    for combine in ("concat", "mean"):
        f = fusion(combine=combine)
        out = f(h, present)
        noisy = {m: v.clone() for m, v in h.items()}
        for m in ("audio", "visual"):
            noisy[m][~present[m]] = 100 * torch.randn(int((~present[m]).sum()), 8)
        assert torch.equal(f(noisy, present), out)
        # a present modality does reach the others
        moved = {m: v.clone() for m, v in h.items()}
        moved["audio"][0] += 1.0
        assert not torch.allclose(f(moved, present)[0], out[0])


def test_with_only_one_modality_present_the_mean_combination_is_that_state():
    h, present = states()
    present["audio"][:] = False
    present["visual"][:] = False
    out = fusion(combine="mean")(h, present)
    assert torch.allclose(out, h["text"])  # no other modality: no attended update


def test_each_modality_attends_to_the_joint_of_the_others_with_a_residual():
    h, present = states()
    f = fusion(iterations=1, combine="mean")
    step = f.steps[0]
    x = torch.stack([h[m] for m in MODS], dim=1)
    mask = torch.ones(6, 3, 1)
    out = step(x, mask)
    # text's update reads audio and visual only: changing text's own state moves text by
    # exactly that change plus a different attention output, while a zero joint gives no update
    zero_joint = x.clone()
    zero_joint[:, 1:] = 0.0
    upd = step(zero_joint, mask)[:, 0] - zero_joint[:, 0]
    bias_only = step.out["text"](torch.zeros(1, 8))  # ReLU(c * 0) = 0: only the output bias
    assert torch.allclose(upd, bias_only.expand(6, 8), atol=1e-6)
    assert not torch.allclose(out[:, 0], x[:, 0])


def test_iterations_set_the_number_of_recursive_steps():
    h, present = states()
    per_iter = {k: fusion(iterations=k) for k in (0, 1, 3)}
    assert [len(per_iter[k].steps) for k in (0, 1, 3)] == [0, 1, 3]
    n_params = {k: sum(p.numel() for p in f.parameters()) for k, f in per_iter.items()}
    step_size = n_params[1] - n_params[0]
    assert step_size > 0 and n_params[3] == n_params[0] + 3 * step_size
    shared = {k: fusion(iterations=k, share_weights=True) for k in (1, 2)}
    assert sum(p.numel() for p in shared[2].parameters()) == n_params[1]
    assert not torch.allclose(shared[1](h, present), shared[2](h, present))
    # two shared iterations are the one step applied twice
    f = shared[2]
    x = torch.stack([h[m] for m in MODS], dim=1)
    mask = torch.ones(6, 3, 1)
    twice = f.steps[0](f.steps[0](x, mask), mask)
    assert torch.allclose(f(h, present), f.project(twice.flatten(1)), atol=1e-6)


def test_bad_rcma_options_are_refused():
    with pytest.raises(ErcgraphError, match="multiple of heads"):
        FUSIONS.create({"name": "rcma", "heads": 3}, modalities=MODS, dim=8)
    with pytest.raises(ErcgraphError, match="combine"):
        FUSIONS.create({"name": "rcma", "combine": "max"}, modalities=MODS, dim=8)
    with pytest.raises(ErcgraphError, match="iterations"):
        FUSIONS.create({"name": "rcma", "iterations": -1}, modalities=MODS, dim=8)


# -- the body --------------------------------------------------------------------------------
def batch_and_body(**kw):
    corpus = toy_corpus()
    store = toy_store(corpus)
    batch = Batch.from_data_list(build_graphs(corpus, store, [{"name": "modality"}]))
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(name="rcma", hidden=16, dropout=0.0, fusion="rcma", options=kw),
        store.dims(),
        list(batch.edge_types),
        list(corpus.labels),
    )
    return batch, model.eval()


def perturbed(batch: Batch, dialogue: int, modality: str = "text") -> Batch:
    other = batch.clone()
    x = batch[modality].x.clone()  # the batch holds views of the store: never edit in place
    rows = batch[modality].batch == dialogue
    x[rows] += torch.randn(int(rows.sum()), x.size(1))
    other[modality].x = x
    return other


def test_rcma_body_shapes_and_out_dim():
    batch, model = batch_and_body()
    assert isinstance(model.body, MODELS.get("rcma"))
    out = model(batch)
    n = batch["text"].num_nodes
    assert out.utterance.shape == (n, model.body.out_dim) and out.logits.shape == (n, 3)
    assert out.nodes["audio"].shape == (n, 16)
    assert "tcn_layers=2" in repr(model.body)


def test_dialogues_in_one_batch_never_mix_in_the_tcn():
    torch.manual_seed(1)
    batch, model = batch_and_body(tcn_layers=3, kernel_size=3)
    with torch.no_grad():
        base = model(batch).nodes["text"]
        moved = model(perturbed(batch, 1)).nodes["text"]
    d = batch["text"].batch
    assert not torch.allclose(moved[d == 1], base[d == 1])
    assert torch.equal(moved[d != 1], base[d != 1])
    # and a dialogue gives the same states alone as inside a batch of longer ones
    alone = Batch.from_data_list([batch.get_example(0)])
    with torch.no_grad():
        single = model(alone).nodes["text"]
    assert torch.allclose(single, base[d == 0], atol=1e-5)


def test_causal_tcn_reads_only_the_past_and_the_default_reads_both_sides():
    for causal in (True, False):
        batch, model = batch_and_body(causal=causal, tcn_layers=2, kernel_size=3)
        d = batch["text"].batch
        first = int((d == 0).sum())
        other = batch.clone()
        x = batch["text"].x.clone()
        x[1] += 5.0  # utterance 1 of dialogue 0
        other["text"].x = x
        with torch.no_grad():
            a, b = model(batch).nodes["text"], model(other).nodes["text"]
        changed = ~torch.isclose(a, b).all(-1)
        assert bool(changed[1]) and not changed[first:].any()
        assert bool(changed[0]) is (not causal)


def test_missing_modality_values_do_not_reach_the_rcma_body_output():
    batch, model = batch_and_body()
    missing = ~batch["audio"].present_mask
    assert missing.any()
    other = batch.clone()
    x = batch["audio"].x.clone()
    x[missing] = 50.0
    other["audio"].x = x
    with torch.no_grad():
        assert torch.allclose(model(batch).utterance, model(other).utterance)


def test_rcma_body_with_the_regression_head_learns_under_ccc():
    """The dimensional recipe: rcma body, ``heads: [regression]``, ``loss: [ccc]``."""
    model, batch, _ = toy_setup(heads=["regression"], model="rcma", fusion="rcma")
    objective = build_objective([{"name": "ccc"}], {})

    def loss() -> float:
        with torch.no_grad():
            return float(objective(model.eval()(batch), batch)[0])

    before = loss()
    fit(model, objective, batch, steps=25)
    assert loss() < before - 0.3


def test_ravdess_rcma_preset_trains_on_the_real_features(tmp_path, data_root):
    out = train_quick_cv(REPO / "configs/ravdess_rcma.yaml", data_root, tmp_path)
    m = json.loads((out / "metrics.json").read_text())
    assert m["folds"] == 2 and m["folds_done"] == [0, 1]
    assert 0.0 <= m["dev"]["accuracy"]["mean"] <= 100.0
    saved = (out / "fold_0" / "config.yaml").read_text()
    assert "name: rcma" in saved
    from safetensors.torch import load_file

    weights = load_file(out / "fold_0" / "seed_0" / "best.safetensors")
    assert any(".tcn.audio.convs." in k for k in weights)
    assert any(".fusion.steps.1." in k for k in weights)  # two per-iteration steps
