"""The regression head: train-fit scaling, targets, CCC training, and clear errors."""

import numpy as np
import pytest
import torch

from ercgraph.data.corpus import Corpus
from ercgraph.errors import ErcgraphError
from ercgraph.heads.regression import RegressionHead
from ercgraph.losses import build_objective
from ercgraph.losses.regression import ccc_loss
from tests.components import fit, toy_corpus, toy_setup


def test_scale_is_fitted_on_the_training_split_only():
    corpus = toy_corpus()
    df = corpus.df.copy()
    df.loc[df["split"] != "train", "valence"] = 100.0  # would move the mean if dev/test leaked
    state = RegressionHead.fit(Corpus(df, "toy", corpus.labels))
    train = df[df["split"] == "train"]
    assert state["names"] == ["valence", "arousal", "dominance"]
    assert np.isclose(state["mean"][0], train["valence"].mean())
    assert np.isclose(state["std"][0], train["valence"].std(ddof=0))


def test_missing_columns_are_named():
    corpus = toy_corpus()
    bare = Corpus(corpus.df.drop(columns=["arousal"]), "toy", corpus.labels)
    with pytest.raises(ErcgraphError, match=r"looked for columns \['valence', 'arousal'"):
        RegressionHead.fit(bare)
    y = RegressionHead.targets(bare, {}, required=False)["y_regression"]
    assert bool(torch.isnan(y[:, 1]).all()) and not bool(torch.isnan(y[:, 0]).any())


def test_selectable_metrics_follow_the_targets():
    assert "ccc_valence" in RegressionHead.selectable(targets=["valence"])
    assert "ccc_dominance" not in RegressionHead.selectable(targets=["valence"])


def test_ccc_loss_is_one_minus_ccc_and_skips_nan():
    t = torch.tensor([[1.0], [2.0], [3.0], [float("nan")]])
    assert torch.isclose(ccc_loss(t.nan_to_num(0.0), t), torch.tensor(0.0), atol=1e-6)
    const = torch.full((4, 1), 2.0)
    assert torch.isclose(ccc_loss(const, t), torch.tensor(1.0))  # defined, no NaN


def test_the_head_learns_a_planted_target_with_the_ccc_loss():
    model, batch, _ = toy_setup(heads=["regression"])
    # a target the features determine: valence = 3 + text feature 0
    batch.y_regression[:, 0] = 3.0 + batch["text"].x[:, 0]
    objective = build_objective([{"name": "ccc"}], {})
    fit(model, objective, batch, 200)
    with torch.no_grad():
        got = model.heads["regression"].collect(model.eval()(batch), batch)
    scores = model.heads["regression"].score(got["pred"].numpy(), got["target"].numpy())
    assert scores["ccc_valence"] > 0.8, scores


def test_mse_term_is_on_the_original_scale_and_skips_nan():
    from types import SimpleNamespace

    term = build_objective([{"name": "mse"}], {}).terms["mse"]
    out = SimpleNamespace(aux={"regression": torch.tensor([[1.0], [3.0], [9.0]])})
    batch = SimpleNamespace(y_regression=torch.tensor([[2.0], [3.0], [float("nan")]]))
    assert torch.isclose(term(out, batch), torch.tensor(0.5))
