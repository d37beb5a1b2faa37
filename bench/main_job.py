"""The README's main job, exactly as a new user runs it, on a fresh cache.

Runs ``ercgraph train -c CONFIG --seeds 0,1,2,3,4`` in a subprocess with the CLI's own thread
settings (nothing pinned by this script), ``ERCGRAPH_DATA`` and ``HF_HUB_OFFLINE=1``, into a fresh
``ERCGRAPH_CACHE`` (so the features are extracted by this very command), and records what the
run wrote: per-seed dev and test scores, the same-run linear probe (``baselines.probe``), the
command's wall time, the feature, training and probe times, and the lines the command printed.
The README's headline row is generated from this file, so it is what the command prints.

Usage: python bench/main_job.py [--config configs/meld_text.yaml] [--seeds 0,1,2,3,4]
    [--out main_job]
Writes bench/results/<out>.json.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from common import data_root, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/meld_text.yaml")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--out", default="main_job")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ercgraph-main-job-"))
    run_dir = work / "run"
    env = {
        **os.environ,
        "ERCGRAPH_DATA": str(data_root()),
        "HF_HUB_OFFLINE": "1",
        "ERCGRAPH_CACHE": str(work / "cache"),  # fresh: this command extracts the features
    }
    cmd = ["ercgraph", "train", "-c", args.config, "--seeds", args.seeds, "--out", str(run_dir)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    m = json.loads((run_dir / "metrics.json").read_text())
    select = m["select_metric"]
    probe = m.get("baselines", {}).get("probe", {})
    keys = [select, "accuracy", "weighted_f1", "macro_f1", "micro_f1"]
    keys = list(dict.fromkeys(k for k in keys if k in m["test"]))
    result = {
        "train_command": " ".join(cmd),
        "config": args.config,
        "seeds": m["seeds"],
        "select_metric": select,
        "headline": m["headline"],
        "dev": {k: m["dev"][k] for k in keys},
        "test": {k: m["test"][k] for k in keys},
        "test_per_class_f1": {k: v["f1"] for k, v in m["test"].get("per_class", {}).items()},
        "test_ensemble": m.get("test_ensemble"),
        "probe": {
            k: probe.get(k)
            for k in ("model", "param", "chosen", "grid", "delta", "fit_s", "missing", "features")
        }
        | {
            "dev": {k: (probe.get("dev") or {}).get(k) for k in keys},
            "test": {k: (probe.get("test") or {}).get(k) for k in keys},
            "test_per_class_f1": {
                k: v["f1"] for k, v in ((probe.get("test") or {}).get("per_class") or {}).items()
            },
        },
        "wall_s": wall,
        "timings": m.get("timings"),
        "probe_share_of_wall": (probe.get("fit_s") or 0.0) / wall,
        "epoch_s_mean": m.get("epoch_s_mean"),
        "printed": done.stdout.strip().splitlines()[-8:],
    }
    path = write_result(args.out, result)
    t = m["test"][select]
    print(f"{args.config}: test {select} {t['mean']:.2f} ± {t['std']:.2f}, seeds {t['per_seed']}")
    if "dev" in probe:
        print(
            f"probe: dev {probe['dev'][select]:.2f} test {probe['test'][select]:.2f} "
            f"({probe['fit_s']:.1f} s, {100 * result['probe_share_of_wall']:.1f}% of {wall:.0f} s)"
        )
    print(f"Wrote {path}.")


if __name__ == "__main__":
    main()
