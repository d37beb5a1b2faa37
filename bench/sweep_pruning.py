"""What pruning buys a sweep, in one invocation (issue #24's target bench).

On MELD with frozen MiniLM text features (``configs/meld_text.yaml``, 3 seeds a trial) and the
space ``configs/spaces/meld_frozen.yaml`` (learning rate on a log scale, hidden size, dropout,
weight decay; its median pruner settings), all through :func:`ercgraph.sweep.run_sweep`, the
code path of ``ercgraph sweep``, with the same ``--jobs``:

1. **default**: the shipped config's own values as a one-point sweep (no pruning), its dev
   score over the same 3 seeds: the bar the sweep must reach;
2. **pruned**: a seeded 20-trial TPE sweep with the median pruner;
3. **unpruned**: the same 20 parameter sets, enqueued in that order into a new study, trained
   to the end (no pruner).

Recorded: both sweeps' wall times and epochs trained (over all seeds) and their ratios (target:
pruned <= half of unpruned), the pruned sweep's best dev against the default's dev (target: at
least as good), and the pruned sweep's best trial scored on test once (the other two sweeps
never read test). Features are extracted once, into a cache made for this invocation; the
default run pays for the extraction, so neither timed sweep does.

Usage: python bench/sweep_pruning.py [--trials 20] [--seeds 0,1,2] [--jobs 1] [--seed 0]
Writes bench/results/sweep_pruning.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from common import data_root, print_table, write_result  # noqa: E402
from sweep import _rel, record  # noqa: E402

CONFIG = REPO / "configs" / "meld_text.yaml"
SPACE = REPO / "configs" / "spaces" / "meld_frozen.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="the TPE sampler's seed")
    ap.add_argument("--work", help="where the three sweeps go (default: a new temp folder)")
    ap.add_argument("--config", type=Path, default=CONFIG, help=argparse.SUPPRESS)  # smoke tests
    ap.add_argument("--space", type=Path, default=SPACE, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("ERCGRAPH_DATA", str(data_root()))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import optuna

    from ercgraph.config import load_config
    from ercgraph.sweep import load_space, parse_space, run_sweep

    work = Path(args.work or tempfile.mkdtemp(prefix="ercgraph-sweep-pruning-"))
    cache = str(work / "cache")  # fresh: features are extracted once, by the default run
    cfg = load_config(args.config, [f"train.seeds=[{args.seeds}]"], cache_dir=cache)
    space = load_space(args.space)
    command = [sys.executable, *sys.argv]

    # 1. the shipped values of the swept keys, as a one-point grid through the same code path
    shipped = {
        "train.lr": cfg.train.lr,
        "model.hidden": cfg.model.hidden,
        "model.dropout": cfg.model.dropout,
        "train.weight_decay": cfg.train.weight_decay,
    }
    assert set(shipped) == set(space.keys), "the space's keys changed: update `shipped`"
    point = parse_space(
        {"sampler": "grid", "params": {k: {"choices": [v]} for k, v in shipped.items()}},
        "the shipped values",
    )
    t0 = time.perf_counter()
    default = run_sweep(
        cfg, point, work / "default", 1, jobs=args.jobs, prune=False, command=command,
        score_test=False,
    )  # fmt: skip
    default_s = time.perf_counter() - t0

    # 2. the pruned TPE sweep; timed without its test scoring, which the same command then does
    # once as a resume with nothing left to train (the unpruned sweep scores nothing)
    t0 = time.perf_counter()
    run_sweep(
        cfg, space, work / "pruned", args.trials, seed=args.seed, jobs=args.jobs, prune=True,
        command=command, score_test=False,
    )  # fmt: skip
    pruned_s = time.perf_counter() - t0
    pruned = run_sweep(
        cfg, space, work / "pruned", args.trials, seed=args.seed, jobs=args.jobs, prune=True,
        command=command,
    )  # fmt: skip

    # 3. the same parameter sets, in the same order, trained to the end
    url, name = f"sqlite:///{(work / 'unpruned.db').resolve()}", "unpruned"
    study = optuna.create_study(study_name=name, storage=url, direction=pruned["direction"])
    sets = [r["params"] for r in sorted(pruned["trials"], key=lambda r: r["trial"])]
    for params in sets:
        study.enqueue_trial(params)
    t0 = time.perf_counter()
    unpruned = run_sweep(
        cfg, space, work / "unpruned", len(sets), jobs=args.jobs, prune=False, storage=url,
        study_name=name, command=command, score_test=False,
    )  # fmt: skip
    unpruned_s = time.perf_counter() - t0
    same = [r["params"] for r in unpruned["trials"]] == sets

    p, u, d = record(pruned, pruned_s), record(unpruned, unpruned_s), record(default, default_s)
    best_dev, default_dev = (pruned["best"] or {}).get("dev"), (default["best"] or {}).get("dev")
    unpruned_best = unpruned["best"] or {}
    result = {
        "config": _rel(args.config),
        "space": _rel(args.space),
        "seeds": list(cfg.train.seeds),
        "jobs": args.jobs,
        "split_scored": "dev for every trial; test once, for the pruned sweep's best trial",
        "same_parameter_sets": same,
        "default": {"params": shipped, **d},
        "pruned": p,
        "unpruned": u,
        "wall_ratio": pruned_s / unpruned_s,
        "epochs_ratio": p["epochs_trained"] / max(u["epochs_trained"], 1),
        "target_wall_ratio": 0.5,
        "wall_ratio_met": pruned_s <= 0.5 * unpruned_s,
        "best_dev": best_dev,
        "default_dev": default_dev,
        "best_dev_at_least_default": None
        if best_dev is None or default_dev is None
        else best_dev >= default_dev,
        "unpruned_best": {k: unpruned_best.get(k) for k in ("trial", "params", "dev")},
        "best_test": (pruned["best"] or {}).get("test"),
        "work": str(work),
    }
    path = write_result("sweep_pruning", result)
    print_table(
        [
            {"sweep": "default (shipped)", "wall min": default_s / 60, "best dev": default_dev},
            {"sweep": "pruned TPE", "wall min": pruned_s / 60, "best dev": best_dev},
            {"sweep": "same sets, unpruned", "wall min": unpruned_s / 60,
             "best dev": unpruned_best.get("dev")},
        ]
    )  # fmt: skip
    print(
        f"\nwall ratio {result['wall_ratio']:.2f} (epochs {result['epochs_ratio']:.2f}); best "
        f"trial's test {result['best_test']}; wrote {path}"
    )


if __name__ == "__main__":
    main()
