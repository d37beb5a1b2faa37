"""Dev sweep for the defaults that must carry over to corpora we did not tune for (issue 21).

Every setting trains the default model (the dataclass defaults of ``ModelConfig`` and
``TrainConfig``, the default graph) on every corpus and reads two numbers from the run's own
``metrics.json``: the model's dev select metric (mean over seeds) and the dev score of the run's
linear probe (``baselines.probe``, same node features, same normaliser). Only dev is read: the
test split is never shown or used here.

Corpora: the planted layouts of ``bench/planted.py`` (a class signal in one modality of a
published pickle layout, no context signal), RAVDESS with the default model and graph (6 actor
folds), MELD text and DailyDialog text with frozen MiniLM (``--corpora`` picks).

Usage: python bench/sweep_defaults.py [--seeds 0,1] [--corpora planted,ravdess,meld,dailydialog]
    [--settings today,skip,steps,skip+steps] [--layouts KEY,...] [--jobs 2] [--out NAME]
Writes bench/results/<NAME>.json (default sweep_defaults).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from common import print_table, write_result  # noqa: E402
from planted import LAYOUTS, planted_corpus  # noqa: E402

#: setting name -> --set overrides on top of the defaults
SETTINGS: dict[str, list[str]] = {
    "today": [],
    "skip": ["model.linear_skip=true"],
    "steps": ["train.min_steps=50"],
    "skip+steps": ["model.linear_skip=true", "train.min_steps=50"],
    "steps100": ["train.min_steps=100"],
    "steps200": ["train.min_steps=200"],
    "steps100+skip": ["model.linear_skip=true", "train.min_steps=100"],
    "steps150": ["train.min_steps=150"],
    "drop0.2": ["model.dropout=0.2"],
    "wd0.1": ["train.weight_decay=0.1"],
    "hidden64": ["model.hidden=64"],
}


def default_config(overrides: list[str], base: str | None = None, keep: tuple[str, ...] = ()):
    """The dataclass defaults, with the sections ``keep`` taken from ``base`` (a config file)
    and ``overrides`` on top."""
    import yaml

    from ercgraph.config import load_config

    raw = {}
    if base:
        full = yaml.safe_load((REPO / base).read_text())
        raw = {k: v for k, v in full.items() if k in keep}
    tmp = Path(tempfile.mkdtemp(prefix="ercgraph-cfg-")) / "config.yaml"
    tmp.write_text(yaml.safe_dump(raw))
    return load_config(tmp, overrides)


def with_seeds(cfg, seeds):
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seeds=seeds))


def summarise(m: dict) -> dict:
    """Dev select metric of the model and of its probe, from one run's metrics.json."""
    select = m["select_metric"]
    probe = m.get("baselines", {}).get("probe", {})
    return {
        "select_metric": select,
        "dev": m["dev"][select],
        "probe_dev": (probe.get("dev") or {}).get(select),
        "probe": {k: probe.get(k) for k in ("model", "param", "chosen", "grid", "missing")},
        "best_epochs": m.get("best_epochs"),
        "epoch_s_mean": m.get("epoch_s_mean"),
    }


def run_planted(key: str, overrides: list[str], seeds: list[int], work: Path) -> dict:
    from ercgraph.pipeline import prepare
    from ercgraph.train import run

    corpus, store = planted_corpus(key)
    modality = LAYOUTS[key][1]
    cfg = default_config([f"features.modalities=[{modality}]", *overrides])
    cfg = with_seeds(dataclasses.replace(cfg, cache_dir=str(work / "cache")), seeds)
    prep = prepare(cfg, corpus, features=store)
    return summarise(run(cfg, work / f"{key}-{time.monotonic_ns()}", prep=prep))


def run_config(
    base: str, keep: tuple[str, ...], overrides: list[str], seeds: list[int], work: Path
) -> dict:
    from ercgraph.protocol import run_cv
    from ercgraph.train import run

    cfg = default_config(overrides, base, keep)
    cfg = with_seeds(
        dataclasses.replace(
            cfg, cache_dir=os.environ.get("ERCGRAPH_BENCH_CACHE", str(work / "cache"))
        ),
        seeds,
    )
    out = work / f"{Path(base).stem}-{time.monotonic_ns()}"
    if cfg.protocol.name == "group_kfold":
        m = run_cv(cfg, out)
        # per-fold runs each fit their probe: the mean over folds of the probe's dev score
        import json

        folds = sorted(out.glob("fold_*/metrics.json"))
        per = [json.loads(p.read_text()) for p in folds]
        select = per[0]["select_metric"]
        probe = [f["baselines"]["probe"]["dev"][select] for f in per if "baselines" in f]
        return {
            "select_metric": select,
            "dev": m["dev"][select],
            "probe_dev": sum(probe) / len(probe) if probe else None,
            "folds": len(per),
        }
    return summarise(run(cfg, out))


CORPORA = {
    # the shipped data and protocol sections, everything else the defaults
    "ravdess": ("configs/ravdess.yaml", ("data", "features", "protocol", "metrics")),
    "meld": ("configs/meld_text.yaml", ("data", "features")),
    "dailydialog": ("configs/dailydialog.yaml", ("data", "features", "metrics")),
}


def run_task(shared: tuple, i: int) -> dict:
    """One (corpus, setting) row: trained in its own worker process (``--jobs``)."""
    tasks, seeds, work, extra = shared
    corpus, key, setting = tasks[i]
    overrides = [*SETTINGS[setting], *extra]
    t0 = time.perf_counter()
    if corpus == "planted":
        r = run_planted(key, overrides, seeds, work)
    else:
        base, keep = CORPORA[key]
        r = run_config(base, keep, overrides, seeds, work)
    r.update(corpus=key, setting=setting, overrides=overrides, wall_s=time.perf_counter() - t0)
    d, p = r["dev"], r["probe_dev"]
    probe = "–" if p is None else f"{p:.2f}"
    print(
        f"{key:24s} {setting:14s} dev {r['select_metric']} {d['mean']:.2f} ± {d['std']:.2f}  "
        f"probe {probe}  {r['wall_s']:.0f}s",
        flush=True,
    )
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--corpora", default="planted,ravdess,meld,dailydialog")
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--layouts", default=",".join(LAYOUTS))
    ap.add_argument("--set", dest="extra", action="append", default=[])
    ap.add_argument("--jobs", type=int, default=1, help="rows trained at once (processes)")
    ap.add_argument("--out", default="sweep_defaults")
    args = ap.parse_args()
    os.environ.setdefault("ERCGRAPH_DATA", str(REPO.parent / "shared" / "data"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from ercgraph.parallel import fork_map

    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    work = Path(tempfile.mkdtemp(prefix="ercgraph-defaults-"))
    tasks = [
        (corpus, key, setting)
        for corpus in args.corpora.split(",")
        for key in (args.layouts.split(",") if corpus == "planted" else [corpus])
        for setting in args.settings.split(",")
    ]
    shared = (tasks, seeds, work, list(args.extra))
    rows = fork_map(run_task, shared, len(tasks), args.jobs, threads=1)
    result = {
        "seeds": seeds,
        "split_scored": "dev",
        "settings": {k: SETTINGS[k] for k in args.settings.split(",")},
        "extra_overrides": args.extra,
        "jobs": args.jobs,
        "rows": rows,
    }
    path = write_result(args.out, result)
    print_table(
        [
            {
                "corpus": r["corpus"],
                "setting": r["setting"],
                "dev": f"{r['dev']['mean']:.2f} ± {r['dev']['std']:.2f}",
                "probe dev": "–" if r["probe_dev"] is None else f"{r['probe_dev']:.2f}",
                "Δ": "–" if r["probe_dev"] is None else f"{r['dev']['mean'] - r['probe_dev']:+.2f}",
            }
            for r in rows
        ]
    )
    print(f"\nWrote {path}.")


if __name__ == "__main__":
    main()
