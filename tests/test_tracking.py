"""``train.log_to: [tensorboard]``: event files that hold exactly what the run directory records
(every history key per epoch, the probe, the config), each epoch once across a resume, from
forked seed workers too; off by default, and a bad backend name refused before any folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ercgraph.config import LOG_TO, load_config
from ercgraph.errors import ErcgraphError
from ercgraph.tracking import TRACKERS, TensorBoardTracker, tag_for
from ercgraph.train import Callback, run
from tests.cli_helpers import cli


def _toy(root: Path, *extra: str) -> list[str]:
    """Twelve 4-turn dialogues with features that carry the label, and the overrides of a run
    on them: two seeds, two epochs, a small model."""
    import pandas as pd

    rng = np.random.default_rng(0)
    rows, feats = [], []
    for d in range(12):
        split = "train" if d < 8 else "dev" if d < 10 else "test"
        for t in range(4):
            label = int(rng.integers(0, 2))
            rows.append(
                {"dialogue": f"d{d}", "turn": t, "speaker": "ab"[t % 2], "label": "xy"[label]}
                | {"split": split}
            )
            feats.append(rng.normal(size=8) + 2.0 * label)
    pd.DataFrame(rows).to_csv(root / "toy.csv", index=False)
    np.save(root / "toy.npy", np.asarray(feats, dtype=np.float32))
    return [
        "data={reader: table, name: toy, path: toy.csv, columns: {dialogue_id: dialogue}}",
        "features={modalities: [audio], files: {audio: {path: toy.npy}}}",
        "graph.builders=[{name: temporal, w_past: 2, w_future: 2}]",
        "model={name: hierarchical_gcn, hidden: 8, intra_layers: 1, cross_layers: 0}",
        "train.epochs=2",
        "train.seeds=[0, 1]",
        "train.min_steps=0",
        f"data_root={root}",
        f"cache_dir={root / 'cache'}",
        *extra,
    ]


def _events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    acc = _events(folder)
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def _same32(a: float, b: float) -> bool:
    """Equal as the float32 an event file stores (NaN equals NaN: a term absent that epoch)."""
    a32, b32 = np.float32(a), np.float32(b)
    return bool(a32 == b32 or (math.isnan(a32) and math.isnan(b32)))


def _assert_seed_matches(out: Path, seed: int) -> None:
    """The seed's event files hold every number of its result.json history, each epoch once."""
    history = json.loads((out / f"seed_{seed}" / "result.json").read_text())["history"]
    series = _scalars(out / "tensorboard" / f"seed_{seed}")
    keys = [k for k in history[0] if k != "epoch"]
    assert sorted(series) == sorted(tag_for(k) for k in keys)
    for key in keys:
        logged = series[tag_for(key)]
        assert [s for s, _ in logged] == [h["epoch"] for h in history], key
        for (_, value), h in zip(logged, history, strict=True):
            assert _same32(value, h[key]), (key, h["epoch"], value, h[key])


def test_event_files_hold_the_run_record_from_forked_seed_workers(tmp_path):
    cfg = load_config(None, _toy(tmp_path, "train.log_to=[tensorboard]", "train.jobs=2"))
    out = tmp_path / "run"
    metrics = run(cfg, out)
    for seed in (0, 1):
        _assert_seed_matches(out, seed)
    # tags that group in TensorBoard: losses together, dev metrics together, the learning rate
    series = _scalars(out / "tensorboard" / "seed_0")
    for tag in ("loss/train", "loss/dev", "loss/train_ce", "loss/dev_ce", "dev/weighted_f1"):
        assert tag in series
    assert [v for _, v in series["lr"]] == [np.float32(cfg.train.lr)] * 2
    # the run folder: the probe against metrics.json (dev, test and the model's Δ), at step 0
    probe = metrics["baselines"]["probe"]
    run_series = _scalars(out / "tensorboard" / "run")
    expected = {
        "probe/dev_weighted_f1": probe["dev"]["weighted_f1"],
        "probe/test_weighted_f1": probe["test"]["weighted_f1"],
        "probe/delta_dev_weighted_f1": probe["delta"]["dev"]["weighted_f1"],
        "probe/delta_test_weighted_f1": probe["delta"]["test"]["weighted_f1"],
    }
    assert sorted(run_series) == sorted(expected)
    for tag, value in expected.items():
        assert len(run_series[tag]) == 1 and run_series[tag][0][0] == 0
        assert _same32(run_series[tag][0][1], value), tag
    # ...and the config, as config.yaml holds it, once (written at start, rewritten at end)
    texts = _events(out / "tensorboard" / "run").Tensors("config/text_summary")
    assert len(texts) == 1
    shown = texts[0].tensor_proto.string_val[0].decode()
    assert shown == f"```yaml\n{(out / 'config.yaml').read_text()}```"
    assert len(list((out / "tensorboard" / "run").glob("events.out.tfevents.*"))) == 1


class _Interrupt(Callback):
    """Ends the run after ``epoch`` of seed 0, as a crash or a pruned trial would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_end(self, seed: int, row: dict[str, float]) -> None:
        if row["epoch"] == self.epoch:
            raise KeyboardInterrupt


def test_a_resumed_seed_logs_each_epoch_once(tmp_path):
    sets = _toy(tmp_path, "train.log_to=[tensorboard]", "train.epochs=3")
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(load_config(None, sets), out, callbacks=[_Interrupt(2)])
    # flushed epoch by epoch: what a live TensorBoard sees when the run stops
    assert [s for s, _ in _scalars(out / "tensorboard" / "seed_0")["loss/train"]] == [1, 2]
    run(load_config(None, sets), out, resume=True)
    for seed in (0, 1):
        _assert_seed_matches(out, seed)


def test_off_by_default_and_switched_on_by_a_resume_of_an_older_run(tmp_path):
    """A run saved before ``train.log_to`` existed (no such key in its config.yaml) evaluates,
    and resumes with tracking on: the restored epochs are written too."""
    from ercgraph.evaluate import evaluate_run

    sets = _toy(tmp_path, "train.seeds=[0]", "train.baselines=[]")
    out = tmp_path / "run"
    run(load_config(None, sets), out)
    assert not (out / "tensorboard").exists()
    saved = (out / "config.yaml").read_text()
    assert "  log_to: []\n" in saved
    (out / "config.yaml").write_text(saved.replace("  log_to: []\n", ""))
    scores, _ = evaluate_run(out, data_root=str(tmp_path))
    assert "weighted_f1" in scores["dev"]
    # seed 0 trains on, seed 1 is new; then seed 2 joins, with tracking switched on: the
    # finished seeds 0 and 1 are written from their result.json, once
    run(load_config(None, [*sets, "train.epochs=3", "train.seeds=[0, 1]"]), out, True)
    assert not (out / "tensorboard").exists()
    grown = [*sets, "train.epochs=3", "train.seeds=[0, 1, 2]", "train.log_to=[tensorboard]"]
    run(load_config(None, grown), out, True)
    for seed in (0, 1, 2):
        _assert_seed_matches(out, seed)
    assert [s for s, _ in _scalars(out / "tensorboard" / "seed_0")["lr"]] == [1, 2, 3]


@pytest.mark.parametrize("value", ["[wandb]", "[tensorboard, mlflow]", "[[tensorboard]]"])
def test_an_unknown_backend_is_refused_before_any_folder(tmp_path, capsys, value):
    sets = _toy(tmp_path, f"train.log_to={value}")
    with pytest.raises(ErcgraphError, match=r"train\.log_to must be a list of \['tensorboard'\]"):
        load_config(None, sets)
    args = ["train", "--out", str(tmp_path / "run")]
    for s in sets:
        args += ["--set", s]
    assert cli(*args) == 2
    assert "train.log_to" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_trackers_by_name_tags_and_close(tmp_path):
    assert sorted(TRACKERS) == sorted(LOG_TO)
    # one name is a one-item list, as for every list of the config
    assert load_config(None, ["train.log_to=tensorboard"]).train.log_to == ["tensorboard"]
    assert tag_for("train_loss") == "loss/train" and tag_for("dev_loss") == "loss/dev"
    assert tag_for("train_loss_ce") == "loss/train_ce"
    assert tag_for("dev_loss_supcon") == "loss/dev_supcon"
    assert tag_for("dev_weighted_f1") == "dev/weighted_f1" and tag_for("lr") == "lr"
    assert tag_for("epoch_s") == "epoch/epoch_s"
    # a seed that ended by an exception: close() closes its writer, its epochs are on disk
    tracker = TensorBoardTracker(tmp_path)
    tracker.seed_start(3, tmp_path / "seed_3", [{"epoch": 1, "train_loss": 0.5}])
    tracker.epoch_end(3, {"epoch": 2, "train_loss": 0.25})
    tracker.close()
    assert tracker._writers == {}
    assert _scalars(tmp_path / "tensorboard" / "seed_3") == {"loss/train": [(1, 0.5), (2, 0.25)]}
    assert repr(tracker) == f"TensorBoardTracker(out={str(tmp_path)!r})"
