"""Decision rules fitted on dev: per-class offsets that move minority classes, within a limit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ercgraph.config import load_config
from ercgraph.decision import _f1s, apply_offsets, fit_offsets
from ercgraph.errors import ErcgraphError
from tests.cli_helpers import cli, train_args


def _skewed(n: int = 600, seed: int = 0):
    """Three classes (70/20/10 %); the model is right but shy of the rare class."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=[0.7, 0.2, 0.1])
    logits = rng.normal(size=(n, 3)) * 0.5
    logits[np.arange(n), y] += 1.0
    logits[:, 0] += 0.8  # a bias towards the majority
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True), y


def test_offsets_raise_macro_f1_and_respect_the_weighted_f1_limit():
    probs, y = _skewed()
    fit = fit_offsets(probs, y, "macro_f1")
    assert fit["dev_after"]["macro_f1"] > fit["dev_before"]["macro_f1"] + 3
    assert fit["offsets"][2] > 0  # the rare class is moved up
    adjusted = apply_offsets(probs, fit["offsets"])
    assert np.allclose(adjusted.sum(1), 1)
    assert _f1s(y, adjusted.argmax(1), 3)[0] == pytest.approx(fit["dev_after"]["macro_f1"])
    capped = fit_offsets(probs, y, "macro_f1", max_weighted_f1_drop=0.0)
    assert capped["dev_after"]["weighted_f1"] >= capped["dev_before"]["weighted_f1"] - 1e-9
    assert capped["dev_after"]["macro_f1"] <= fit["dev_after"]["macro_f1"]
    # fitted on one sample, the offsets carry to another drawn alike (not memorised noise)
    p2, y2 = _skewed(seed=1)
    before = _f1s(y2, p2.argmax(1), 3)[0]
    assert _f1s(y2, apply_offsets(p2, fit["offsets"]).argmax(1), 3)[0] > before
    with pytest.raises(ErcgraphError, match="no labelled utterance"):
        fit_offsets(probs, -np.ones(len(y), dtype=int))


def test_bad_decision_config_is_refused():
    with pytest.raises(ErcgraphError, match="decision.rule must be one of"):
        load_config(None, ["decision.rule=threshold"])
    with pytest.raises(ErcgraphError, match="decision.max_weighted_f1_drop must be >= 0"):
        load_config(None, ["decision.rule=offsets", "decision.max_weighted_f1_drop=-1"])


def test_a_run_with_offsets_saves_them_and_evaluate_applies_them(tmp_path, meld_slice, cache):
    out = tmp_path / "run"
    extra = [
        "--set",
        "decision.rule=offsets",
        "--set",
        "train.epochs=2",
        "--set",
        "train.seeds=[0]",
    ]
    assert cli(*train_args(out, meld_slice, cache, *extra)) == 0
    saved = json.loads((out / "seed_0/decision.json").read_text())
    assert len(saved["offsets"]) == 7
    metrics = json.loads((out / "metrics.json").read_text())
    assert "test_argmax" in metrics and "test" in metrics
    assert cli("evaluate", str(out), "--data-root", str(meld_slice), "--cache-dir", str(cache)) == 0
    rescored = json.loads((out / "rescored.json").read_text())
    for metric in ("weighted_f1", "macro_f1"):
        assert rescored["test"][metric]["mean"] == pytest.approx(metrics["test"][metric]["mean"])
