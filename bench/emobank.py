"""EmoBank dimensional regression: the regression head trained with the CCC loss on frozen
default MiniLM features (``configs/emobank_regression.yaml``), against ridge regression on the
same features measured in the same run (alpha chosen on dev by mean CCC; test scored once);
then the same with MiniLM first fine-tuned on the training sentences to regress V/A/D
(``configs/emobank_finetuned.yaml``), again with ridge on its features.

Usage: python bench/emobank.py [--seeds 0,1,2,3,4] [--skip-finetuned]
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


def ridge_row(name: str, ridge: dict) -> dict:
    return {
        "model": name,
        **{f"test_ccc_{d}": {"mean": ridge["test"][f"ccc_{d}"], "std": 0.0} for d in DIMS},
        "test_ccc": {"mean": ridge["test"]["ccc"], "std": 0.0},
    }


def head_row(name: str, m: dict) -> dict:
    return {
        "model": name,
        "dev_ccc": m["dev"]["ccc"],
        **{f"test_ccc_{d}": m["test"][f"ccc_{d}"] for d in DIMS},
        "test_ccc": m["test"]["ccc"],
        **{f"test_pearson_{d}": m["test"][f"pearson_{d}"] for d in DIMS},
        "epoch_s": m["epoch_s_mean"],
        "best_epochs": m["best_epochs"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--skip-finetuned", action="store_true")
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
        ridge_row("ridge regression, same features (baseline)", ridge),
        head_row("hierarchical GCN + regression head, CCC loss", m),
    ]
    finetuned: dict = {}
    if not args.skip_finetuned:
        import json

        cfg_ft = load_config(
            REPO / "configs/emobank_finetuned.yaml",
            cache_dir=cfg.cache_dir,
            **{"train.seeds": cfg.train.seeds},
        )
        t1 = time.perf_counter()
        m_ft = run(cfg_ft, work / "run_ft")
        finetuned["wall_s"] = time.perf_counter() - t1
        meta = json.loads((work / "run_ft" / "features.json").read_text())
        finetuned["features"] = meta.get("text", meta)
        folder = Path(finetuned["features"]["finetuned_path"])
        report = json.loads((folder / "finetune.json").read_text())
        # the fine-tuning itself (a reused encoder took its seconds in an earlier process)
        finetuned["finetune"] = {k: report[k] for k in ("epochs", "best_epoch", "seconds")}
        ridge_ft = ridge_baseline(cfg_ft)
        finetuned["ridge"] = ridge_ft
        rows += [
            ridge_row("ridge regression, fine-tuned MiniLM features", ridge_ft),
            head_row("hierarchical GCN + regression head, fine-tuned MiniLM", m_ft),
        ]
    result = {
        "config": "configs/emobank_regression.yaml",
        "seeds": args.seeds,
        "rows": rows,
        "ridge": ridge,
        "wall_s": wall,
        "peak_rss_mb": peak_rss_mb(),
        "finetuned": finetuned,
        "note": (
            "default MiniLM, frozen and fine-tuned on the train sentences (V/A/D, CCC loss, "
            "epoch by dev mean CCC); model selected by mean dev CCC; ridge alpha by dev CCC."
        ),
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
