"""Context encoders side by side: the context-free MLP, the hierarchical GCN, DAG-ERC and the
dialogue transformer on MELD and DailyDialog text, the same features for every body.

One invocation: per corpus, the shipped config (``configs/meld_text.yaml``,
``configs/dailydialog.yaml``) is read once, its corpus, features (extracted into one fresh cache
for this invocation), normaliser, head targets and graphs are prepared once, and every body of
``--bodies`` trains on that one preparation with ``model.name`` changed and nothing else (each
body's own options keep their defaults; ``--set`` applies to every run). Per body and corpus:
the dev and test select and headline metrics (mean ± std over ``--seeds`` and per seed), the
run's own linear probe on the same features (``baselines.probe``; identical for every body of
a corpus, which checks that they shared the features), the mean epoch seconds, and the best
epochs. The body with the best dev select metric averaged over the corpora is marked
``best_on_dev``: dev only, test never picks.

Usage: python bench/context_bodies.py [--corpora meld,dailydialog]
    [--bodies mlp,hierarchical_gcn,dagerc,dialogue_transformer] [--seeds 0,1,2,3,4]
    [--set KEY=VALUE ...] [--out bench/results/context_bodies.json]
Writes the ``--out`` file (a path; its stem names the bench).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from common import data_root, print_table, write_result  # noqa: E402

CORPORA = {"meld": "configs/meld_text.yaml", "dailydialog": "configs/dailydialog.yaml"}
BODIES = ("mlp", "hierarchical_gcn", "dagerc", "dialogue_transformer")


def _split(m: dict[str, Any], split: str, key: str) -> dict[str, Any] | None:
    v = (m.get(split) or {}).get(key)
    if v is None:
        return None
    return {"mean": v["mean"], "std": v["std"], "per_seed": v.get("per_seed")}


def row_of(m: dict[str, Any]) -> dict[str, Any]:
    """What the table keeps of one run's ``metrics.json``."""
    select, headline = m["select_metric"], m["headline"]
    probe = (m.get("baselines") or {}).get("probe") or {}
    keys = list(dict.fromkeys([select, headline]))
    return {
        "select_metric": select,
        "headline": headline,
        "dev": {k: _split(m, "dev", k) for k in keys},
        "test": {k: _split(m, "test", k) for k in keys},
        "probe": {
            "dev": {k: (probe.get("dev") or {}).get(k) for k in keys},
            "test": {k: (probe.get("test") or {}).get(k) for k in keys},
            "missing": probe.get("missing"),
        },
        "epoch_s_mean": m.get("epoch_s_mean"),
        "best_epochs": m.get("best_epochs"),
    }


def run_corpus(
    corpus: str, bodies: list[str], seeds: list[int], sets: list[str], work: Path
) -> dict[str, Any]:
    """Prepare ``corpus`` once (fresh cache under ``work``) and train every body on it."""
    from ercgraph.config import load_config
    from ercgraph.pipeline import check_context, prepare
    from ercgraph.train import run

    def config(body: str):
        cfg = load_config(REPO / CORPORA[corpus], [f"model.name={body}", *sets])
        cfg = dataclasses.replace(cfg, cache_dir=str(work / "cache"))
        return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seeds=seeds))

    t0 = time.perf_counter()
    prep = prepare(config(bodies[0]))
    prepare_s = time.perf_counter() - t0
    print(f"{corpus}: prepared in {prepare_s:.0f} s ({prep.timings})", flush=True)
    rows = {}
    for body in bodies:
        cfg = config(body)
        check_context(cfg, prep.corpus)  # what prepare checks for the body it was given
        t0 = time.perf_counter()
        m = run(cfg, work / f"{corpus}-{body}", prep=prep)
        rows[body] = {**row_of(m), "wall_s": time.perf_counter() - t0}
        r = rows[body]
        sel = r["select_metric"]
        print(
            f"{corpus:12s} {body:22s} dev {sel} {r['dev'][sel]['mean']:.2f} ± "
            f"{r['dev'][sel]['std']:.2f}  test {r['test'][sel]['mean']:.2f} ± "
            f"{r['test'][sel]['std']:.2f}  probe dev {r['probe']['dev'][sel] or float('nan'):.2f}  "
            f"epoch {r['epoch_s_mean']:.2f} s  ({r['wall_s']:.0f} s)",
            flush=True,
        )
    return {
        "config": CORPORA[corpus],
        "prepare_s": prepare_s,
        "timings": prep.timings,
        "bodies": rows,
    }


def best_on_dev(results: dict[str, Any], bodies: list[str]) -> dict[str, Any]:
    """The body with the highest dev select metric averaged over the corpora (dev only)."""
    means = {}
    for b in bodies:
        rows = [c["bodies"][b] for c in results.values()]
        means[b] = sum(r["dev"][r["select_metric"]]["mean"] for r in rows) / len(rows)
    best = max(means, key=means.get)
    return {"body": best, "dev_mean_over_corpora": means}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", default=",".join(CORPORA))
    ap.add_argument("--bodies", default=",".join(BODIES))
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE, every run")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "context_bodies.json"))
    args = ap.parse_args()
    corpora = args.corpora.split(",")
    bodies = args.bodies.split(",")
    unknown = [c for c in corpora if c not in CORPORA]
    if unknown:
        raise SystemExit(f"--corpora: unknown {unknown}; choose from {list(CORPORA)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    os.environ["ERCGRAPH_DATA"] = str(data_root())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ercgraph.registry import MODELS

    for b in bodies:
        MODELS.get(b)  # a typo fails before any extraction
    results = {}
    with tempfile.TemporaryDirectory(prefix="ercgraph-context-bodies-") as tmp:
        for corpus in corpora:  # one fresh cache per invocation, per corpus
            results[corpus] = run_corpus(corpus, bodies, seeds, args.sets, Path(tmp) / corpus)
    best = best_on_dev(results, bodies)
    payload = {
        "seeds": seeds,
        "bodies": bodies,
        "extra_overrides": args.sets,
        "best_on_dev": best,
        "corpora": results,
    }
    path = write_result(out.stem, payload, out.parent)
    table = []
    for corpus, res in results.items():
        for body, r in res["bodies"].items():
            sel = r["select_metric"]
            table.append(
                {
                    "corpus": corpus,
                    "body": body + (" (best on dev)" if body == best["body"] else ""),
                    "metric": sel,
                    "dev": f"{r['dev'][sel]['mean']:.2f} ± {r['dev'][sel]['std']:.2f}",
                    "test": f"{r['test'][sel]['mean']:.2f} ± {r['test'][sel]['std']:.2f}",
                    "probe dev / test": f"{r['probe']['dev'][sel]:.2f} / "
                    f"{r['probe']['test'][sel]:.2f}"
                    if r["probe"]["dev"][sel] is not None
                    else "–",
                    "epoch s": r["epoch_s_mean"],
                }
            )
    print_table(table)
    print(f"\nWrote {path}.")


if __name__ == "__main__":
    main()
