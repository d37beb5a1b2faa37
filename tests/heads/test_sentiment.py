"""The sentiment head: a train-only vocabulary, targets, learning, and clear errors."""

import pandas as pd
import pytest
import torch

from ercgraph.data.corpus import Corpus
from ercgraph.errors import ErcgraphError
from ercgraph.heads.sentiment import SentimentHead
from ercgraph.losses import build_objective
from tests.components import fit, toy_corpus, toy_setup


def test_vocabulary_comes_from_the_training_split_only():
    corpus = toy_corpus()
    df = corpus.df.copy()
    df.loc[df["split"] == "test", "sentiment"] = "ecstatic"  # never seen in train
    corpus = Corpus(df, "toy", corpus.labels)
    state = SentimentHead.fit(corpus)
    assert state == {"labels": ["negative", "neutral", "positive"]}
    y = SentimentHead.targets(corpus, state)["y_sentiment"]
    test = torch.tensor((corpus.df["split"] == "test").to_numpy())
    assert bool((y[test] == -1).all()) and bool((y[~test] >= 0).all())


def test_a_corpus_without_the_column_is_refused_naming_it():
    corpus = toy_corpus()
    bare = Corpus(corpus.df.drop(columns=["sentiment"]), "toy", corpus.labels)
    with pytest.raises(ErcgraphError, match="needs a 'sentiment' column"):
        SentimentHead.fit(bare)
    # predicting new data without the column is fine: every target is missing
    y = SentimentHead.targets(bare, {"labels": ["neg"]}, required=False)["y_sentiment"]
    assert bool((y == -1).all())


def test_the_sentiment_head_learns_its_labels():
    model, batch, _ = toy_setup(heads=["emotion", "sentiment"])
    objective = build_objective([{"name": "sentiment"}], {})
    fit(model, objective, batch, 150)
    model.eval()
    with torch.no_grad():
        got = model.heads["sentiment"].collect(model(batch), batch)
    scores = model.heads["sentiment"].score(got["pred"].numpy(), got["target"].numpy())
    assert scores["sentiment_accuracy"] > 90  # memorises the tiny training graph
    assert set(scores) == {
        "sentiment_accuracy",
        "sentiment_unweighted_accuracy",
        "sentiment_weighted_f1",
        "sentiment_macro_f1",
    }


def test_unlabelled_sentiment_rows_give_no_loss():
    model, batch, _ = toy_setup(heads=["emotion", "sentiment"])
    batch.y_sentiment = torch.full_like(batch.y_sentiment, -1)
    assert build_objective([{"name": "sentiment"}], {})(model(batch), batch) == (None, {})


def test_missing_sentiment_vocab_is_refused():
    with pytest.raises(ErcgraphError, match="vocabulary"):
        toy_setup_no_state()


def toy_setup_no_state():
    from ercgraph.heads.base import HeadContext

    return SentimentHead(HeadContext(in_dim=4, hidden=4, in_dims={"text": 4}, num_classes=2))


def test_pandas_missing_values_do_not_become_a_class():
    corpus = toy_corpus()
    df = corpus.df.copy()
    df.loc[df.index[:3], "sentiment"] = None
    state = SentimentHead.fit(Corpus(df, "toy", corpus.labels))
    assert "None" not in state["labels"] and not any(pd.isna(v) for v in state["labels"])
