"""The linear probe beside every run (``train.baselines: [probe]``, ercgraph/probe.py)."""

from __future__ import annotations

import copy
import json
import logging
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import f1_score

from ercgraph.config import Config, TrainConfig
from ercgraph.data.corpus import Corpus
from ercgraph.data.features import FeatureStore
from ercgraph.data.normalise import Standardiser
from ercgraph.probe import ALPHAS, CS, compare, fit_probe
from tests.cli_helpers import cli, train_args
from tests.components import toy_setup

LABELS = ("joy", "anger", "neutral")


def planted(n_dialogues: int = 24, seed: int = 0, classes: int = 3) -> tuple[Corpus, FeatureStore]:
    """Dialogues whose labels a linear model can partly read off one modality."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(n_dialogues):
        split = "train" if d < n_dialogues // 2 else "dev" if d < 3 * n_dialogues // 4 else "test"
        for t in range(5):
            rows.append(
                {
                    "split": split,
                    "dialogue_id": f"d{d}",
                    "turn": t,
                    "speaker": "AB"[t % 2],
                    "label": LABELS[int(rng.integers(classes))],
                    "valence": float(rng.normal()),
                }
            )
    corpus = Corpus(pd.DataFrame(rows), "planted", LABELS)
    y = corpus.label_ids()
    x = rng.normal(size=(len(y), 6)) * 3 + 10
    x[:, 0] += 2.0 * y  # the signal
    corpus.df["valence"] = x[:, 1] * 0.5 + rng.normal(size=len(y)) * 0.5
    audio = rng.normal(size=(len(y), 3))
    present = np.arange(len(y)) % 3 != 0
    store = FeatureStore(
        {"text": torch.tensor(x, dtype=torch.float32), "audio": torch.tensor(audio).float()},
        {"text": torch.ones(len(y), dtype=torch.bool), "audio": torch.tensor(present)},
    )
    return corpus, store


def prep_of(corpus: Corpus, store: FeatureStore, normalise: bool = True):
    train = torch.tensor((corpus.df["split"] == "train").to_numpy())
    norm = Standardiser.fit(store, train) if normalise else None
    return SimpleNamespace(corpus=corpus, store=store, normaliser=norm, head_states={})


def heads_for(names):
    net, _, _ = toy_setup(heads=names)
    return dict(net.heads.items())


def cfg_with(select: str = "weighted_f1") -> Config:
    return Config(train=TrainConfig(select_metric=select))


def by_hand_features(corpus, store):
    """The probe's input, computed independently: train mean/std of present rows, zeros where
    a modality is missing, modalities side by side."""
    train = (corpus.df["split"] == "train").to_numpy()
    cols = []
    for m in store.modalities:
        x = store.features[m].numpy().astype(np.float64)
        keep = store.present[m].numpy()
        rows = x[train & keep]
        z = (x - rows.mean(0)) / np.maximum(rows.std(0), 1e-5)
        z[~keep] = 0
        cols.append(z)
    return np.concatenate(cols, 1)


def test_logistic_probe_equals_scikit_learn_on_the_same_arrays():
    corpus, store = planted()
    probe = fit_probe(cfg_with(), prep_of(corpus, store), heads_for(["emotion"]))
    x = by_hand_features(corpus, store)
    y = corpus.label_ids()
    split = corpus.df["split"].to_numpy()
    grid = {}
    models = {}
    m = LogisticRegression(max_iter=1000, warm_start=True)  # the documented path
    for c in CS:
        m.set_params(C=c).fit(x[split == "train"], y[split == "train"])
        pred = m.predict(x[split == "dev"])
        grid[f"{c:g}"] = 100 * f1_score(y[split == "dev"], pred, average="weighted")
        models[c] = copy.deepcopy(m)
        # the warm start changes the path, not the optimum: a cold fit predicts the same
        cold = LogisticRegression(C=c, max_iter=1000).fit(x[split == "train"], y[split == "train"])
        assert (cold.predict(x[split == "dev"]) == pred).mean() > 0.98
    best = max(CS, key=lambda c: (grid[f"{c:g}"], -CS.index(c)))
    assert probe["param"] == "C" and probe["chosen"] == best
    assert probe["grid"] == pytest.approx(grid, abs=1e-6)
    test_pred = models[best].predict(x[split == "test"])
    assert probe["test"]["weighted_f1"] == pytest.approx(
        100 * f1_score(y[split == "test"], test_pred, average="weighted"), abs=1e-6
    )
    assert probe["test"]["accuracy"] == pytest.approx(
        100 * (test_pred == y[split == "test"]).mean(), abs=1e-6
    )
    assert probe["features"] == {
        "modalities": ["text", "audio"],
        "dim": 9,
        "scaling": "the run's normaliser",
        "train_fit_scaler": False,
    }
    # the planted signal is found: far above chance on test
    assert probe["test"]["accuracy"] > 50


def test_probe_without_normaliser_standardises_on_train_itself():
    corpus, store = planted()
    with_norm = fit_probe(cfg_with(), prep_of(corpus, store), heads_for(["emotion"]))
    without = fit_probe(cfg_with(), prep_of(corpus, store, False), heads_for(["emotion"]))
    assert without["features"]["train_fit_scaler"] is True
    # text is always present, so the two scalings agree on it; audio differs only by the rows
    # missing (the run's normaliser fits present rows): the chosen C may differ, scores exist
    assert set(without["grid"]) == set(with_norm["grid"])


def test_ridge_probe_equals_scikit_learn_and_selects_by_the_run_metric():
    corpus, store = planted()
    heads = heads_for([{"name": "regression", "targets": ["valence"]}])
    probe = fit_probe(cfg_with("ccc"), prep_of(corpus, store), heads)
    x = by_hand_features(corpus, store)
    v = corpus.df["valence"].to_numpy()
    split = corpus.df["split"].to_numpy()
    from ercgraph.metrics import ccc

    grid = {}
    for a in ALPHAS:
        m = Ridge(alpha=a).fit(x[split == "train"], v[split == "train"])
        grid[f"{a:g}"] = ccc(m.predict(x[split == "dev"]), v[split == "dev"])
    assert probe["model"] == "ridge regression" and probe["select_metric"] == "ccc"
    assert probe["grid"] == pytest.approx(grid, abs=1e-6)
    best = max(ALPHAS, key=lambda a: (grid[f"{a:g}"], -ALPHAS.index(a)))
    m = Ridge(alpha=best).fit(x[split == "train"], v[split == "train"])
    assert probe["test"]["ccc"] == pytest.approx(
        ccc(m.predict(x[split == "test"]), v[split == "test"]), abs=1e-6
    )


def test_a_probe_that_cannot_be_fitted_says_why():
    corpus, store = planted(classes=1)  # every label is the first class
    out = fit_probe(cfg_with(), prep_of(corpus, store), heads_for(["emotion"]))
    assert "missing" in out and "1 labelled class" in out["missing"]
    corpus, store = planted()
    corpus.df.loc[corpus.df["split"] == "dev", "label"] = None
    out = fit_probe(cfg_with(), prep_of(corpus, store), heads_for(["emotion"]))
    assert out == {"missing": "the dev split has no labelled utterance to choose C on"}
    out = fit_probe(
        cfg_with("sentiment_weighted_f1"), prep_of(*planted()), heads_for(["sentiment"])
    )
    assert "no linear probe for the 'sentiment' head" in out["missing"]


def test_compare_gives_the_delta_and_warns_only_below_the_probe():
    probe = {
        "dev": {"weighted_f1": 60.0, "accuracy": 61.0},
        "test": {"weighted_f1": 58.0},
        "select_metric": "weighted_f1",
        "model": "logistic regression",
        "param": "C",
        "chosen": 1.0,
    }
    metrics = {
        "dev": {"weighted_f1": {"mean": 59.0}, "accuracy": {"mean": 62.5}},
        "test": {"weighted_f1": {"mean": 58.5}},
    }
    out = compare(metrics, probe)
    assert out["delta"] == {
        "dev": {"weighted_f1": -1.0, "accuracy": 1.5},
        "test": {"weighted_f1": 0.5},
    }
    assert "ends below its linear probe's (60.00" in out["warning"]
    metrics["dev"]["weighted_f1"]["mean"] = 60.5
    assert compare(metrics, probe)["warning"] is None
    # lower is better for MAE
    probe.update(select_metric="mae", dev={"mae": 0.5}, test={})
    assert compare({"dev": {"mae": {"mean": 0.6}}}, probe)["warning"] is not None
    assert compare({"dev": {"mae": {"mean": 0.4}}}, probe)["warning"] is None


def test_every_run_reports_its_probe_and_can_switch_it_off(
    tmp_path, meld_slice, cache, caplog, capsys
):
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="ercgraph"):
        assert cli(*train_args(out, meld_slice, cache)) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    probe = metrics["baselines"]["probe"]
    assert probe["model"] == "logistic regression" and probe["features"]["dim"] == 384
    assert set(probe["test"]) >= {"weighted_f1", "accuracy", "per_class"}
    d = probe["delta"]["dev"]["weighted_f1"]
    assert d == pytest.approx(metrics["dev"]["weighted_f1"]["mean"] - probe["dev"]["weighted_f1"])
    summary = (out / "summary.md").read_text()
    assert "| test, linear probe (logistic regression, C=" in summary
    assert f"Δ dev weighted_f1, model − linear probe: {d:+.2f}" in summary
    assert (
        f"linear probe (logistic regression, C={probe['chosen']:g}, same features): dev " in printed
    )
    assert f"(model {d:+.2f})" in printed
    warned = any("ends below its linear probe" in r.getMessage() for r in caplog.records)
    assert warned == (d < 0)
    off = tmp_path / "off"
    assert cli(*train_args(off, meld_slice, cache, "--set", "train.baselines=[]")) == 0
    assert "baselines" not in json.loads((off / "metrics.json").read_text())
    assert "linear probe" not in (off / "summary.md").read_text()


def test_unknown_baseline_is_refused_before_any_work(tmp_path, meld_slice, cache, capsys):
    out = tmp_path / "bad"
    assert cli(*train_args(out, meld_slice, cache, "--set", "train.baselines=[svm]")) == 2
    assert "train.baselines must be a list of ['probe']" in capsys.readouterr().err
    assert not out.exists()


def test_speaker_normalised_features_are_not_standardised_twice():
    from ercgraph.probe import node_features

    corpus, store = planted()
    prep = prep_of(corpus, store)  # a fitted normaliser, as speaker runs also keep one
    raw, note = node_features(prep, "speaker")  # the store already holds what the graphs read
    assert note == "the run's speaker normalisation"
    text = store.features["text"].numpy()
    assert np.allclose(raw[:, :6], text)
    standard, note = node_features(prep, "standard")
    assert note == "the run's normaliser"
    assert np.allclose(standard[:, :6], by_hand_features(corpus, store)[:, :6], atol=1e-5)
