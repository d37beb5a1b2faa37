"""Dev sweep of the text-ERC training objectives as loss terms, on the shipped frozen recipe
(``configs/meld_text.yaml``, or ``--config``): cross-entropy alone, with label smoothing, with
R-Drop consistency, with the supervised contrastive (SPCL-style) term, scored on **dev** only
(test is never read). A term earns a place in a shipped recipe only if it helps here.

Usage: python bench/sweep_text_objectives.py [--seeds 0,1,2] [--config configs/meld_text.yaml]
       [--set features.text.encoder=all-mpnet-base-v2 ...]
Writes bench/results/sweep_text_objectives.json (features from ``$ERCGRAPH_BENCH_CACHE`` when
set, else a fresh cache).
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

CE = {"name": "ce"}
VARIANTS: dict[str, list[dict]] = {
    "ce": [CE],
    "ce+label_smoothing": [{"name": "ce", "options": {"label_smoothing": 0.1}}],
    "ce+rdrop": [CE, {"name": "rdrop", "weight": 1.0}],
    "ce+supcon": [CE, {"name": "supcon", "weight": 0.1, "options": {"temperature": 0.1}}],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--config", default=str(REPO / "configs/meld_text.yaml"))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--set", action="append", default=[], help="config override, repeatable")
    args = ap.parse_args()
    os.environ.setdefault("ERCGRAPH_DATA", str(REPO.parent / "shared" / "data"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ercgraph.config import LossConfig, load_config
    from ercgraph.pipeline import prepare
    from ercgraph.train import run

    seeds = [int(s) for s in args.seeds.split(",")]
    work = Path(tempfile.mkdtemp(prefix="ercgraph-sweep-"))
    cache = os.environ.get("ERCGRAPH_BENCH_CACHE", str(work / "cache"))
    base = load_config(args.config, args.set, cache_dir=cache)
    base = dataclasses.replace(base, train=dataclasses.replace(base.train, seeds=seeds))
    prep = prepare(base)
    rows = []
    for name in args.variants.split(","):
        terms = [
            LossConfig(t["name"], t.get("weight", 1.0), t.get("options", {}))
            for t in VARIANTS[name]
        ]
        cfg = dataclasses.replace(base, loss=terms)
        t0 = time.perf_counter()
        m = run(cfg, work / name.replace("+", "_"), prep=prep)
        rows.append(
            {
                "variant": name,
                "loss": VARIANTS[name],
                "dev_weighted_f1": m["dev"]["weighted_f1"],
                "dev_macro_f1": m["dev"]["macro_f1"],
                "dev_fear_f1": m["dev"]["per_class"]["fear"]["f1"],
                "dev_disgust_f1": m["dev"]["per_class"]["disgust"]["f1"],
                "epoch_s": m["epoch_s_mean"],
                "best_epochs": m["best_epochs"],
                "wall_s": time.perf_counter() - t0,
            }
        )
        print(f"{name}: dev wF1 {m['dev']['weighted_f1']['mean']:.2f}", flush=True)
    ref = next((r for r in rows if r["variant"] == "ce"), rows[0])
    for r in rows:
        r["dev_weighted_f1_delta_vs_ce"] = (
            r["dev_weighted_f1"]["mean"] - ref["dev_weighted_f1"]["mean"]
        )
    best = max(rows, key=lambda r: r["dev_weighted_f1"]["mean"])
    result = {
        "config": str(Path(args.config).resolve().relative_to(REPO)),
        "overrides": args.set,
        "seeds": seeds,
        "split_scored": "dev",
        "best_on_dev": best["variant"],
        "rows": rows,
    }
    path = write_result("sweep_text_objectives", result)
    f = lambda m: f"{m['mean']:.2f} ± {m['std']:.2f}"  # noqa: E731
    print_table(
        [
            {
                "loss": r["variant"],
                "dev wF1": f(r["dev_weighted_f1"]),
                "Δ vs ce": f"{r['dev_weighted_f1_delta_vs_ce']:+.2f}",
                "dev macro F1": f(r["dev_macro_f1"]),
                "dev fear F1": f"{r['dev_fear_f1']:.2f}",
                "dev disgust F1": f"{r['dev_disgust_f1']:.2f}",
                "epoch s": f"{r['epoch_s']:.2f}",
            }
            for r in rows
        ]
    )
    print(f"\nWrote {path}.")


if __name__ == "__main__":
    main()
