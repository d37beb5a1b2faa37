"""Bad input from a careless or hostile user: one-line errors with exit status 2, no traceback,
no half-made run directory, nothing of the user's changed."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.cli_helpers import cli, train_args

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "extra,fragment",
    [
        (["--set", "train.epochs=0"], "train.epochs must be >= 1"),
        (["--set", "train.epochs=-3"], "train.epochs must be >= 1"),
        (["--set", "train.lr=-0.001"], "train.lr must be a finite number > 0"),
        (["--set", "model.dropout=1.5"], "model.dropout must be >= 0.0 and < 1.0"),
        (["--set", "train.batch_size=0"], "train.batch_size must be >= 1"),
        (["--set", "model.hidden=0"], "model.hidden must be >= 1"),
        (["--set", "train.patience=-1"], "train.patience must be >= 1"),
        (["--seeds", ""], "train.seeds is empty"),
        (["--seeds", "-1"], "train.seeds must be integers >= 0"),
        (["--set", "train.seeds=[0,1"], "is not valid YAML"),
        (["--set", "loss=[{name: nope}]"], "unknown loss 'nope'"),
        (["--set", "model.fusion=gatted"], "unknown fusion 'gatted'"),
        (["--set", "heads=[emotion, emotion]"], "listed more than once"),
        (["--set", "train.device=tpu"], "train.device must be"),
        (["--set", "train.lr=.inf"], "train.lr must be a finite number > 0"),
        (["--set", "train.seeds=[0,0]"], "lists a seed twice"),
        (["--set", "model.conv=bogus"], "unknown convolution 'bogus'"),
        (["--set", "loss=[{name: focal, options: {gama: 2}}]"], "unknown argument 'gama'"),
        (["--set", "loss=[{name: ce, options: {weighting: bogus}}]"], "unknown class weighting"),
        (["--set", "sampler={name: class_aware, options: {temperature: 0}}"], "temperature"),
    ],
)
def test_bad_values_fail_in_one_line_before_any_work(extra, fragment, tmp_path, meld_slice, capsys):
    out, cache = tmp_path / "run", tmp_path / "cache"
    assert cli(*train_args(out, meld_slice, cache, *extra)) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() and not cache.exists()  # nothing half-made, nothing extracted


@pytest.mark.parametrize("where", ["out_file", "out_under_file", "cache_file"])
def test_unusable_out_and_cache_folders_are_named(where, tmp_path, meld_slice, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("precious\n")
    out, cache = tmp_path / "run", tmp_path / "cache"
    if where == "out_file":
        out = blocker
    elif where == "out_under_file":
        out = blocker / "run"
    else:
        cache = blocker
    assert cli(*train_args(out, meld_slice, cache)) == 2
    err = capsys.readouterr().err
    assert str(blocker) in err and err.count("\n") == 1
    assert blocker.read_text() == "precious\n"


def test_labels_that_differ_only_by_case_are_refused(tmp_path, meld_slice, capsys):
    df = pd.read_csv(meld_slice / "meld" / "train_sent_emo.csv")
    table = tmp_path / "t.csv"
    labels = df["Emotion"].where(df.index % 7 != 0, df["Emotion"].str.capitalize())
    pd.DataFrame(
        {
            "split": "train",
            "dialogue_id": df["Dialogue_ID"],
            "speaker": df["Speaker"],
            "text": df["Utterance"],
            "label": labels,
        }
    ).to_csv(table, index=False)
    code = cli(
        *train_args(
            tmp_path / "r",
            meld_slice,
            tmp_path / "c",
            "--set",
            "data.reader=table",
            "--set",
            f"data.path={table}",
        )
    )
    assert code == 2
    assert "differ only by case or whitespace" in capsys.readouterr().err


def test_ctrl_c_names_resume(tmp_path, meld_slice):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ercgraph",
            *train_args(out, meld_slice, tmp_path / "c")[:-2],
            "--set",
            "train.epochs=500",
            "--set",
            "train.patience=500",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # a shell's background job inherits SIGINT ignored; the user's terminal delivers it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "epoch 1:" in line:
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 130
    command = rest.strip().splitlines()[-1].split("continue where it stopped with: ")[1]
    # the same command line, so the resumed run has the user's config and overrides
    assert command.startswith("ercgraph train -c ") and command.endswith(" --resume")
    assert f"--out {out}" in command and "--set train.epochs=500" in command


def test_progress_logs_periodically_when_stderr_is_not_a_terminal(caplog):
    from ercgraph.progress import Progress

    with caplog.at_level(logging.INFO, logger="ercgraph.progress"):
        with Progress(10, "text features", unit="utt", every=0.0) as bar:
            for _ in range(10):
                bar.update(1)
    lines = [r.getMessage() for r in caplog.records]
    assert lines and lines[-1].startswith("text features: 10/10 utt (100%")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ercgraph.progress"):
        with Progress(10, "quiet", enabled=False) as bar:
            bar.update(10)
    assert not caplog.records


def test_resume_finds_moved_data_and_cache(tmp_path, meld_slice, capsys):
    import shutil

    out = tmp_path / "run"
    assert cli(*train_args(out, meld_slice, tmp_path / "c1")) == 0
    moved = tmp_path / "moved"
    shutil.copytree(meld_slice, moved)
    args = train_args(out, moved, tmp_path / "c2", "--set", "train.epochs=2", "--resume")
    assert cli(*args) == 0, capsys.readouterr().err


@pytest.mark.parametrize("command", ["predict", "show-graph"])
def test_an_output_path_under_a_file_is_a_one_line_error(command, tmp_path, meld_slice, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("precious\n")
    if command == "predict":
        run = tmp_path / "run"
        assert cli(*train_args(run, meld_slice, tmp_path / "c")) == 0
        table = meld_slice / "meld" / "test_sent_emo.csv"
        args = [
            "predict",
            str(run),
            str(table),
            "--column",
            "dialogue_id=Dialogue_ID",
            "--column",
            "speaker=Speaker",
            "--column",
            "text=Utterance",
        ]
    else:
        args = [
            "show-graph",
            "-c",
            str(REPO / "configs/meld_text.yaml"),
            "--data-root",
            str(meld_slice),
            "--dialogue",
            "dev_3",
        ]
    capsys.readouterr()
    assert cli(*args, "--out", str(blocker / "x.out")) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "Traceback" not in err
    assert blocker.read_text() == "precious\n"
