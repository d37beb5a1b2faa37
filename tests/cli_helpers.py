"""Run the ercgraph CLI in-process and return its exit status."""

from pathlib import Path

from ercgraph.cli import main

REPO = Path(__file__).resolve().parents[1]


def cli(*args) -> int:
    """``ercgraph ARGS`` in this process; the exit status (0 when it returns normally)."""
    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


#: a RAVDESS preset cut down to seconds: one epoch, a small model, 2 folds of 12 actors
QUICK_CV = ("train.epochs=1", "model.hidden=16", "protocol.folds=2", "protocol.dev_groups=4")


def train_quick_cv(config, data_root, tmp, *extra: str):
    """``ercgraph train -c CONFIG`` on the real data with :data:`QUICK_CV` (plus ``extra`` CLI
    arguments); asserts it succeeds and returns the run folder."""
    out = tmp / "run"
    args = ["train", "-c", str(config), "--data-root", str(data_root)]
    args += ["--cache-dir", str(tmp / "cache"), "--out", str(out)]
    for s in QUICK_CV:
        args += ["--set", s]
    assert cli(*args, *extra) == 0
    return out


def train_args(out, meld_slice, cache, *extra):
    """``ercgraph train`` on the MELD slice, one epoch, into ``out``."""
    return [
        "train",
        "-c",
        str(REPO / "configs/meld_text.yaml"),
        "--data-root",
        str(meld_slice),
        "--cache-dir",
        str(cache),
        "--out",
        str(out),
        "--set",
        "train.epochs=1",
        *extra,
    ]
