"""Regression metrics: known values, and defined (never NaN) on constant inputs."""

import numpy as np

from ercgraph.metrics import ccc, mae, pearson, regression_scores


def test_ccc_matches_its_definition_and_penalises_bias_and_scale():
    rng = np.random.default_rng(0)
    t = rng.normal(size=200)
    assert abs(ccc(t, t) - 1.0) < 1e-12
    p = 0.5 * t + 1.0
    expected = 2 * np.cov(p, t, bias=True)[0, 1] / (p.var() + t.var() + (p.mean() - t.mean()) ** 2)
    assert abs(ccc(p, t) - expected) < 1e-12
    assert ccc(p, t) < pearson(p, t)  # correlation is perfect, agreement is not
    assert abs(pearson(p, t) - 1.0) < 1e-12


def test_constant_predictions_or_targets_are_defined():
    t = np.array([1.0, 2.0, 3.0])
    assert ccc(np.full(3, 2.0), t) == 0.0
    assert pearson(np.full(3, 2.0), t) == 0.0
    assert ccc(np.full(3, 2.0), np.full(3, 2.0)) == 1.0  # identical constants agree perfectly
    assert ccc(np.full(3, 1.0), np.full(3, 2.0)) == 0.0
    assert not np.isnan([ccc(np.zeros(0), np.zeros(0)), pearson(t[:1], t[:1])]).any()


def test_regression_scores_skip_missing_targets_per_dimension():
    pred = np.array([[1.0, 5.0], [2.0, 6.0], [3.0, 0.0]])
    target = np.array([[1.0, 5.0], [2.0, 6.0], [3.0, np.nan]])
    s = regression_scores(pred, target, ["valence", "arousal"])
    assert s["ccc_valence"] == 1.0 and s["ccc_arousal"] == 1.0 and s["mae_arousal"] == 0.0
    assert s["ccc"] == 1.0 and abs(mae(pred[:, 0], target[:, 0])) == 0.0
