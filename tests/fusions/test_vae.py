"""The joint VAE fusion: product of experts over the modalities present, its loss term."""

from __future__ import annotations

import pytest
import torch

from ercgraph.config import load_config
from ercgraph.errors import ErcgraphError
from ercgraph.fusions.vae import JointVAEFusion, VAELoss
from ercgraph.models.outputs import ModelOutput
from tests.cli_helpers import cli, train_args


def test_missing_modalities_contribute_no_expert_and_eval_is_deterministic():
    torch.manual_seed(0)
    fusion = JointVAEFusion(["text", "audio"], dim=8, latent=4)
    h = {"text": torch.randn(5, 8), "audio": torch.randn(5, 8)}
    present = {
        "text": torch.ones(5, dtype=torch.bool),
        "audio": torch.tensor([1, 1, 0, 0, 1]).bool(),
    }
    fusion.eval()
    out = fusion(h, present)
    assert out.shape == (5, 8) and torch.equal(out, fusion(h, present))
    # an absent modality's state does not move the utterance
    changed = {"text": h["text"], "audio": h["audio"] + 100.0}
    again = fusion(changed, present)
    assert torch.allclose(again[2:4], out[2:4])  # audio absent there
    assert not torch.allclose(again[:2], out[:2])  # present there
    # no modality at all: the prior's mean, the same vector for every such utterance
    none = {m: torch.zeros(5, dtype=torch.bool) for m in present}
    prior = fusion(h, none)
    assert torch.allclose(prior, prior[:1].expand(5, -1))
    assert fusion.aux["vae/kl"] >= 0 and fusion.aux["vae/reconstruction"] == 0
    fusion.train()
    assert not torch.equal(fusion(h, present), fusion(h, present))  # sampled z


def test_one_modality_is_a_plain_vae_and_the_loss_reads_its_terms():
    fusion = JointVAEFusion(["text"], dim=6)
    fusion.train()
    z = fusion({"text": torch.randn(4, 6)}, {"text": torch.ones(4, dtype=torch.bool)})
    assert z.shape == (4, 6)
    out = ModelOutput(z, {}, {}, {}, aux=dict(fusion.aux))
    loss = VAELoss(beta=0.5)(out, None)
    expected = fusion.aux["vae/reconstruction"] + 0.5 * fusion.aux["vae/kl"]
    assert torch.allclose(loss, expected)
    loss.backward()
    assert fusion.encode["text"].weight.grad is not None
    with pytest.raises(ErcgraphError, match="set model.fusion: joint_vae"):
        VAELoss()(ModelOutput(z, {}, {}, {}), None)


def test_the_vae_loss_without_the_fusion_is_refused_before_any_work(tmp_path, meld_slice, cache):
    from ercgraph.pipeline import check_config

    cfg = load_config(None, ["loss=[{name: ce}, {name: vae, weight: 0.1}]"])
    with pytest.raises(ErcgraphError, match="set model.fusion: joint_vae"):
        check_config(cfg)
    extra = [
        "--set",
        "model.fusion=joint_vae",
        "--set",
        "loss=[{name: ce}, {name: vae, weight: 0.1}]",
        "--set",
        "train.epochs=1",
    ]
    assert cli(*train_args(tmp_path / "run", meld_slice, cache, *extra)) == 0
    import json

    history = json.loads((tmp_path / "run/seed_0/result.json").read_text())["history"]
    assert history[0]["train_loss_vae"] > 0
