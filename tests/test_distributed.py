"""torchrun: ``ercgraph train`` on 2 gloo processes matches a 1-process run, writes only from
rank 0, resumes; ranks with different configs and worlds larger than the work are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ercgraph.config import load_config
from ercgraph.distributed import Session

#: Most a dev/test metric (in points) of a 2-process run may differ from the 1-process run's
#: (float summation order only: the test runs without dropout).
TOLERANCE = 1.0


def _toy(root: Path) -> list[str]:
    """30 dialogues of 2-6 turns whose features carry the label, and a config without dropout."""
    rng = np.random.default_rng(1)
    rows, feats = [], []
    for d in range(30):
        split = "train" if d < 20 else "dev" if d < 25 else "test"
        for t in range(int(rng.integers(2, 7))):
            label = int(rng.integers(0, 3))
            rows.append(
                {
                    "dialogue": f"d{d}",
                    "turn": t,
                    "speaker": "ab"[t % 2],
                    "label": "xyz"[label],
                    "split": split,
                }
            )
            feats.append(rng.normal(size=6) + 1.5 * np.eye(6)[label])
    pd.DataFrame(rows).to_csv(root / "toy.csv", index=False)
    np.save(root / "toy.npy", np.asarray(feats, dtype=np.float32))
    return [
        "data={reader: table, name: toy, path: toy.csv, columns: {dialogue_id: dialogue}}",
        "features={modalities: [audio], files: {audio: {path: toy.npy}}}",
        "graph.builders=[{name: temporal, w_past: 2, w_future: 2}, {name: speaker}]",
        "model={name: hierarchical_gcn, hidden: 16, intra_layers: 1, cross_layers: 0, "
        "dropout: 0.0}",
        "train.batch_size=6",
        "train.epochs=4",
        "train.seeds=[0]",
        "train.select_metric=accuracy",
        f"data_root={root}",
        f"cache_dir={root / 'cache'}",
    ]


def _torchrun(args: list[str], cwd: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        *args,
    ]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _train_args(sets: list[str], out: Path, *extra: str) -> list[str]:
    args = ["-m", "ercgraph", "train", "--out", str(out), *extra]
    for s in sets:
        args += ["--set", s]
    return args


def test_two_processes_match_one_write_once_and_resume(tmp_path):
    from ercgraph.train import run

    sets = _toy(tmp_path)
    single = run(load_config(None, sets), tmp_path / "one")
    done = _torchrun(_train_args(sets, tmp_path / "two"), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads((tmp_path / "two/metrics.json").read_text())
    assert two["world_size"] == 2 and "world_size" not in single
    for split in ("dev", "test"):
        for metric in ("accuracy", "weighted_f1"):
            a, b = single[split][metric]["mean"], two[split][metric]["mean"]
            assert abs(a - b) <= TOLERANCE, (split, metric, a, b)
    r1 = json.loads((tmp_path / "one/seed_0/result.json").read_text())
    r2 = json.loads((tmp_path / "two/seed_0/result.json").read_text())
    np.testing.assert_allclose(
        [h["train_loss"] for h in r2["history"]],
        [h["train_loss"] for h in r1["history"]],
        rtol=1e-4,
    )
    # rank 0 alone wrote: the same files as a one-process run, and no second copy of anything
    files = sorted(
        p.relative_to(tmp_path / "one").as_posix() for p in (tmp_path / "one").rglob("*")
    )
    assert (
        sorted(p.relative_to(tmp_path / "two").as_posix() for p in (tmp_path / "two").rglob("*"))
        == files
    )
    assert done.stdout.count("run directory:") == 1

    # resume: 2 epochs, then on to 4 in a second launch, equals the 4-epoch launch
    first = _torchrun(_train_args([*sets, "train.epochs=2"], tmp_path / "cut"), tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    again = _torchrun(
        _train_args(sets, tmp_path / "cut", "--resume", "-c", str(tmp_path / "cut/config.yaml")),
        tmp_path,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    r3 = json.loads((tmp_path / "cut/seed_0/result.json").read_text())
    assert [h["train_loss"] for h in r3["history"]] == [h["train_loss"] for h in r2["history"]]
    assert r3["test_probs"] == r2["test_probs"]


SCRIPT = """
import os, sys
from ercgraph.distributed import session
from ercgraph.errors import ErcgraphError
with session("cpu") as sess:
    for step in ("configs", "world"):
        try:
            if step == "configs":
                sess.check_same({"lr": 0.001, "seed": int(os.environ["RANK"]) % 2}, "configs")
            else:
                sess.check_world(1, "training dialogues")
            print(f"rank {sess.rank} {step}: ok")
        except ErcgraphError as exc:
            print(f"rank {sess.rank} {step}: refused: {exc}")
        sys.stdout.flush()
"""


def test_ranks_with_different_configs_or_too_little_work_are_refused(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent(SCRIPT))
    done = _torchrun([str(script)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for rank in (0, 1):
        assert (
            f"rank {rank} configs: refused: the 2 ranks were started with different configs" in out
        )
        assert f"rank {rank} world: refused: 2 processes but only 1 training dialogues" in out
    assert "ranks [0]" in out and "ranks [1]" in out


def test_one_process_session_is_inert():
    sess = Session()
    assert not sess.active and sess.is_main
    assert sess.gather(3) == [3] and sess.broadcast("x") == "x"
    sess.check_same({"a": 1}, "configs")  # nothing to compare with
    assert sess.on_main(lambda: 5) == 5
    with pytest.raises(Exception, match="2 processes but only 1 media files"):
        Session(0, 2).check_world(1, "media files")


def test_torchrun_refuses_cross_validation_and_jobs(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from ercgraph.cli import cli

    monkeypatch.setenv("WORLD_SIZE", "2")
    sets = _toy(tmp_path)
    args = [
        "train",
        "--out",
        str(tmp_path / "cv"),
        "--set",
        "protocol={name: group_kfold, group: speaker, folds: 2}",
    ]
    for s in sets:
        args += ["--set", s]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code != 0 and "folds of a cross-validation are independent runs" in str(
        res.output + str(res.exception)
    )


# -- extraction ---------------------------------------------------------------------------------
CRASH = """
import os
import ercgraph.encoders.media_extract as mx

_real, _calls = mx._encode_chunk, [0]


def _dies_on_rank_1(*a, **k):
    _calls[0] += 1
    if os.environ.get("RANK") == "1" and _calls[0] > 1:
        os._exit(3)  # a rank that dies after saving its first chunk
    return _real(*a, **k)


mx._encode_chunk = _dies_on_rank_1
"""


def _emodb_table(
    root: Path, data_root: Path, copies: int = 4, limit: int | None = None
) -> list[str]:
    """The real EmoDB clips, each listed ``copies`` times (one clip per dialogue; the first
    ``limit`` rows)."""
    wavs = sorted((data_root / "emodb_samples" / "wav").glob("*.wav"))
    rows = [
        {
            "clip": f"c{i}_{k}",
            "turn": 0,
            "speaker": w.stem[:2],
            "label": "x",
            "split": "train",
            "path": str(w),
        }
        for k in range(copies)
        for i, w in enumerate(wavs)
    ]
    pd.DataFrame(rows[:limit]).to_csv(root / "emo.csv", index=False)
    return [
        "--set",
        "data={reader: table, name: emo, path: emo.csv, columns: {dialogue_id: clip}}",
        "--set",
        "features={modalities: [audio], audio: {encoder: 'fbank:16', source: path, "
        "chunk_size: 3, workers: 1}}",
        "--data-root",
        str(root),
    ]


def _chunks(cache: Path) -> dict[str, dict]:
    from safetensors.torch import load_file

    return {p.name: load_file(p) for p in cache.rglob("media/audio/*/*.safetensors")}


def test_extraction_on_two_ranks_equals_one_and_a_dead_rank_costs_one_chunk(tmp_path, data_root):
    from tests.cli_helpers import cli

    sets = _emodb_table(tmp_path, data_root)
    n = len(pd.read_csv(tmp_path / "emo.csv"))
    assert cli("extract", "--modality", "audio", "--cache-dir", str(tmp_path / "one"), *sets) == 0
    (tmp_path / "crash.py").write_text(CRASH)
    base = ["-m", "ercgraph", "extract", "--modality", "audio", *sets]
    dead = _torchrun(
        [*base, "--cache-dir", str(tmp_path / "two"), "--import", str(tmp_path / "crash.py")],
        tmp_path,
    )
    assert dead.returncode != 0
    saved = len(_chunks(tmp_path / "two"))
    assert saved >= 1  # the dead rank's first chunk at least
    done = _torchrun([*base, "--cache-dir", str(tmp_path / "two")], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("audio:"))
    reused = int(line.split(" reused")[0].rsplit(" ", 1)[1])
    assert reused >= 3 and f"audio: {n} utterances, dim 32; {n - reused} done, 0 failed" in line
    one, two = _chunks(tmp_path / "one"), _chunks(tmp_path / "two")
    assert one.keys() == two.keys() and len(one) > 2  # chunks of the same clips share a file
    for name in one:
        for key in ("x", "ok", "face"):
            assert torch.equal(one[name][key], two[name][key]), (name, key)
    # more ranks than media rows: refused before any work
    one_row = _emodb_table(tmp_path, data_root, limit=1)
    refused = _torchrun(
        [
            "-m",
            "ercgraph",
            "extract",
            "--modality",
            "audio",
            "--cache-dir",
            str(tmp_path / "three"),
            *one_row,
        ],
        tmp_path,
    )
    assert refused.returncode != 0
    assert "2 processes but only 1 audio media rows" in refused.stdout + refused.stderr
    assert not _chunks(tmp_path / "three")


def test_commands_that_run_in_one_process_refuse_torchrun(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from ercgraph.cli import cli

    monkeypatch.setenv("WORLD_SIZE", "2")
    res = CliRunner().invoke(cli, ["ablate", "--out", str(tmp_path / "abl")])
    assert res.exit_code != 0
    assert "'ercgraph ablate' runs in one process" in str(res.exception)
    assert not (tmp_path / "abl").exists()
