"""A body that declares ``NEEDS_CONTEXT`` is refused on a corpus of one-utterance dialogues,
naming the body and the corpus, before any feature is read; the built-in bodies all train there
(they degrade to per-utterance models), so none declares it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ercgraph.config import load_config
from ercgraph.errors import ErcgraphError
from ercgraph.registry import MODELS
from tests.cli_helpers import cli


def clips(root, n: int = 24, per_dialogue: int = 1) -> list[str]:
    """A table corpus ``clips`` of ``n`` utterances, ``per_dialogue`` per dialogue, with array
    features that carry the label, and its ``--set`` overrides."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, n)
    splits = ["train"] * (n // 2) + ["dev"] * (n // 4) + ["test"] * (n - n // 2 - n // 4)
    pd.DataFrame(
        {
            "clip": [f"c{i // per_dialogue}" for i in range(n)],
            "turn": [i % per_dialogue for i in range(n)],
            "speaker": [f"s{i % 3}" for i in range(n)],
            "label": np.where(labels == 1, "y", "x"),
            "split": splits,
        }
    ).to_csv(root / "clips.csv", index=False)
    feats = rng.normal(size=(n, 6)) + 2.0 * labels[:, None]
    np.save(root / "clips.npy", feats.astype(np.float32))
    return [
        "data={reader: table, name: clips, path: clips.csv, columns: {dialogue_id: clip}}",
        "features={modalities: [audio], files: {audio: {path: clips.npy}}}",
        "model.hidden=16",
        "train.epochs=1",
        f"data_root={root}",
        f"cache_dir={root / 'cache'}",
    ]


@pytest.fixture
def needy(monkeypatch):
    """``dagerc`` declaring that it needs context, and the pipeline's feature and head steps
    made to fail loudly if they are reached."""
    import ercgraph.pipeline as pipeline

    monkeypatch.setattr(MODELS.get("dagerc"), "NEEDS_CONTEXT", True)

    def reached(*args, **kwargs):
        raise AssertionError("work started before the refusal")

    monkeypatch.setattr(pipeline, "load_features", reached)
    monkeypatch.setattr(pipeline, "fit_heads", reached)


def test_a_body_needing_context_is_refused_on_one_utterance_dialogues(tmp_path, needy):
    from ercgraph.pipeline import prepare

    cfg = load_config(None, [*clips(tmp_path), "model.name=dagerc"])
    with pytest.raises(ErcgraphError) as err:
        prepare(cfg)
    assert str(err.value) == (
        "model 'dagerc' needs dialogues of more than one utterance; corpus 'clips' has only "
        "one-utterance dialogues"
    )


def test_the_cli_prints_the_refusal_on_one_line(tmp_path, needy, capsys):
    sets = clips(tmp_path)
    args = ["train", "--out", str(tmp_path / "run"), "--set", "model.name=dagerc"]
    for s in sets:
        args += ["--set", s]
    assert cli(*args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model 'dagerc' needs dialogues" in err[0] and "'clips'" in err[0]
    assert not (tmp_path / "cache").exists()  # nothing was read or extracted


def test_the_declaration_lets_longer_dialogues_through(tmp_path, monkeypatch):
    from ercgraph.pipeline import check_context, read_corpus

    monkeypatch.setattr(MODELS.get("dagerc"), "NEEDS_CONTEXT", True)
    cfg = load_config(None, [*clips(tmp_path, per_dialogue=2), "model.name=dagerc"])
    check_context(cfg, read_corpus(cfg)[0])  # two utterances per dialogue: allowed


def test_no_builtin_body_declares_it():
    builtin = [c for _, c in MODELS.items() if c.__module__.startswith("ercgraph.")]
    assert builtin and not [c for c in builtin if getattr(c, "NEEDS_CONTEXT", False)]


@pytest.mark.parametrize("name", ["dagerc", "dialogue_transformer"])
def test_the_context_bodies_train_on_one_utterance_dialogues(tmp_path, name):
    from ercgraph.train import run

    cfg = load_config(
        None, [*clips(tmp_path), f"model.name={name}", "train.epochs=2", "train.min_steps=0"]
    )
    metrics = run(cfg, tmp_path / "run")
    assert np.isfinite(metrics["test"]["accuracy"]["mean"])
    history = json.loads((tmp_path / "run/seed_0/result.json").read_text())["history"]
    assert all(np.isfinite(h["train_loss"]) for h in history)


def test_run_with_a_shared_preparation_checks_the_body_too(tmp_path, monkeypatch):
    """A corpus prepared once for another body (a sweep's shared preparation) does not let a
    body that needs context through: ``run`` refuses it before the run folder exists."""
    from ercgraph.pipeline import prepare
    from ercgraph.train import run

    sets = clips(tmp_path)
    prep = prepare(load_config(None, [*sets, "model.name=mlp"]))
    monkeypatch.setattr(MODELS.get("dagerc"), "NEEDS_CONTEXT", True)
    out = tmp_path / "run"
    with pytest.raises(ErcgraphError, match="model 'dagerc' needs dialogues"):
        run(load_config(None, [*sets, "model.name=dagerc"]), out, prep=prep)
    assert not out.exists()
