"""The perspective study (Wu, Lu and Dai, ICASSP 2023): the ``perspective`` head (a classifier
per modality, late fusion by config), the ``perspective`` loss term, and the RAVDESS config with
its three fusion strategies."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ercgraph.config import load_config
from ercgraph.errors import ErcgraphError
from ercgraph.losses import build_objective
from ercgraph.pipeline import check_config
from tests.cli_helpers import train_quick_cv
from tests.components import fit, toy_setup

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "ravdess_perspective.yaml"
MODALITIES = ("text", "audio")


def setup(perspective=None, model: str = "mlp", **kw):
    spec = {"name": "perspective", **(perspective or {})}
    net, batch, _ = toy_setup(heads=["emotion", spec], model=model, **kw)
    return net, batch


@pytest.mark.parametrize("model", ["mlp", "hierarchical_gcn"])
def test_perspective_head_writes_one_logits_tensor_per_modality(model):
    net, batch = setup(model=model)
    out = net.eval()(batch)
    keys = sorted(k for k in out.aux if k.startswith("perspective_logits/"))
    assert keys == ["perspective_logits/audio", "perspective_logits/text"]
    assert all(out.aux[k].shape == (batch.y.numel(), 3) for k in keys)
    # without late fusion the emotion logits are the emotion head's own
    assert torch.equal(out.logits, net.heads["emotion"].classifier(out.utterance))
    assert "late=False" in repr(net.heads["perspective"])


def test_each_classifier_reads_its_own_modality_state():
    net, batch = setup()
    out = net.eval()(batch)
    head = net.heads["perspective"]
    for m in MODALITIES:
        expected = head.classifiers[m](out.nodes[m])
        assert torch.equal(out.aux[f"perspective_logits/{m}"], expected)


def test_perspective_loss_falls_on_a_tiny_training_loop():
    net, batch = setup()
    objective = build_objective([{"name": "perspective"}], {})
    with torch.no_grad():
        start = float(objective(net.eval()(batch), batch)[0])
    fit(net, objective, batch, steps=60)
    with torch.no_grad():
        end = float(objective(net.eval()(batch), batch)[0])
    assert end < 0.5 * start


def _manual(out, batch, weights=None):
    total = 0.0
    for m in MODALITIES:
        keep = (batch.y >= 0) & out.present[m]
        w = 1.0 if weights is None else weights.get(m, 0.0)
        total += w * F.cross_entropy(out.aux[f"perspective_logits/{m}"][keep], batch.y[keep])
    return float(total)


def test_loss_sums_modalities_over_labelled_present_rows_only():
    net, batch = setup()
    y = batch.y.clone()
    y[::3] = -1  # unlabelled rows
    batch.y = y
    with torch.no_grad():
        out = net.eval()(batch)
    assert not out.present["audio"].all()
    term = build_objective([{"name": "perspective"}], {}).terms["perspective"]
    assert float(term(out, batch)) == pytest.approx(_manual(out, batch), rel=1e-5)
    weighted = {"text": 1.0, "audio": 0.25}
    term = build_objective([{"name": "perspective", "options": {"weights": weighted}}], {})
    value = float(term.terms["perspective"](out, batch))
    assert value == pytest.approx(_manual(out, batch, weighted), rel=1e-5)
    mean = build_objective([{"name": "perspective", "options": {"reduction": "mean"}}], {})
    assert float(mean.terms["perspective"](out, batch)) == pytest.approx(
        _manual(out, batch) / 2, rel=1e-5
    )


def test_loss_is_none_without_labels_and_refused_without_the_head():
    net, batch = setup()
    batch.y = torch.full_like(batch.y, -1)
    term = build_objective([{"name": "perspective"}], {}).terms["perspective"]
    assert term(net.eval()(batch), batch) is None
    plain, batch2, _ = toy_setup(heads=["emotion"], model="mlp")
    with pytest.raises(ErcgraphError, match="perspective head"):
        term(plain.eval()(batch2), batch2)
    bad = build_objective([{"name": "perspective", "options": {"weights": {"video": 1}}}], {})
    with pytest.raises(ErcgraphError, match="video"):
        bad.terms["perspective"](net.eval()(batch2), batch2)


def test_late_fusion_makes_the_final_logits_the_average_of_the_present_modalities():
    net, batch = setup({"late": True})
    out = net.eval()(batch)
    text, audio = (out.aux[f"perspective_logits/{m}"] for m in MODALITIES)
    both = out.present["audio"]
    assert torch.allclose(out.logits[both], (text[both] + audio[both]) / 2, atol=1e-6)
    assert torch.allclose(out.logits[~both], text[~both], atol=1e-6)  # audio missing
    assert torch.equal(out.aux["logits"], out.logits)  # what the ce term and the scores read


def test_late_fusion_with_the_fused_logits_as_one_more_voter():
    net, batch = setup({"late": True, "include_fused": True})
    out = net.eval()(batch)
    fused = net.heads["emotion"].classifier(out.utterance)
    text, audio = (out.aux[f"perspective_logits/{m}"] for m in MODALITIES)
    both = out.present["audio"]
    assert torch.allclose(out.logits[both], (text + audio + fused)[both] / 3, atol=1e-6)
    assert torch.allclose(out.logits[~both], (text + fused)[~both] / 2, atol=1e-6)


def test_late_fusion_needs_the_emotion_head_first():
    with pytest.raises(ErcgraphError, match="emotion head before"):
        net, batch, _ = toy_setup(heads=[{"name": "perspective", "late": True}, "emotion"])
        net(batch)
    with pytest.raises(ErcgraphError, match="include_fused"):
        setup({"include_fused": True})


def test_late_fusion_trains_through_ce():
    net, batch = setup({"late": True})
    objective = build_objective([{"name": "ce"}], {"class_counts": torch.ones(3)})
    before = {m: p.detach().clone() for m, p in net.heads["perspective"].named_parameters()}
    fit(net, objective, batch, steps=3)
    after = dict(net.heads["perspective"].named_parameters())
    assert all(not torch.equal(before[k], after[k]) for k in before)


def test_perspective_head_scores_each_modality_on_its_present_rows():
    net, batch = setup()
    head = net.heads["perspective"]
    with torch.no_grad():
        out = net.eval()(batch)
        got = head.collect(out, batch)
    pred, target = got["pred"].numpy(), got["target"].numpy()
    assert pred.shape == (batch.y.numel(), 2, 3)
    assert np.isnan(pred[~out.present["audio"].numpy(), 1]).all()
    scores = head.score(pred, target)
    assert set(scores) == {"perspective_accuracy_text", "perspective_accuracy_audio"}
    keep = out.present["audio"].numpy()
    expected = (pred[keep, 1].argmax(1) == target[keep]).mean()
    assert scores["perspective_accuracy_audio"] == pytest.approx(100 * expected)


# -- the config and its three fusion strategies --------------------------------------------------
STRATEGIES = {
    "cross_attention": [],
    "early": ["model.fusion=concat"],
    "late": ["heads=[emotion, {name: perspective, late: true}]"],
}


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_each_fusion_strategy_is_a_one_line_override(strategy, tmp_path, monkeypatch):
    monkeypatch.setenv("ERCGRAPH_CACHE", str(tmp_path))
    cfg = load_config(CONFIG, STRATEGIES[strategy])
    check_config(cfg)
    assert cfg.features.modalities == ["audio", "visual"]
    assert [t.name for t in cfg.loss] == ["ce", "perspective"]
    assert (cfg.model.fusion == "concat") == (strategy == "early")
    header = CONFIG.read_text()
    assert all(line in header for line in STRATEGIES[strategy])


def test_ravdess_perspective_config_runs_from_the_cli(tmp_path, data_root):
    out = train_quick_cv(CONFIG, data_root, tmp_path)
    m = json.loads((out / "metrics.json").read_text())
    assert m["folds"] == 2 and m["folds_done"] == [0, 1]
    history = json.loads((out / "fold_0" / "seed_0" / "result.json").read_text())["history"]
    assert math.isfinite(history[0]["train_loss_perspective"])
    assert 0.0 <= history[0]["dev_perspective_accuracy_visual"] <= 100.0
