"""MELD edge-type ablation (3 seeds) end to end through ``ercgraph ablate``, timed on this
machine. The baseline measured in the same run is the full-graph variant: the table compares
every variant's scores with it, and the wall time is reported as a multiple of its training time.

Usage: python bench/ablation.py [--seeds 0,1,2] [--config configs/meld_text.yaml]
Writes bench/results/ablation.json (with bench/common.py's write_result; + the ablation table)
and prints the table.
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

try:
    from bench.common import write_result
except ImportError:  # run as a script: bench/ itself is on sys.path
    from common import write_result

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--config", default=str(REPO / "configs/meld_text.yaml"))
    ap.add_argument("--cache-dir", help="reuse a feature cache (extraction is then not timed)")
    ap.add_argument("--mode", default="pairs", choices=["pairs", "relations"])
    args = ap.parse_args()
    os.environ.setdefault("ERCGRAPH_DATA", str(REPO.parent / "shared" / "data"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="ercgraph-ablation-"))
    cache = args.cache_dir or str(work / "cache")
    out = work / "ablation"
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ercgraph",
            "-q",
            "ablate",
            "-c",
            args.config,
            "--seeds",
            args.seeds,
            "--out",
            str(out),
            "--cache-dir",
            cache,
            "--mode",
            args.mode,
        ],
        check=True,
        cwd=REPO,
    )
    wall = time.perf_counter() - t0
    rows = json.loads((out / "ablation.json").read_text())
    full = next(r for r in rows if r["variant"] == "full")
    full_train = json.loads((out / "full" / "metrics.json").read_text())["timings"]["train_s"]
    for r in rows:
        r["delta_test_wf1_vs_full"] = (
            r["test_weighted_f1"]["mean"] - full["test_weighted_f1"]["mean"]
        )
        r["train_s"] = json.loads((out / r["variant"] / "metrics.json").read_text())["timings"][
            "train_s"
        ]
    result = {
        "seeds": args.seeds,
        "config": args.config,
        "mode": args.mode,
        "baseline": "full",
        "wall_s": wall,
        "wall_over_full_train": wall / full_train,
        "features_cached": bool(args.cache_dir),
        "rows": rows,
        "table_md": (out / "ablation.md").read_text(),
    }
    dest = write_result("ablation", result)
    print(result["table_md"])
    print(
        f"wall time {wall / 60:.1f} min on {os.cpu_count()} cores "
        f"({wall / full_train:.1f}x the full variant's training time); "
        f"features cached: {bool(args.cache_dir)}"
    )
    for r in rows:
        print(
            f"  {r['variant']:28s} Δ test wF1 vs full {r['delta_test_wf1_vs_full']:+.2f}  "
            f"train {r['train_s']:.0f} s"
        )
    print(f"Wrote {dest}.")


if __name__ == "__main__":
    main()
