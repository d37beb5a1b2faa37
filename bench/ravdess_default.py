"""The default model on RAVDESS, no preset, against each fold's own linear probe (issue 21).

One invocation: RAVDESS's clip-level features (``configs/ravdess.yaml``'s data, feature files
and protocol: 6 folds of 4 held-out actors, dev = the next fold's actors) with everything else
left at the toolkit's defaults: model, graph builders, training recipe and normalisation (the
dataclass defaults a new user gets without a preset). Every fold's run fits its own linear probe
on the same node features and normaliser (``baselines.probe``: C chosen on the fold's dev
actors, test scored once), so the baseline is measured in the same run. The shipped preset
(``configs/ravdess.yaml`` itself) runs in the same invocation for reference.

Target: the default model's test accuracy (mean over folds of each fold's mean over seeds) is at
least the probe's − 1.

Usage: python bench/ravdess_default.py [--seeds 0,1,2,3,4] [--jobs 2]
Writes bench/results/ravdess_default.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from common import data_root, print_table, write_result  # noqa: E402

TOLERANCE = 1.0
METRICS = ("accuracy", "unweighted_accuracy")


def default_config(seeds: list[int], jobs: int, cache: Path) -> Any:
    """RAVDESS's data, feature files, protocol and metric from the preset; nothing else."""
    import yaml

    from ercgraph.config import load_config

    preset = yaml.safe_load((REPO / "configs/ravdess.yaml").read_text())
    raw = {
        "data": preset["data"],
        "features": {
            "modalities": preset["features"]["modalities"],
            "files": preset["features"]["files"],
        },
        "protocol": preset["protocol"],
        "metrics": preset["metrics"],
        "train": {"select_metric": preset["train"]["select_metric"]},
    }
    path = cache.parent / "ravdess_default.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path, [f"train.seeds={seeds}", f"train.jobs={jobs}", f"cache_dir={cache}"])


def preset_config(seeds: list[int], jobs: int, cache: Path) -> Any:
    from ercgraph.config import load_config

    return load_config(
        REPO / "configs/ravdess.yaml",
        [f"train.seeds={seeds}", f"train.jobs={jobs}", f"cache_dir={cache}"],
    )


def summarise(name: str, out: Path, m: dict[str, Any], wall: float) -> dict[str, Any]:
    """Model and probe per fold, read from each fold's own metrics.json."""
    folds = sorted(int(p.name.split("_")[1]) for p in out.glob("fold_*"))
    row: dict[str, Any] = {"setting": name, "wall_s": wall, "folds": folds}
    per: dict[str, dict[str, list[float]]] = {}
    for k in folds:
        fm = json.loads((out / f"fold_{k}" / "metrics.json").read_text())
        probe = fm.get("baselines", {}).get("probe", {})
        for split in ("dev", "test"):
            for key in METRICS:
                per.setdefault(f"{split}_{key}", {}).setdefault("model", []).append(
                    fm[split][key]["mean"]
                )
                per[f"{split}_{key}"].setdefault("probe", []).append(
                    (probe.get(split) or {}).get(key, float("nan"))
                )
    for col, got in per.items():
        for who, vals in got.items():
            v = np.asarray(vals, dtype=float)
            row[f"{who}_{col}"] = {
                "mean": float(v.mean()),
                "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                "per_fold": [float(x) for x in v],
            }
    d = row["model_test_accuracy"]["mean"] - row["probe_test_accuracy"]["mean"]
    row["delta_test_accuracy"] = d
    row["target_met"] = bool(d >= -TOLERANCE)
    row["epoch_s"] = m.get("epoch_s_mean")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("ERCGRAPH_DATA", str(data_root()))
    seeds = [int(s) for s in args.seeds.split(",")]
    from ercgraph.protocol import run_cv

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, make in (
            ("default model and recipe (no preset)", default_config),
            ("configs/ravdess.yaml (the preset)", preset_config),
        ):
            cfg = make(seeds, args.jobs, work / "cache")
            out = work / name.split()[0].replace("/", "_")
            t0 = time.perf_counter()
            m = run_cv(cfg, out)
            rows.append(summarise(name, out, m, time.perf_counter() - t0))
    print_table(
        [
            {
                "setting": r["setting"],
                "model test acc": r["model_test_accuracy"]["mean"],
                "probe test acc": r["probe_test_accuracy"]["mean"],
                "delta": r["delta_test_accuracy"],
            }
            for r in rows
        ]
    )
    write_result(
        "ravdess_default",
        {
            "seeds": seeds,
            "jobs": args.jobs,
            "protocol": "6 folds of 4 held-out actors; dev = the next fold's actors; each "
            "fold's figure is its mean over seeds, mean ± std over folds",
            "tolerance": TOLERANCE,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
