"""The seed methods side by side: one invocation, every method from its shipped config through
the CLI (one subprocess per run, so each run's peak RSS is its own).

Two tables:

1. **Planted complementarity**: synthetic two-modality data (modalities named ``audio`` and
   ``visual`` so every method config applies unchanged) where each utterance carries one bit per
   modality and the label is their XOR: either modality alone is at chance (50), both together
   determine the label. Every fusion method should reach 95; the single-modality rows (the
   hierarchical GCN on one modality) should stay within 5 points of chance. Split protocol
   (train/dev/test drawn once), epoch chosen on dev.
2. **RAVDESS**, 6 folds of 4 held-out actors (dev = the next fold's actors): every method's
   test accuracy, UA and macro F1 (mean ± std over folds of each fold's mean over seeds), epoch
   time and peak RSS, with logistic regression on the concatenated features measured in the
   same run, Foal-Net with and without alignment, and each paper's published figure beside it
   with the protocol difference.

Usage: python bench/methods.py [--seeds 0,1,2,3,4] [--skip-planted] [--only NAME,...] [--jobs 2]

With ``--jobs 2`` two runs go at once, each a one-thread subprocess (``train.threads`` is 1)
on its own core; every epoch time of a table is then measured under the same condition.
Writes bench/results/methods.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from common import data_root, print_table, write_result  # noqa: E402

#: ablation rows measured on the planted check only (on RAVDESS they would double the run)
PLANTED_ONLY = ("Foal-Net without alignment or matching", "M2FNet without the triplet term")

#: row name → (shipped config, --set overrides, the paper's figure and protocol difference)
METHODS: dict[str, tuple[str, list[str], str]] = {
    "hierarchical GCN": ("ravdess.yaml", [], "ercgraph's own model"),
    "context-free MLP": ("ravdess_mlp.yaml", [], "baseline"),
    "M2FNet": (
        "ravdess_m2fnet.yaml",
        [],
        "published on MELD (weighted F1 66.71) and IEMOCAP (69.86), figures as tabulated by "
        "later work; text + audio + visual with extractors trained on raw media, not RAVDESS",
    ),
    "Foal-Net": (
        "ravdess_foalnet.yaml",
        [],
        "published on IEMOCAP, leave-one-session-out (UA 80.10 / WA 79.45), audio + video "
        "from WavLM and CLIP, not RAVDESS",
    ),
    "Foal-Net without alignment": (
        "ravdess_foalnet.yaml",
        ["loss=[{name: ce}, {name: label_matching, weight: 0.5}]"],
        "the same config without the alignment term (label matching kept)",
    ),
    "Foal-Net without alignment or matching": (
        "ravdess_foalnet.yaml",
        ["loss=[{name: ce}]"],
        "the same config with the emotion loss only",
    ),
    "M2FNet without the triplet term": (
        "ravdess_m2fnet.yaml",
        ["loss=[{name: ce}]"],
        "the same config with the emotion loss only",
    ),
    "RCMA": (
        "ravdess_rcma.yaml",
        [],
        "published on Aff-Wild2 valence/arousal, validation CCC 0.585 / 0.674 (arXiv "
        "2403.13659v4), not RAVDESS classification",
    ),
    "perspective loss": (
        "ravdess_perspective.yaml",
        [],
        "published on IEMOCAP text + audio at dialogue level; its figures not verified here",
    ),
    "MMGCN": (
        "ravdess.yaml",
        ["model.name=mmgcn", "model.fusion=concat"],
        "published on IEMOCAP (weighted F1 66.22) and MELD (58.65), figures as tabulated by "
        "later work; RAVDESS clips are one-utterance dialogues, so only cross-modal edges exist",
    ),
}


def run_cli(args: list[str], log: Path) -> tuple[int, float, float]:
    """``python -m ercgraph ARGS`` in a subprocess; exit status, wall seconds, peak RSS (MB)."""
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ercgraph", "-q", *args], stdout=fh, stderr=fh
        )
        _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return code, time.perf_counter() - t0, usage.ru_maxrss / 1024.0


def fan_out(fn: Any, calls: list[tuple], jobs: int) -> list[Any]:
    """``fn(*args)`` for every tuple in ``calls``, ``jobs`` at a time; results in call order."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(lambda a: fn(*a), calls))


def planted(root: Path, seed: int = 0, n: int = 1800) -> None:
    """``planted/labels.csv`` and ``planted/{audio,visual}.npy``: XOR of one bit per modality."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n)
    v = rng.integers(0, 2, n)
    y = a ^ v
    dim = 16

    def features(bits: np.ndarray) -> np.ndarray:
        x = rng.normal(0.0, 1.0, (n, dim))
        x[:, :4] += np.where(bits[:, None] == 1, 2.0, -2.0)
        return x.astype(np.float32)

    split = np.array(
        ["train"] * (n * 2 // 3) + ["dev"] * (n // 6) + ["test"] * (n - n * 2 // 3 - n // 6)
    )
    folder = root / "planted"
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "clip": [f"c{i}" for i in range(n)],
            "speaker": "s",
            "label": np.where(y == 1, "one", "zero"),
            "split": split,
        }
    ).to_csv(folder / "labels.csv", index=False)
    np.save(folder / "audio.npy", features(a))
    np.save(folder / "visual.npy", features(v))


PLANTED_DATA = [
    "data={reader: table, name: planted, path: planted/labels.csv, columns: {dialogue_id: clip}}",
    "features.files={audio: {path: planted/audio.npy}, visual: {path: planted/visual.npy}}",
    "protocol={name: split}",
    "metrics.headline=accuracy",
]


def scores(out: Path) -> dict[str, Any]:
    m = json.loads((out / "metrics.json").read_text())
    row: dict[str, Any] = {}
    for split in ("dev", "test"):
        for key in ("accuracy", "unweighted_accuracy", "macro_f1"):
            v = m[split][key]
            row[f"{split}_{key}"] = {"mean": v["mean"], "std": v["std"]}
    row["epoch_s"] = m.get("epoch_s_mean")
    return row


def ravdess_lr() -> dict[str, Any]:
    """Logistic regression on the concatenated features, standardised and speaker-normalised."""
    from protocols import ravdess_baselines

    return {
        "standard": ravdess_baselines([0])[0],
        "speaker": ravdess_baselines([0], normalise="speaker")[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--skip-planted", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated method names (a subset run)")
    ap.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at once, each a one-thread subprocess (train.threads is 1) on its own core",
    )
    args = ap.parse_args()
    root = data_root()
    env_seeds = f"train.seeds=[{args.seeds}]"
    names = [n for n in METHODS if not args.only or n in args.only.split(",")]
    payload: dict[str, Any] = {"seeds": [int(s) for s in args.seeds.split(",")]}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cache = work / "cache"
        if not args.skip_planted:
            proot = work / "planted_root"
            planted(proot)
            rows = []
            variants = [(n, METHODS[n][0], METHODS[n][1]) for n in names]
            variants += [
                ("audio only (hierarchical GCN)", "ravdess.yaml", ["features.modalities=[audio]"]),
                (
                    "visual only (hierarchical GCN)",
                    "ravdess.yaml",
                    ["features.modalities=[visual]"],
                ),
            ]

            def planted_run(i: int, config: str, sets: list[str]) -> tuple[int, float, float]:
                out = work / f"planted_{i}"
                cli = ["train", "-c", str(REPO / "configs" / config), "--data-root", str(proot)]
                cli += ["--cache-dir", str(cache / f"planted_{i}"), "--out", str(out)]
                for s in [*PLANTED_DATA, *sets, "train.seeds=[0,1,2]"]:
                    cli += ["--set", s]
                return run_cli(cli, work / f"planted_{i}.log")

            done = fan_out(
                planted_run, [(i, c, st) for i, (_, c, st) in enumerate(variants)], args.jobs
            )
            for i, (name, _, _) in enumerate(variants):
                out = work / f"planted_{i}"
                code, wall, rss = done[i]
                if code != 0:
                    raise SystemExit(
                        f"{name}: exit {code}\n{(work / f'planted_{i}.log').read_text()[-3000:]}"
                    )
                rows.append({"method": name, **scores(out), "wall_s": wall, "peak_rss_mb": rss})
                print(
                    f"planted {name}: test acc {rows[-1]['test_accuracy']['mean']:.2f}", flush=True
                )
            payload["planted"] = {"chance": 50.0, "seeds": [0, 1, 2], "rows": rows}
        rows = []
        rav_names = [n for n in names if n not in PLANTED_ONLY]

        def ravdess_run(i: int, name: str) -> tuple[int, float, float]:
            config, sets, _ = METHODS[name]
            out = work / f"ravdess_{i}"
            cli = ["train", "-c", str(REPO / "configs" / config), "--data-root", str(root)]
            cli += ["--cache-dir", str(cache / f"ravdess_{i}"), "--out", str(out)]
            for s in [*sets, env_seeds]:
                cli += ["--set", s]
            return run_cli(cli, work / f"ravdess_{i}.log")

        done = fan_out(ravdess_run, list(enumerate(rav_names)), args.jobs)
        for i, name in enumerate(rav_names):
            config, sets, paper = METHODS[name]
            out = work / f"ravdess_{i}"
            code, wall, rss = done[i]
            if code != 0:
                raise SystemExit(
                    f"{name}: exit {code}\n{(work / f'ravdess_{i}.log').read_text()[-3000:]}"
                )
            rows.append(
                {
                    "method": name,
                    "config": f"configs/{config}",
                    "overrides": sets,
                    **scores(out),
                    "wall_s": wall,
                    "peak_rss_mb": rss,
                    "paper": paper,
                }
            )
            print(f"ravdess {name}: test acc {rows[-1]['test_accuracy']['mean']:.2f}", flush=True)
        lr = ravdess_lr()
        payload["jobs"] = args.jobs
        payload["ravdess"] = {
            "protocol": "6 folds of 4 held-out actors; dev = the next fold's actors",
            "rows": rows,
            "logistic_regression": lr,
        }
    write_result("methods", payload)
    print_table(
        [
            {"method": r["method"], "acc": r["test_accuracy"]["mean"], "epoch_s": r["epoch_s"]}
            for r in payload["ravdess"]["rows"]
        ]
    )


if __name__ == "__main__":
    main()
