"""EmoBank dimensional regression: the regression head trained with the CCC loss on frozen
default MiniLM features (``configs/emobank_regression.yaml``), against ridge regression on the
same features measured in the same run (alpha chosen on dev by mean CCC; test scored once).

Usage: python bench/emobank.py [--seeds 0,1,2,3,4]
Writes bench/results/emobank.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from common import peak_rss_mb, print_table, write_result  # noqa: E402

DIMS = ("valence", "arousal", "dominance")


def ridge_baseline(cfg) -> dict:
    """Ridge on the cached frozen features, standardised on train, alpha chosen on dev CCC."""
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    from ercgraph.metrics import regression_scores
    from ercgraph.pipeline import load_features, read_corpus

    corpus, provided = read_corpus(cfg)
    store, _ = load_features(cfg, corpus, provided)
    x = store.features["text"].numpy().astype(np.float64)
    y = corpus.df[list(DIMS)].to_numpy(dtype=np.float64)
    split = corpus.df["split"].to_numpy()
    scaler = StandardScaler().fit(x[split == "train"])
    z = scaler.transform(x)
    best = None
    dev_ccc = {}
    for alpha in (0.1, 1.0, 10.0, 100.0, 1000.0):
        model = Ridge(alpha=alpha).fit(z[split == "train"], y[split == "train"])
        s = regression_scores(model.predict(z[split == "dev"]), y[split == "dev"], list(DIMS))
        dev_ccc[alpha] = s["ccc"]
        if best is None or s["ccc"] > dev_ccc[best[0]]:
            best = (alpha, model)
    alpha, model = best
    test = regression_scores(model.predict(z[split == "test"]), y[split == "test"], list(DIMS))
    return {"alpha": alpha, "dev_ccc_by_alpha": dev_ccc, "test": test}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2,3,4")
    args = ap.parse_args()
    os.environ.setdefault("ERCGRAPH_DATA", str(REPO.parent / "shared" / "data"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ercgraph.config import load_config
    from ercgraph.train import run

    work = Path(tempfile.mkdtemp(prefix="ercgraph-emobank-"))
    cfg = load_config(
        REPO / "configs/emobank_regression.yaml",
        cache_dir=os.environ.get("ERCGRAPH_BENCH_CACHE", str(work / "cache")),
        **{"train.seeds": [int(s) for s in args.seeds.split(",")]},
    )
    t0 = time.perf_counter()
    m = run(cfg, work / "run")
    wall = time.perf_counter() - t0
    ridge = ridge_baseline(cfg)
    rows = [
        {
            "model": "ridge regression, same features (baseline)",
            **{f"test_ccc_{d}": {"mean": ridge["test"][f"ccc_{d}"], "std": 0.0} for d in DIMS},
            "test_ccc": {"mean": ridge["test"]["ccc"], "std": 0.0},
        },
        {
            "model": "hierarchical GCN + regression head, CCC loss",
            "dev_ccc": m["dev"]["ccc"],
            **{f"test_ccc_{d}": m["test"][f"ccc_{d}"] for d in DIMS},
            "test_ccc": m["test"]["ccc"],
            **{f"test_pearson_{d}": m["test"][f"pearson_{d}"] for d in DIMS},
            "epoch_s": m["epoch_s_mean"],
            "best_epochs": m["best_epochs"],
        },
    ]
    result = {
        "config": "configs/emobank_regression.yaml",
        "seeds": args.seeds,
        "rows": rows,
        "ridge": ridge,
        "wall_s": wall,
        "peak_rss_mb": peak_rss_mb(),
        "note": "frozen default MiniLM; model selected by mean dev CCC; ridge alpha by dev CCC.",
    }
    path = write_result("emobank", result)

    def f(v):
        return f"{v['mean']:.3f} ± {v['std']:.3f}" if isinstance(v, dict) else ""

    print_table(
        [
            {
                "model": r["model"],
                **{d: f(r.get(f"test_ccc_{d}")) for d in DIMS},
                "mean": f(r.get("test_ccc")),
            }
            for r in rows
        ]
    )
    print(f"\nWrote {path}.")


if __name__ == "__main__":
    main()
