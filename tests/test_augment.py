"""GAN augmentation: training split only, minority classes only, placed as configured."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch

from ercgraph.augment import augment
from ercgraph.config import AugmentConfig, load_config
from ercgraph.data.corpus import Corpus
from ercgraph.data.features import FeatureStore
from ercgraph.errors import ErcgraphError
from tests.cli_helpers import cli, train_args


def _corpus() -> tuple[Corpus, FeatureStore]:
    """12 train dialogues (class a common, b rarer, c very rare), 3 dev; 2 modalities."""
    rng = np.random.default_rng(0)
    rows = []
    for d in range(15):
        split = "train" if d < 12 else "dev"
        for t in range(5):
            r = rng.random()
            label = "a" if r < 0.7 else "b" if r < 0.95 else "c"
            rows.append(
                {
                    "split": split,
                    "dialogue_id": f"d{d}",
                    "turn": t,
                    "speaker": "xy"[t % 2],
                    "label": label,
                }
            )
    corpus = Corpus(pd.DataFrame(rows), "toy", ("a", "b", "c"))
    y = torch.from_numpy(corpus.label_ids())
    gen = torch.Generator().manual_seed(0)
    text = torch.randn(len(y), 6, generator=gen) + 2 * torch.nn.functional.one_hot(y, 6).float()
    audio = torch.randn(len(y), 3, generator=gen)
    return corpus, FeatureStore({"text": text, "audio": audio})


def _cfg(**kw) -> AugmentConfig:
    return AugmentConfig(**{"enabled": True, "epochs": 3, "min_examples": 5, **kw})


def test_isolated_samples_join_train_only_for_the_minority_classes(caplog):
    corpus, store = _corpus()
    counts = corpus.df[corpus.df["split"] == "train"]["label"].value_counts()
    with caplog.at_level(logging.WARNING, logger="ercgraph.augment"):
        new, new_store, report = augment(_cfg(), corpus, store)
    # b is a minority class (share < 1/3) with enough examples; c has fewer than min_examples
    assert report["classes"] == {"b": int(counts["b"])}
    assert (
        report["skipped"] == {"c": int(counts["c"])}
        and "fewer than augment.min_examples" in caplog.text
    )
    gen = new.df[new.df["generated"]]
    assert len(gen) == counts["b"] and set(gen["split"]) == {"train"} and set(gen["label"]) == {"b"}
    assert gen["dialogue_id"].nunique() == len(gen)  # one-utterance dialogues
    # the real rows keep their features, dev included, and every row has both modalities
    real = ~new.df["generated"].to_numpy()
    for m in ("text", "audio"):
        assert torch.equal(new_store.features[m][torch.from_numpy(real)], store.features[m])
        assert bool(new_store.present[m].all())
    assert new_store.features["text"].shape[1] == 6 and new_store.features["audio"].shape[1] == 3
    assert report["closeness"]["b"]["generated_to_train"] > 0 and report["gan_s"] >= 0


def test_dialogue_placement_extends_training_dialogues_that_hold_the_class():
    corpus, store = _corpus()
    new, _, _ = augment(_cfg(placement="dialogue", min_examples=1, multiplier=2.0), corpus, store)
    gen = new.df[new.df["generated"]]
    assert len(gen) > 0 and (gen["speaker"] == "__generated__").all()
    real = corpus.df
    for _, row in gen.iterrows():
        host = real[real["dialogue_id"] == row["dialogue_id"]]
        assert host["split"].iloc[0] == "train" and row["label"] in set(host["label"])
        assert row["turn"] > host["turn"].max()
    assert new.num_utterances == corpus.num_utterances + len(gen)


def test_bad_augmentation_settings_are_refused():
    with pytest.raises(ErcgraphError, match="may only join the training split"):
        load_config(None, ["augment={enabled: true, split: test}"])
    with pytest.raises(ErcgraphError, match="augment.placement must be one of"):
        load_config(None, ["augment={enabled: true, placement: anywhere}"])


def test_a_run_reports_its_augmentation(tmp_path, meld_slice, cache):
    out = tmp_path / "run"
    extra = [
        "--set",
        "augment={enabled: true, epochs: 2, min_examples: 5}",
        "--set",
        "train.epochs=1",
        "--set",
        "train.seeds=[0]",
    ]
    assert cli(*train_args(out, meld_slice, cache, *extra)) == 0
    report = json.loads((out / "features.json").read_text())["augmentation"]
    assert report["generated"] == sum(report["classes"].values()) > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "gan_s" in metrics["timings"]
