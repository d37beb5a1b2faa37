"""``train.jobs``: seeds trained at once in worker processes give a serial run's results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ercgraph.config import load_config
from ercgraph.errors import ErcgraphError

REPO = Path(__file__).resolve().parents[1]


def _cfg(data_root: Path, cache: Path, jobs: int):
    return load_config(
        REPO / "configs" / "ravdess.yaml",
        [
            f"data_root={data_root}",
            f"cache_dir={cache}",
            "train.epochs=3",
            "train.seeds=[0, 1, 2]",
            f"train.jobs={jobs}",
        ],
    )


def test_parallel_seeds_match_a_serial_run_and_resume_either_way(data_root, cache, tmp_path):
    from ercgraph.protocol import run_cv

    serial = run_cv(_cfg(data_root, cache, 1), tmp_path / "serial", only=[0])
    parallel = run_cv(_cfg(data_root, cache, 2), tmp_path / "parallel", only=[0])
    for split in ("dev", "test"):
        assert parallel[split]["accuracy"]["mean"] == serial[split]["accuracy"]["mean"]
    for seed in (0, 1, 2):
        a = json.loads((tmp_path / "serial/fold_0" / f"seed_{seed}/result.json").read_text())
        b = json.loads((tmp_path / "parallel/fold_0" / f"seed_{seed}/result.json").read_text())
        assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
        assert a["best_epoch"] == b["best_epoch"] and a["test_probs"] == b["test_probs"]
    # the seeds differ from each other (the comparison above is not between identical seeds)
    probs = [
        json.loads((tmp_path / "parallel/fold_0" / f"seed_{s}/result.json").read_text())[
            "test_probs"
        ]
        for s in (0, 1)
    ]
    assert probs[0] != probs[1]
    # how many seeds train at once is not part of what a run is: a resume may change it
    again = run_cv(_cfg(data_root, cache, 3), tmp_path / "serial", resume=True, only=[0])
    assert again["test"]["accuracy"]["mean"] == serial["test"]["accuracy"]["mean"]


def test_jobs_must_be_positive():
    with pytest.raises(ErcgraphError, match="train.jobs must be >= 1"):
        load_config(None, ["train.jobs=0"])


def _toy(root: Path) -> list[str]:
    """Twelve 4-turn dialogues, two speakers, features that carry the label, and its config."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    rows, feats = [], []
    for d in range(12):
        split = "train" if d < 8 else "dev" if d < 10 else "test"
        for t in range(4):
            label = int(rng.integers(0, 2))
            rows.append(
                {
                    "dialogue": f"d{d}",
                    "turn": t,
                    "speaker": "ab"[t % 2],
                    "label": "xy"[label],
                    "split": split,
                }
            )
            feats.append(rng.normal(size=8) + 2.0 * label)
    pd.DataFrame(rows).to_csv(root / "toy.csv", index=False)
    np.save(root / "toy.npy", np.asarray(feats, dtype=np.float32))
    return [
        "data={reader: table, name: toy, path: toy.csv, columns: {dialogue_id: dialogue}}",
        "features={modalities: [audio], files: {audio: {path: toy.npy}}}",
        "graph.builders=[{name: temporal, w_past: 2, w_future: 2},"
        " {name: speaker, w_past: 2, w_future: 2}]",
        "model={name: hierarchical_gcn, hidden: 16, intra_layers: 1, cross_layers: 0}",
        "train.epochs=2",
        "train.seeds=[0, 1]",
        f"data_root={root}",
        f"cache_dir={root / 'cache'}",
    ]


def test_ablation_variants_at_once_match_a_serial_ablation(tmp_path):
    from ercgraph.ablate import ablate

    sets = _toy(tmp_path)
    serial = ablate(load_config(None, sets), tmp_path / "serial")
    parallel = ablate(load_config(None, [*sets, "train.jobs=3"]), tmp_path / "parallel")
    assert [r["variant"] for r in parallel] == [r["variant"] for r in serial]
    assert len(serial) == 5  # the full graph and a leave-one-out variant per relation
    for a, b in zip(serial, parallel, strict=True):
        assert a == b
    assert (tmp_path / "parallel" / serial[1]["variant"] / "metrics.json").exists()


def test_the_cli_sets_train_jobs(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import ercgraph.train as train_mod
    from ercgraph.cli import cli

    seen = {}

    def fake_run(cfg, out, resume=False, prep=None, sess=None):
        seen["jobs"] = cfg.train.jobs
        raise SystemExit(0)

    monkeypatch.setattr(train_mod, "run", fake_run)
    sets = _toy(tmp_path)
    args = ["train", "--out", str(tmp_path / "run"), "--jobs", "2"]
    for s in sets:
        args += ["--set", s]
    CliRunner().invoke(cli, args)
    assert seen == {"jobs": 2}
    bad = CliRunner().invoke(cli, ["train", "--jobs", "0"])
    assert bad.exit_code == 2 and "--jobs" in bad.output
