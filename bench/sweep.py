"""Run a sweep space (``bench/spaces/*.yaml``, ``configs/spaces/*.yaml``) with ``ercgraph sweep``
on a fresh feature cache and record it as a bench result.

The sweep is :func:`ercgraph.sweep.run_sweep`, the code path of ``ercgraph sweep``: every trial
is judged on dev only, and the best trial on dev is scored on test once, after the last trial.
Features are extracted once, into a cache made for this invocation (``--cache`` to reuse one),
and shared by every trial.

Usage:
    python bench/sweep.py SPACE --config CONFIG [--seeds 0,1] [--set KEY=VALUE ...]
        [--trials N] [--seed 0] [--jobs 1] [--no-prune] [--out NAME]

Writes ``bench/results/<NAME>.json`` (default NAME: ``sweep_<space name>_optuna``) with the
provenance of :func:`common.write_result`, the space, every trial's row (parameters, ``--set``
items, dev score, state, epochs, wall seconds), the best trial on dev and its test score. The
sweep folder itself (trial run directories, ``trials.md``, ``best.yaml``) is kept under
``--work`` (default: a new folder in the temp directory), printed at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from common import data_root, write_result  # noqa: E402


def _rel(path: str | Path) -> str:
    p = Path(path).resolve()
    try:
        return str(p.relative_to(REPO))
    except ValueError:
        return str(p)


def record(summary: dict[str, Any], wall_s: float) -> dict[str, Any]:
    """What a bench result keeps of a sweep's ``sweep.json``: no machine-local paths."""
    keep = ("trial", "state", "dev", "epochs", "wall_s", "params", "set", "note")
    rows = [{k: r.get(k) for k in keep} for r in summary["trials"]]
    best = summary.get("best")
    if best is not None:
        best = {k: best.get(k) for k in ("trial", "params", "set", "dev", "test", "dev_rescored")}
    return {
        "select_metric": summary["select_metric"],
        "direction": summary["direction"],
        "sampler": summary["sampler"],
        "sampler_seed": summary["seed"],
        "pruning": summary["pruning"],
        "space_spec": summary["space"],
        "trials_requested": summary["trials_requested"],
        "grid_size": summary.get("grid_size"),
        "counts": summary["counts"],
        "epochs_trained": sum(r.get("epochs") or 0 for r in rows),
        "wall_s": wall_s,
        "trials": rows,
        "best": best,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("space", help="the space file (bench/spaces/*.yaml, configs/spaces/*.yaml)")
    ap.add_argument("--config", required=True, help="the base config (e.g. configs/meld_text.yaml)")
    ap.add_argument("--seeds", help="seeds of every trial, e.g. 0,1 (default: the config's)")
    ap.add_argument("--set", action="append", default=[], help="config override, repeatable")
    ap.add_argument("--trials", type=int, help="trials (default: the grid's size; else 20)")
    ap.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    ap.add_argument("--jobs", type=int, default=1, help="trials at once")
    ap.add_argument("--no-prune", action="store_true", help="train every trial to the end")
    ap.add_argument("--out", help="results name (default: sweep_<space name>_optuna)")
    ap.add_argument("--work", help="the sweep folder (default: a new temp folder)")
    ap.add_argument("--cache", help="feature cache (default: a fresh one in the sweep's folder)")
    args = ap.parse_args(argv)
    os.environ.setdefault("ERCGRAPH_DATA", str(data_root()))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ercgraph.config import load_config
    from ercgraph.sweep import load_space, run_sweep, summary_lines

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="ercgraph-bench-sweep-"))
    cache = args.cache or str(work / "cache")
    sets = list(args.set)
    if args.seeds:
        sets.append(f"train.seeds=[{args.seeds}]")
    cfg = load_config(args.config, sets, cache_dir=cache)
    space = load_space(args.space)
    trials = args.trials or (space.grid_size() if space.sampler == "grid" else 20)
    name = args.out or f"sweep_{Path(args.space).stem}_optuna"
    t0 = time.perf_counter()
    summary = run_sweep(
        cfg,
        space,
        work / "sweep",
        trials,
        seed=args.seed,
        jobs=args.jobs,
        prune=not args.no_prune,
        command=[sys.executable, *sys.argv],
    )
    wall = time.perf_counter() - t0
    payload = {
        "space": _rel(args.space),
        "config": _rel(args.config),
        "overrides": args.set,
        "seeds": list(cfg.train.seeds),
        "jobs": args.jobs,
        "split_scored": "dev for every trial; test once, for the best trial on dev",
        **record(summary, wall),
    }
    path = write_result(name, payload)
    print("\n".join(summary_lines(summary, work / "sweep")))
    print(f"\nWrote {path} in {wall / 60:.1f} min.")


if __name__ == "__main__":
    main()
