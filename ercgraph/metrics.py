"""Regression metrics for dimensional emotion: CCC, Pearson correlation and MAE.

Each is defined for every input, including constant predictions or targets, so a collapsed
model scores 0 correlation rather than NaN.
"""

from __future__ import annotations

import numpy as np

#: Metric name prefixes where lower is better (model selection minimises them).
LOWER_IS_BETTER = ("mae",)


def higher_is_better(name: str) -> bool:
    """Whether a larger value of metric ``name`` is better (False for MAE and ``mae_<dim>``)."""
    return not any(name == p or name.startswith(f"{p}_") for p in LOWER_IS_BETTER)


def ccc(pred: np.ndarray, target: np.ndarray) -> float:
    """Lin's concordance correlation coefficient, ``2 cov / (var_p + var_t + (mean_p - mean_t)^2)``.

    Population (biased) moments, as in the AVEC/ABAW evaluation code. When the denominator is 0
    (both constant and equal) the agreement is perfect: 1.0.
    """
    pred, target = np.asarray(pred, dtype=float), np.asarray(target, dtype=float)
    if pred.size == 0:
        return 0.0
    mp, mt = pred.mean(), target.mean()
    cov = ((pred - mp) * (target - mt)).mean()
    denom = pred.var() + target.var() + (mp - mt) ** 2
    return float(2.0 * cov / denom) if denom > 0 else 1.0


def pearson(pred: np.ndarray, target: np.ndarray) -> float:
    """Pearson correlation; 0.0 when either side is constant (undefined)."""
    pred, target = np.asarray(pred, dtype=float), np.asarray(target, dtype=float)
    if pred.size < 2:
        return 0.0
    sp, st = pred.std(), target.std()
    if sp == 0 or st == 0:
        return 0.0
    return float(((pred - pred.mean()) * (target - target.mean())).mean() / (sp * st))


def mae(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute error (0.0 on empty input)."""
    pred, target = np.asarray(pred, dtype=float), np.asarray(target, dtype=float)
    return float(np.abs(pred - target).mean()) if pred.size else 0.0


def regression_scores(pred: np.ndarray, target: np.ndarray, names: list[str]) -> dict[str, float]:
    """Per dimension ``ccc_<name>``, ``pearson_<name>``, ``mae_<name>``, plus their means
    ``ccc``, ``pearson``, ``mae``; rows whose target is NaN are skipped per dimension."""
    out: dict[str, float] = {}
    for j, name in enumerate(names):
        keep = ~np.isnan(target[:, j])
        p, t = pred[keep, j], target[keep, j]
        out[f"ccc_{name}"] = ccc(p, t)
        out[f"pearson_{name}"] = pearson(p, t)
        out[f"mae_{name}"] = mae(p, t)
    for key in ("ccc", "pearson", "mae"):
        out[key] = float(np.mean([out[f"{key}_{n}"] for n in names])) if names else 0.0
    return out
