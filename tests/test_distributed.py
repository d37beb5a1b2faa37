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
    # libtorch's notice about the unused-parameter search is not printed (once per rank)
    assert "find_unused_parameters" not in done.stderr, done.stderr[-3000:]

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


# -- ranks that read different data -------------------------------------------------------------
def _per_rank_data(tmp_path: Path, change: str) -> tuple[list[str], Path]:
    """Two data roots, ``r0`` and ``r1`` (rank 1's changed as ``change`` says), and a launcher
    that gives each rank its own ERCGRAPH_DATA, as two machines with their own mounts would."""
    for r in (0, 1):
        (tmp_path / f"r{r}").mkdir()
        sets = _toy(tmp_path / f"r{r}")
    table = pd.read_csv(tmp_path / "r1" / "toy.csv")
    if change == "label":  # one more emotion in rank 1's training split
        table.loc[0, "label"] = "w"
    table.to_csv(tmp_path / "r1" / "toy.csv", index=False)
    if change == "features":  # the same table, another feature file
        feats = np.load(tmp_path / "r1" / "toy.npy")
        np.save(tmp_path / "r1" / "toy.npy", feats[::-1].copy())
    launcher = tmp_path / "per_rank.sh"
    launcher.write_text(
        f'#!/bin/sh\nERCGRAPH_DATA="{tmp_path}/r$RANK" exec {sys.executable} -m ercgraph "$@"\n'
    )
    launcher.chmod(0o755)
    sets = [s for s in sets if not s.startswith(("data_root=", "cache_dir="))]
    return [*sets, f"cache_dir={tmp_path / 'cache'}"], launcher


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ("label", "corpora: labels ['x', 'y', 'z'] on rank 0 but ['w', 'x', 'y', 'z'] on rank 1"),
        ("features", "features: modality 'audio' sampled rows with checksum"),
    ],
)
def test_ranks_that_read_different_data_are_refused_before_any_work(tmp_path, change, fragment):
    sets, launcher = _per_rank_data(tmp_path, change)
    args = ["--no-python", str(launcher), "train", "--out", str(tmp_path / "run")]
    for s in sets:
        args += ["--set", s]
    done = _torchrun(args, tmp_path)
    err = done.stderr
    assert done.returncode != 0
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 2, err[-3000:]  # one line from each rank, the same
    assert lines[0] == lines[1] and fragment in lines[0], lines[0]
    assert "ERCGRAPH_DATA" in lines[0]
    assert "ercgraph/" not in err, err[-3000:]  # no traceback of ours (torchrun prints its own)
    assert not (tmp_path / "run").exists()  # refused before the run directory was written
    if change == "label":  # refused before any feature or graph was made
        assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.*"))


def test_data_fingerprints_compare_what_training_reads(monkeypatch):
    from ercgraph.data.corpus import Corpus
    from ercgraph.data.features import FeatureStore
    from ercgraph.distributed import corpus_fingerprint, features_fingerprint
    from ercgraph.errors import ErcgraphError

    df = pd.DataFrame(
        {
            "split": ["train", "train", "dev"],
            "dialogue_id": ["a", "a", "b"],
            "turn": [0, 1, 0],
            "speaker": ["s", "t", "s"],
            "label": ["x", "y", "x"],
            "audio_path": ["/mnt/one/a0.wav", "/mnt/one/a1.wav", "/mnt/one/b0.wav"],
        }
    )
    base = corpus_fingerprint(Corpus(df, "toy", ("x", "y")))
    moved = df.assign(audio_path=df["audio_path"].str.replace("one", "two"))
    assert corpus_fingerprint(Corpus(moved, "toy", ("x", "y"))) == base  # mounts may differ
    swapped = corpus_fingerprint(Corpus(df.assign(label=["y", "x", "x"]), "toy", ("x", "y")))
    turned = corpus_fingerprint(Corpus(df.assign(turn=[1, 0, 0]), "toy", ("x", "y")))
    for other in (swapped, turned):  # same labels and counts, other content: only the hash
        assert [k for k in base if other[k] != base[k]] == [
            "content hash (split, dialogue_id, turn, speaker, label)"
        ]

    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(0))
    one = features_fingerprint(FeatureStore({"text": x}))
    noise = features_fingerprint(FeatureStore({"text": x + 1e-7}))  # another summation order
    other = features_fingerprint(FeatureStore({"text": x.roll(1, 0)}))

    def refusal(a, b):
        monkeypatch.setattr(Session, "gather", lambda self, v: [a, b])
        try:
            Session(1, 2).check_same_data(a, "features")
        except ErcgraphError as exc:
            return str(exc)
        return None

    assert refusal(one, noise) is None
    msg = refusal(one, other)
    assert msg.startswith("the 2 ranks read different features: modality 'text' sampled rows")
    assert "on rank 0 but" in msg and msg.count("checksum") == 2
    assert "every rank must read the same data" in msg


def test_the_unused_parameter_notice_alone_is_held_back(capfd, monkeypatch):
    import ercgraph.distributed as dist_mod

    monkeypatch.setattr(dist_mod, "_NOTICE_SHOWN", False)
    notice = f"[W reducer.cpp:1529] Warning: {dist_mod.UNUSED_NOTICE}, but did not find any\n"
    with dist_mod._without_unused_notice():
        os.write(2, b"before\n" + notice.encode() + b"after\n")
        print("python's stderr", file=sys.stderr)
    # (pytest's capture of sys.stderr joins the fd's text in its own order)
    assert sorted(capfd.readouterr().err.splitlines()) == ["after", "before", "python's stderr"]
    assert dist_mod._NOTICE_SHOWN  # printed once per process: nothing held back from now on
    with pytest.raises(ValueError):  # an error inside: what was held back still comes out
        with dist_mod._without_unused_notice():
            os.write(2, b"a clue\n")
            raise ValueError("boom")
    assert capfd.readouterr().err == "a clue\n"
