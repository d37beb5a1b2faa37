"""The linear probe every run is measured against (``train.baselines: [probe]``).

A graph model earns its place only where it beats a linear model on the same node features. So,
beside the model, each run fits a linear probe on exactly what the model reads: every
utterance's own features, one row per utterance, the modalities concatenated, standardised with
the run's own normaliser (fitted on train; with ``features.normalise: none`` the probe fits a
standardiser on train itself, since an unscaled logistic regression would be a strawman). No
context, no graph.

- A classification head (``emotion``): multinomial logistic regression (scikit-learn, lbfgs, no
  class weights), its inverse regularisation ``C`` chosen on dev from :data:`CS`; the fits walk
  the regularisation path from the strongest ``C`` up, each warm-started from the last (at most
  ``_MAX_ITER`` iterations each; ``converged`` says whether the chosen one converged).
- A regression head (``regression``): ridge regression, ``alpha`` chosen on dev from
  :data:`ALPHAS`, one model per target dimension on the rows where that target is known.

The grid value is chosen by the run's own ``train.select_metric`` on dev (the first on ties); test
is scored once, with that probe, by the head's own ``score`` (so every metric key matches the
model's). The probe is deterministic and needs no seed.

A probe that cannot be fitted (one class in train, a dev split without labels, a select metric
of another head) never stops the run: :func:`fit_probe` returns ``{"missing": reason}`` and the
report says why.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: inverse regularisation strengths tried for the logistic probe
CS = (0.01, 0.1, 1.0, 10.0)
#: regularisation strengths tried for the ridge probe
ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)
_MAX_ITER = 1000


def node_features(prep: Any, normalise: str = "standard") -> tuple[np.ndarray, str]:
    """``[utterances, sum of dims]`` float64: the store's modalities as the graphs read them
    (missing modalities stay zero), and a note on the scaling used.

    Args:
        prep: the prepared corpus and features.
        normalise: the run's ``features.normalise``. With ``standard`` the graphs standardise
            the rows each batch gathers, so the saved normaliser is applied here too; with
            ``speaker`` the store already holds the speaker-standardised features.
    """
    store = prep.store
    norm = prep.normaliser if normalise == "standard" else None
    cols = []
    for m in store.modalities:
        x = store.features[m].numpy().astype(np.float64)
        present = store.present[m].numpy().astype(bool)
        if norm is not None and m in norm.mean:
            x = (x - norm.mean[m].numpy()) / norm.std[m].numpy()
        x[~present] = 0.0
        cols.append(x)
    if norm is not None:
        note = "the run's normaliser"
    elif normalise == "speaker" and prep.normaliser is not None:
        note = "the run's speaker normalisation"
    else:
        note = "as the model reads them"
    return np.concatenate(cols, axis=1), note


def _probe_head(cfg: Any, heads: dict[str, Any]) -> tuple[str | None, str]:
    """The head the run selects on (the probe's target), or None and why not."""
    select = cfg.train.select_metric
    for name, head in heads.items():
        names = {"targets": list(head.names)} if hasattr(head, "names") else {}
        if select in type(head).selectable(**names):
            if name in ("emotion", "regression"):
                return name, ""
            return None, f"there is no linear probe for the {name!r} head ({select} selects on it)"
    return None, f"no head of this run reports {select!r}"


def fit_probe(
    cfg: Any, prep: Any, heads: dict[str, Any], score_test: bool = True
) -> dict[str, Any]:
    """Fit the linear probe of a run and score it on dev (every grid value) and test (once).

    Args:
        cfg: the run's config (``train.select_metric`` chooses the grid value).
        prep: the prepared corpus and features.
        heads: the model's heads by name (their ``score`` methods score the probe).
        score_test: False leaves test unscored (``test`` is None), as in a sweep's trials.

    Returns:
        ``head``, ``model``, ``param`` and ``chosen`` (the grid value kept), ``grid``
        (``{value: dev select metric}``), ``select_metric``, ``features`` (modalities, width,
        scaling), ``dev`` and ``test`` (the head's score dicts) and ``fit_s``; or
        ``{"missing": reason}`` when no probe can be fitted.
    """
    t0 = time.perf_counter()
    name, why = _probe_head(cfg, heads)
    if name is None:
        return {"missing": why}
    from threadpoolctl import threadpool_limits

    x, scaling = node_features(prep, cfg.features.normalise)
    split = prep.corpus.df["split"].to_numpy()
    if not score_test:  # test rows are neither fitted nor scored
        split = np.where(split == "test", "", split)
    # BLAS/OpenMP with the run's thread count: scikit-learn's default (every core) spins
    # against the run's own threads and slowed a 1,000-row fit from 0.4 s to 16 s here
    try:
        with threadpool_limits(limits=cfg.train.threads or 1):
            if name == "emotion":
                out = _logistic(cfg, prep, heads[name], x, split)
            else:
                out = _ridge(cfg, prep, heads[name], x, split)
    except _Missing as exc:
        return {"missing": str(exc)}
    if "missing" in out:
        return out
    if norm_is_train_fit := prep.normaliser is None:
        scaling = "standardised on train by the probe (the run has no normaliser)"
    out["features"] = {
        "modalities": list(prep.store.modalities),
        "dim": int(x.shape[1]),
        "scaling": scaling,
        "train_fit_scaler": norm_is_train_fit,
    }
    out["fit_s"] = time.perf_counter() - t0
    return out


class _Missing(Exception):
    """Why the probe cannot be fitted."""


def _scaled(prep: Any, x: np.ndarray, train: np.ndarray) -> np.ndarray:
    if prep.normaliser is not None:
        return x
    mean = x[train].mean(0)
    std = np.maximum(x[train].std(0), 1e-5)
    return (x - mean) / std


def _choose(
    cfg: Any, head: Any, fits: list[tuple[float, Any]], dev_pred: Any, dev_target: np.ndarray
) -> tuple[float, Any, dict[str, float]]:
    from ercgraph.metrics import higher_is_better

    select = cfg.train.select_metric
    grid: dict[str, float] = {}
    best = None
    sign = 1.0 if higher_is_better(select) else -1.0
    for value, model in fits:
        scores = head.score(dev_pred(model), dev_target)
        if select not in scores:
            raise _Missing(f"the probe's dev scores have no {select!r}")
        grid[f"{value:g}"] = float(scores[select])
        if best is None or sign * scores[select] > sign * best[2]:
            best = (value, model, float(scores[select]))
    return best[0], best[1], grid


def _logistic(cfg: Any, prep: Any, head: Any, x: np.ndarray, split: np.ndarray) -> dict[str, Any]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    y = prep.corpus.label_ids()
    num_classes = len(prep.corpus.labels)
    train = (split == "train") & (y >= 0)
    dev = (split == "dev") & (y >= 0)
    test = (split == "test") & (y >= 0)
    if len(np.unique(y[train])) < 2:
        raise _Missing(
            f"the training split holds {len(np.unique(y[train]))} labelled class(es); a "
            "classifier needs at least 2"
        )
    if not dev.any():
        raise _Missing("the dev split has no labelled utterance to choose C on")
    z = _scaled(prep, x, train)

    def probs(model: Any, rows: np.ndarray) -> np.ndarray:
        p = np.zeros((int(rows.sum()), num_classes))
        p[:, model.classes_] = model.predict_proba(z[rows])
        return p

    fits = []
    converged = {}
    # the regularisation path, weakest C last, each fit warm-started from the one before: the
    # same optima as separate fits, in a fraction of the iterations
    model = LogisticRegression(C=CS[0], max_iter=_MAX_ITER, warm_start=True)
    for c in CS:
        model.set_params(C=c)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(z[train], y[train])
        converged[f"{c:g}"] = bool(np.all(model.n_iter_ < _MAX_ITER))
        fits.append((c, copy.deepcopy(model)))
    chosen, model, grid = _choose(cfg, head, fits, lambda m: probs(m, dev), y[dev])
    out = {
        "head": "emotion",
        "model": "logistic regression",
        "param": "C",
        "chosen": chosen,
        "grid": grid,
        "select_metric": cfg.train.select_metric,
        "converged": converged[f"{chosen:g}"],
        "dev": head.score(probs(model, dev), y[dev]),
    }
    out["test"] = head.score(probs(model, test), y[test]) if test.any() else None
    return out


def _ridge(cfg: Any, prep: Any, head: Any, x: np.ndarray, split: np.ndarray) -> dict[str, Any]:
    from sklearn.linear_model import Ridge

    from ercgraph.models.build import head_key
    from ercgraph.registry import HEADS

    state = prep.head_states.get(head_key("regression"), {})
    target = (
        HEADS.get("regression")
        .targets(prep.corpus, state, required=False, targets=list(head.names))["y_regression"]
        .numpy()
        .astype(np.float64)
    )
    train, dev, test = (split == s for s in ("train", "dev", "test"))
    known = np.isfinite(target)
    if not (known & dev[:, None]).any():
        raise _Missing("the dev split has no regression target to choose alpha on")
    z = _scaled(prep, x, train)

    def fit(alpha: float) -> list[Any]:
        models = []
        for j in range(target.shape[1]):
            rows = train & known[:, j]
            if rows.sum() < 2:
                raise _Missing(f"fewer than 2 training rows have the target {head.names[j]!r}")
            models.append(Ridge(alpha=alpha).fit(z[rows], target[rows, j]))
        return models

    def pred(models: list[Any], rows: np.ndarray) -> np.ndarray:
        return np.stack([m.predict(z[rows]) for m in models], axis=1)

    fits = [(a, fit(a)) for a in ALPHAS]
    chosen, models, grid = _choose(cfg, head, fits, lambda m: pred(m, dev), target[dev])
    return {
        "head": "regression",
        "model": "ridge regression",
        "param": "alpha",
        "chosen": chosen,
        "grid": grid,
        "select_metric": cfg.train.select_metric,
        "dev": head.score(pred(models, dev), target[dev]),
        "test": head.score(pred(models, test), target[test]) if test.any() else None,
    }


def compare(metrics: dict[str, Any], probe: dict[str, Any]) -> dict[str, Any]:
    """The model's mean minus the probe's, per split, for every metric both report; and a
    warning text when the model's dev select metric ends below the probe's (None otherwise)."""
    from ercgraph.metrics import higher_is_better

    delta: dict[str, dict[str, float]] = {}
    for split in ("dev", "test"):
        ours, theirs = metrics.get(split) or {}, probe.get(split) or {}
        delta[split] = {
            k: float(ours[k]["mean"] - theirs[k])
            for k in ours
            if isinstance(ours[k], dict) and "mean" in ours[k] and isinstance(theirs.get(k), float)
        }
    select = probe.get("select_metric")
    warning = None
    d = delta["dev"].get(select)
    if d is not None and (d < 0 if higher_is_better(select) else d > 0):
        warning = (
            f"the model's dev {select} ({metrics['dev'][select]['mean']:.2f}) ends below its "
            f"linear probe's ({probe['dev'][select]:.2f}, {probe['model']}, "
            f"{probe['param']}={probe['chosen']:g}): on these features the graph model does "
            "not beat a context-free linear model"
        )
    return {"delta": delta, "warning": warning}
