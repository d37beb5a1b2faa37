"""``ercgraph sweep``: the space file, its refusals, and small sweeps on a toy corpus (trials as
run directories, dev-only selection, pruning, resume, workers sharing one study)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from ercgraph.config import load_config
from ercgraph.errors import ErcgraphError
from ercgraph.sweep import (
    PruningCallback,
    SweepError,
    check_space,
    parse_space,
    run_sweep,
    trial_overrides,
)
from ercgraph.train import Callback
from tests.cli_helpers import cli


def _toy(root: Path) -> Path:
    """Sixteen 4-turn dialogues whose features carry the label, and a config that trains on
    them in about a second (2 epochs, one pass per epoch, no probe)."""
    import numpy as np
    import pandas as pd

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows, feats = [], []
    for d in range(16):
        split = "train" if d < 10 else "dev" if d < 13 else "test"
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
            feats.append(rng.normal(size=8) + 1.5 * label)
    pd.DataFrame(rows).to_csv(root / "toy.csv", index=False)
    np.save(root / "toy.npy", np.asarray(feats, dtype=np.float32))
    config = root / "toy.yaml"
    config.write_text(
        "data: {reader: table, name: toy, path: toy.csv, columns: {dialogue_id: dialogue}}\n"
        "features: {modalities: [audio], files: {audio: {path: toy.npy}}}\n"
        "graph:\n"
        "  builders: [{name: temporal, w_past: 2, w_future: 2},"
        " {name: speaker, w_past: 2, w_future: 2}]\n"
        "model: {name: hierarchical_gcn, hidden: 16, intra_layers: 1, cross_layers: 0}\n"
        "train: {epochs: 2, min_steps: 0, baselines: [], seeds: [0]}\n"
        f"data_root: {root}\n"
        f"cache_dir: {root / 'cache'}\n"
    )
    return config


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return _toy(tmp_path_factory.mktemp("toy"))


SPACE = {
    "params": {
        "train.lr": {"low": 1.0e-3, "high": 3.0e-2, "log": True},
        "model.hidden": {"low": 8, "high": 24, "step": 8},
    }
}


def _space_file(tmp: Path, space: dict) -> Path:
    import yaml

    path = tmp / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def _study(url: str, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=url)


SPACE_ALL = {
    "train.lr": {"low": "1e-4", "high": 3.0e-3, "log": True},  # 1e-4 is text to PyYAML
    "model.hidden": {"low": 64, "high": 256, "step": 64},
    "model.dropout": {"low": 0.1, "high": 0.6},
    "model.fusion": {"choices": ["mean", {"name": "gated"}]},
    "model.options.heads": {"choices": [2, 4], "when": {"model.fusion": "mean"}},
}


# -- the space file -----------------------------------------------------------------------------
def test_space_parses_ranges_choices_and_conditions(toy):
    import optuna

    space = parse_space(
        {"sampler": "random", "pruner": {"n_startup_trials": 1}, "params": SPACE_ALL}
    )
    assert space.sampler == "random" and space.pruner == {"n_startup_trials": 1}
    lr, hidden, *_ = space.params
    assert lr.low == 1e-4 and lr.log and hidden.corners() == [64, 256]
    sub = parse_space({"params": {k: SPACE_ALL[k] for k in ("model.hidden", "model.dropout")}})
    settled = {p.key: p.kind for p in check_space(sub, load_config(toy)).params}
    assert settled == {"model.hidden": "int", "model.dropout": "float"}
    # a mapping choice travels as its JSON text and comes back as the mapping; a conditional
    # key is sampled only when its condition holds
    fixed = {"train.lr": 1e-3, "model.hidden": 128, "model.dropout": 0.2}
    gated = space.sample(optuna.trial.FixedTrial({**fixed, "model.fusion": '{"name": "gated"}'}))
    assert gated["model.fusion"] == {"name": "gated"} and "model.options.heads" not in gated
    mean = space.sample(
        optuna.trial.FixedTrial({**fixed, "model.fusion": "mean", "model.options.heads": 4})
    )
    assert mean["model.options.heads"] == 4
    # the --set items give exactly the sampled values back
    items = trial_overrides({"train.lr": 0.00031622776601683794, "model.fusion": {"name": "x"}})
    assert items == ["train.lr=0.00031622776601683794", "model.fusion={name: x}"]
    cfg = load_config(toy, [items[0]])
    assert cfg.train.lr == 0.00031622776601683794


@pytest.mark.parametrize(
    ("params", "sampler", "message"),
    [
        (
            {"model.hiden": {"low": 8, "high": 16}},
            "tpe",
            r"'model.hiden' is not a config key.*"
            r"did you mean model.hidden",
        ),
        (
            {"train.lr": {"low": 0.01, "high": 0.001}},
            "tpe",
            r"params.train.lr: low \(0.01\) must "
            r"be below high \(0.001\)",
        ),
        ({"train.lr": {"low": 0.0, "high": 0.1, "log": True}}, "tpe", "log range needs low > 0"),
        ({"model.dropout": {"low": 0.1, "high": 0.5}}, "grid", "grid sampler needs choices"),
        ({"train.weight_decay": {"low": 0, "high": 1}}, "grid", "grid sampler needs choices"),
        ({"model.hidden": {"low": 8.5, "high": 16}}, "tpe", "model.hidden is an integer key"),
        ({"model.fusion": {"low": 1, "high": 2}}, "tpe", "give its values under choices"),
        ({"train.select_metric": {"choices": ["macro_f1"]}}, "tpe", "cannot be swept"),
        ({"protocol.folds": {"choices": [2, 3]}}, "tpe", "protocol.folds cannot be swept"),
        ({"model": {"choices": [{}]}}, "tpe", "is a section of the config"),
        ({"model.options.bogus": {"choices": [1]}}, "tpe", "unknown option model.options.bogus"),
        ({"model.hidden": {"low": 8, "high": 9999999}}, "tpe", "model.hidden must be"),
        ({"a.b": {"choices": [1], "when": {"c": 1}}}, "tpe", "not a key listed before it"),
        ({"train.lr": {"low": 1, "high": 2, "size": 3}}, "tpe", "unknown key 'size'"),
    ],
)
def test_bad_spaces_are_refused_before_any_trial(toy, tmp_path, params, sampler, message):
    with pytest.raises(ErcgraphError, match=message) as info:
        space = parse_space({"sampler": sampler, "params": params}, "space 'x.yaml'")
        run_sweep(load_config(toy), space, tmp_path / "sweep", trials=1)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "sweep").exists()  # refused before anything was written


def test_free_form_keys_are_accepted_and_checked_by_their_component(toy):
    space = parse_space({"params": {"model.options.heads": {"choices": [2]}}})
    # hierarchical_gcn takes no option 'heads' (it is a field): the corner check says so
    with pytest.raises(ErcgraphError, match="model.options.heads"):
        check_space(space, load_config(toy))
    ok = parse_space({"params": {"sampler.options": {"choices": [{}]}}})
    assert check_space(ok, load_config(toy)).keys == ["sampler.options"]


def test_an_unreachable_storage_is_one_line(toy, tmp_path):
    space = parse_space(SPACE)
    url = "sqlite:////nonexistent-folder/deeper/study.db"
    with pytest.raises(ErcgraphError, match=r"--storage sqlite:////nonexistent.*cannot open"):
        run_sweep(load_config(toy), space, tmp_path / "s", trials=1, storage=url)
    assert not (tmp_path / "s").exists()
    code = cli(
        "sweep", "-c", str(toy), "--space", str(_space_file(tmp_path, SPACE)), "--trials", "1",
        "--out", str(tmp_path / "c"), "--storage", "postgresql://me:secret@127.0.0.1:9/db",
    )  # fmt: skip
    assert code == 2


def test_the_pruning_callback_reports_the_first_seed_and_prunes():
    import optuna

    class FakeTrial:
        def __init__(self):
            self.reports = []

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return len(self.reports) >= 2

    trial = FakeTrial()
    cb = PruningCallback(trial, "weighted_f1", first_seed=3)
    cb.epoch_end(3, {"epoch": 1, "dev_weighted_f1": 50.0})
    cb.epoch_end(7, {"epoch": 1, "dev_weighted_f1": 10.0})  # another seed: not reported
    assert trial.reports == [(1, 50.0)]
    with pytest.raises(optuna.TrialPruned):
        cb.epoch_end(3, {"epoch": 2, "dev_weighted_f1": 40.0})
    assert cb.epochs == 3
    off = PruningCallback(FakeTrial(), "weighted_f1", 0, prune=False)
    for epoch in (1, 2, 3):
        off.epoch_end(0, {"epoch": epoch, "dev_weighted_f1": 1.0})  # --no-prune: never raises
    with pytest.raises(SweepError, match="select metric 'macro_f1' is missing"):
        PruningCallback(FakeTrial(), "macro_f1", 0).epoch_end(0, {"epoch": 1, "dev_x": 1.0})


# -- sweeps -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def swept(toy, tmp_path_factory):
    """``ercgraph sweep`` from the CLI: 3 trials of 2 epochs."""
    tmp = tmp_path_factory.mktemp("sweep")
    out = tmp / "sw"
    args = ["sweep", "-c", str(toy), "--space", str(_space_file(tmp, SPACE)), "--out", str(out)]
    assert cli(*args, "--trials", "3", "--seed", "1") == 0
    return out, args


def test_a_sweep_writes_trials_and_reports_and_reads_test_once(swept):
    out, _ = swept
    summary = json.loads((out / "sweep.json").read_text())
    rows = summary["trials"]
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3 and summary["counts"] == {"COMPLETE": 3}
    best = summary["best"]
    assert best["dev"] == max(r["dev"] for r in rows)
    for r in rows:
        run = out / "trials" / f"trial_{r['trial']}"
        metrics = json.loads((run / "metrics.json").read_text())
        assert r["dev"] == metrics["dev"]["weighted_f1"]["mean"]
        assert "test" not in metrics  # no trial read test while the sweep ran
        assert r["epochs"] == 2 and set(r["params"]) == {"train.lr", "model.hidden"}
        assert (run / "sweep_test.json").exists() == (r["trial"] == best["trial"])
        saved = load_config(run / "config.yaml")
        assert saved.train.lr == r["params"]["train.lr"] and saved.train.jobs == 1
        assert saved.model.hidden == r["params"]["model.hidden"]
    assert 0 <= best["test"] <= 100 and best["dev_rescored"] == best["dev"]
    assert json.loads((out / "test_scores.json").read_text()).keys() == {str(best["trial"])}
    for name in ("history.png", "importances.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    table = (out / "trials.md").read_text().splitlines()
    assert len(table) == 2 + 3 and "model.hidden" in table[0]
    csv = (out / "trials.csv").read_text().splitlines()
    assert csv[0].startswith("trial,state,dev weighted_f1,epochs,wall s") and len(csv) == 4
    assert summary["command"][:2] == ["ercgraph", "sweep"] and "--trials" in summary["command"]
    assert "git_revision" in summary["environment"]


def test_best_yaml_retrains_to_the_same_dev_score(swept, tmp_path):
    out, _ = swept
    best = json.loads((out / "sweep.json").read_text())["best"]
    assert cli("train", "-c", str(out / "best.yaml"), "--out", str(tmp_path / "again")) == 0
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["dev"]["weighted_f1"]["mean"] == best["dev"]


def test_the_same_command_resumes_and_never_scores_test_twice(swept):
    out, args = swept
    scored = (out / "test_scores.json").read_text()
    assert cli(*args, "--trials", "3", "--seed", "1") == 0  # nothing missing: no trial runs
    assert sorted(p.name for p in (out / "trials").iterdir()) == [f"trial_{k}" for k in range(3)]
    assert (out / "test_scores.json").read_text() == scored
    # another config for the same study is refused, naming what differs
    assert cli(*args, "--trials", "3", "--set", "train.epochs=3") == 2
    with pytest.raises(ErcgraphError, match=r"another config \(it differs at train.epochs\)"):
        cfg = load_config(out / "base.yaml", ["train.epochs=3"])
        run_sweep(cfg, parse_space(SPACE), out, trials=3)


def test_interrupted_trials_are_failed_retried_and_not_counted(toy, tmp_path):
    class CtrlC(Callback):
        def run_start(self, cfg, out):
            self.trial = out.name

        def epoch_end(self, seed, row):
            if self.trial == "trial_1":
                raise KeyboardInterrupt

    cfg, space, out = load_config(toy), parse_space(SPACE), tmp_path / "sw"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(cfg, space, out, trials=2, callbacks=[CtrlC()])
    # a process that died mid-trial (no Ctrl-C handler ran) leaves its trial RUNNING
    study = _study(f"sqlite:///{out / 'study.db'}", "sw")
    import optuna

    dead = subprocess.Popen(["true"])
    dead.wait()
    left = study.ask({"train.lr": optuna.distributions.FloatDistribution(1e-3, 3e-2, log=True)})
    left.set_user_attr("worker", {"host": socket.gethostname(), "pid": dead.pid})
    summary = run_sweep(cfg, space, out, trials=3)
    rows = {r["trial"]: r for r in summary["trials"]}
    assert [rows[k]["state"] for k in sorted(rows)] == [
        "COMPLETE", "FAIL", "FAIL", "COMPLETE", "COMPLETE"
    ]  # fmt: skip
    retried = {r["note"] for r in rows.values() if r["note"].startswith("retry of")}
    assert retried == {"retry of 1", "retry of 2"}
    assert (
        rows[3]["params"] == rows[1]["params"]
        and rows[4]["params"]["train.lr"] == (left.params["train.lr"])
    )
    assert summary["counts"] == {"COMPLETE": 3, "FAIL": 2}
    # the retry trained in a fresh folder; the interrupted one is left as it was
    assert (out / "trials/trial_3/metrics.json").exists()
    assert not (out / "trials/trial_1/metrics.json").exists()


def test_every_trial_failing_stops_the_sweep_with_the_first_error(toy, tmp_path):
    class Boom(Callback):
        def epoch_end(self, seed, row):
            raise RuntimeError("boom at epoch 1")

    with pytest.raises(
        ErcgraphError, match=r"3 trials in a row failed.*trial 0: RuntimeError: boom"
    ):
        run_sweep(load_config(toy), parse_space(SPACE), tmp_path / "sw", 5, callbacks=[Boom()])
    assert "| 2 | FAIL |" in (tmp_path / "sw" / "trials.md").read_text()


def test_pruning_stops_a_clearly_worse_trial(toy, tmp_path):
    import optuna

    url, name = f"sqlite:///{tmp_path / 'study.db'}", "pruned"
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    study.enqueue_trial({"train.lr": 3e-2})
    study.enqueue_trial({"train.lr": 1e-6})  # learns nothing in three epochs
    space = parse_space(
        {
            "pruner": {"n_startup_trials": 1},
            "params": {"train.lr": {"low": 1e-6, "high": 3e-2, "log": True}},
        }
    )
    cfg = load_config(toy, ["train.epochs=3", "train.seeds=[0, 1]", "train.batch_size=2"])
    summary = run_sweep(cfg, space, tmp_path / "sw", 2, storage=url, study_name=name)
    good, bad = summary["trials"]
    assert good["state"] == "COMPLETE" and good["epochs"] == 6  # two seeds of three epochs
    assert bad["state"] == "PRUNED" and bad["pruned_at"] < 3
    assert bad["epochs"] == bad["pruned_at"]  # the first seed only
    assert not (tmp_path / "sw/trials/trial_1/seed_1").exists()
    again = run_sweep(
        cfg, space, tmp_path / "sw", 3, storage=url, study_name=name, prune=False
    )  # --no-prune: every trial trains to the end
    assert again["trials"][2]["state"] == "COMPLETE" and again["trials"][2]["epochs"] == 6


def test_two_workers_share_one_study_without_running_a_trial_twice(toy, tmp_path):
    out = tmp_path / "sw"
    summary = run_sweep(load_config(toy), parse_space(SPACE), out, trials=4, jobs=2)
    rows = summary["trials"]
    assert [r["state"] for r in rows] == ["COMPLETE"] * 4
    assert sorted(p.name for p in (out / "trials").iterdir()) == [f"trial_{k}" for k in range(4)]
    params = {tuple(sorted(r["params"].items())) for r in rows}
    assert len(params) == 4  # every parameter set trained once
    study = _study(f"sqlite:///{out / 'study.db'}", "sw")
    pids = {t.user_attrs["worker"]["pid"] for t in study.trials}
    assert len(pids) == 2 and os.getpid() not in pids


def test_a_grid_sweep_runs_each_point_once(toy, tmp_path):
    space = parse_space(
        {
            "sampler": "grid",
            "params": {
                "model.hidden": {"low": 8, "high": 16, "step": 8},
                "model.fusion": {"choices": ["mean", {"name": "concat"}]},
            },
        }
    )
    summary = run_sweep(load_config(toy), space, tmp_path / "sw", trials=9)
    assert summary["grid_size"] == 4 and summary["counts"] == {"COMPLETE": 4}
    points = {(r["params"]["model.hidden"], r["params"]["model.fusion"]) for r in summary["trials"]}
    assert points == {(h, f) for h in (8, 16) for f in ("mean", '{"name": "concat"}')}
    concat = next(r for r in summary["trials"] if r["params"]["model.fusion"] != "mean")
    saved = load_config(tmp_path / "sw" / "trials" / f"trial_{concat['trial']}" / "config.yaml")
    assert saved.model.fusion == {"name": "concat"}


# -- sections as bundles, and cross-validation trials -------------------------------------------
def test_a_section_choice_is_a_bundle_of_its_keys(toy, tmp_path):
    bad = parse_space({"params": {"model": {"choices": [{"hiden": 8}]}}})
    with pytest.raises(ErcgraphError, match=r"'model.hiden' is not a config key.*model.hidden"):
        check_space(bad, load_config(toy))
    owned = parse_space({"params": {"train": {"choices": [{"select_metric": "macro_f1"}]}}})
    with pytest.raises(ErcgraphError, match="train.select_metric cannot be swept"):
        check_space(owned, load_config(toy))
    # the MLP refuses the toy's non-default GCN layer counts: its bundle resets them
    mlp = {"name": "mlp", "fusion": "concat", "intra_layers": 2, "cross_layers": 1}
    presets = [mlp, {"name": "hierarchical_gcn", "hidden": 8}]
    space = parse_space({"sampler": "grid", "params": {"model": {"choices": presets}}})
    summary = run_sweep(load_config(toy, ["model.dropout=0.3"]), space, tmp_path / "sw", 2)
    assert summary["counts"] == {"COMPLETE": 2}
    for r in summary["trials"]:
        saved = load_config(tmp_path / "sw" / "trials" / f"trial_{r['trial']}" / "config.yaml")
        # merged into the section: the keys a bundle does not name keep the base's values
        assert saved.model.dropout == 0.3
        if saved.model.name == "mlp":
            assert saved.model.fusion == "concat" and saved.model.hidden == 16
        else:
            assert saved.model.hidden == 8 and saved.model.fusion == "mean"
    assert {load_config(tmp_path / "sw/best.yaml").model.name} <= {"mlp", "hierarchical_gcn"}


def test_the_pruning_callback_judges_the_first_fold_only():
    class FakeTrial:
        reports: list = []

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return False

    trial = FakeTrial()
    cb = PruningCallback(trial, "accuracy", first_seed=0)
    for fold in range(2):  # each fold of a cross-validation is one run
        cb.run_start(None, Path(f"fold_{fold}"))
        for seed in (0, 1):
            cb.epoch_end(seed, {"epoch": 1, "dev_accuracy": 10.0 * (fold + 1) + seed})
    assert trial.reports == [(1, 10.0)] and cb.epochs == 4


def _grouped(root: Path) -> Path:
    """Three actors' one-clip dialogues (tests/test_protocol.py's table) under a 3-fold
    cross-validation by actor that trains in about a second a fold."""
    from tests.test_protocol import _write_grouped_table

    _write_grouped_table(root)
    config = root / "cv.yaml"
    config.write_text(
        "data: {reader: table, path: toy/labels.csv, options: {split: train},\n"
        "       columns: {dialogue_id: clip, speaker: actor, label: emotion}}\n"
        "features: {modalities: [audio], files: {audio: {path: toy/feats.npy}}}\n"
        "graph: {builders: [{name: modality}]}\n"
        "model: {name: mlp, hidden: 8}\n"
        "train: {epochs: 2, batch_size: 8, min_steps: 0, baselines: [], seeds: [0, 1],\n"
        "        select_metric: accuracy}\n"
        "protocol: {name: group_kfold, group: speaker}\n"
        f"data_root: {root}\n"
        f"cache_dir: {root / 'cache'}\n"
    )
    return config


def test_a_cross_validation_sweep_runs_every_fold_and_scores_test_once(tmp_path):
    config = _grouped(tmp_path / "data")
    space = {"sampler": "grid", "params": {"train.lr": {"choices": [0.001, 0.05]}}}
    out = tmp_path / "sw"
    args = ["sweep", "-c", str(config), "--space", str(_space_file(tmp_path, space))]
    assert cli(*args, "--trials", "2", "--out", str(out)) == 0
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["counts"] == {"COMPLETE": 2}
    for r in summary["trials"]:
        run = out / "trials" / f"trial_{r['trial']}"
        cv = json.loads((run / "metrics.json").read_text())
        assert cv["folds_done"] == [0, 1, 2] and "test" not in cv
        folds = [json.loads((run / f"fold_{k}/metrics.json").read_text()) for k in range(3)]
        assert all("test" not in f for f in folds)  # no fold read test while the sweep ran
        # the objective: the mean over folds of each fold's mean over seeds
        assert r["dev"] == pytest.approx(sum(f["dev"]["accuracy"]["mean"] for f in folds) / 3)
        assert r["dev"] == cv["dev"]["accuracy"]["mean"]
        assert r["epochs"] == 3 * 2 * 2  # folds x seeds x epochs
        assert (run / "sweep_test.json").exists() == (r["trial"] == summary["best"]["trial"])
    best = summary["best"]
    run = out / "trials" / f"trial_{best['trial']}"
    scored = json.loads((run / "sweep_test.json").read_text())
    per_fold = [
        json.loads((run / f"fold_{k}/sweep_test.json").read_text())["test"]["accuracy"]["mean"]
        for k in range(3)
    ]
    assert scored["test"]["accuracy"]["mean"] == pytest.approx(sum(per_fold) / 3)
    assert best["test"] == scored["test"]["accuracy"]["mean"]
    assert best["dev_rescored"] == pytest.approx(best["dev"])
    # best.yaml runs the whole cross-validation again, to the same dev score
    assert cli("train", "-c", str(out / "best.yaml"), "--out", str(tmp_path / "again")) == 0
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["folds_done"] == [0, 1, 2]
    assert again["dev"]["accuracy"]["mean"] == best["dev"]
