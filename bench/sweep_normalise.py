"""Dev sweep that chose ``features.normalise: standard`` as the default.

Two parts, one invocation, every setting scored on **dev** only (test is never read here):

1. Planted-signal corpora shaped like raw openSMILE functionals: ~330 training utterances in
   short dialogues, 1,024 or 1,582 dims whose scales span five orders of magnitude on large
   offsets, four classes readable from a few dims. Rows: a linear probe (logistic regression on
   standardised features, C chosen on dev), and the default hierarchical GCN with
   ``normalise: none`` and ``normalise: standard``.
2. (without ``--skip-meld``) MELD text, frozen default MiniLM, the default hierarchical GCN with
   ``none`` and ``standard``. ``bench/sweep_meld_frozen.py`` crosses this with dropout and
   weight decay and is the MELD record; the README shows that one.

Usage: python bench/sweep_normalise.py [--seeds 0,1] [--skip-meld]
Writes bench/results/sweep_normalise.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from common import linear_probe, print_table, write_result  # noqa: E402


def planted_corpus(dim: int, seed: int):
    """Dialogues of 1-6 turns, 4 classes; 8 informative dims among ``dim`` raw-scaled ones."""
    import pandas as pd
    import torch

    from ercgraph.data.corpus import Corpus
    from ercgraph.data.features import FeatureStore

    rng = np.random.default_rng(seed)
    rows, d = [], 0
    counts = {"train": 330, "dev": 110, "test": 110}
    for split, n in counts.items():
        made = 0
        while made < n:
            length = min(int(rng.integers(1, 7)), n - made)
            for t in range(length):
                rows.append(
                    {
                        "split": split,
                        "dialogue_id": f"d{d}",
                        "turn": t,
                        "speaker": f"s{t % 2}",
                        "label": None,
                    }
                )
            made += length
            d += 1
    df = pd.DataFrame(rows)
    y = rng.integers(0, 4, len(df))
    df["label"] = [f"c{k}" for k in y]
    scale = 10.0 ** rng.uniform(-2, 3, dim)  # raw functionals: 1e-2 .. 1e3
    offset = scale * rng.uniform(0, 20, dim)
    x = rng.normal(size=(len(df), dim))
    centres = rng.normal(scale=1.5, size=(4, 8))
    informative = rng.choice(dim, 8, replace=False)
    x[:, informative] += centres[y]
    x = x * scale + offset
    corpus = Corpus(df, f"planted{dim}", ("c0", "c1", "c2", "c3"))
    store = FeatureStore({"audio": torch.tensor(x, dtype=torch.float32)})
    return corpus, store


def train_planted(corpus, store, normalise: str, seeds: list[int], work: Path) -> dict:
    from ercgraph.config import load_config
    from ercgraph.pipeline import prepare
    from ercgraph.train import run

    cfg = load_config(
        REPO / "configs/meld_text.yaml",
        ["features.modalities=[audio]", f"features.normalise={normalise}"],
        cache_dir=str(work / "cache"),
    )
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seeds=seeds))
    prep = prepare(cfg, corpus, features=store)
    out = work / f"{corpus.name}-{normalise}"
    m = run(cfg, out, prep=prep)
    return {"dev_accuracy": m["dev"]["accuracy"], "dev_weighted_f1": m["dev"]["weighted_f1"]}


def meld_dev(normalise: str, seeds: list[int], work: Path) -> dict:
    from ercgraph.config import load_config
    from ercgraph.train import run

    cfg = load_config(
        REPO / "configs/meld_text.yaml",
        [f"features.normalise={normalise}"],
        cache_dir=os.environ.get("ERCGRAPH_BENCH_CACHE", str(work / "cache")),
    )
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seeds=seeds))
    m = run(cfg, work / f"meld-{normalise}")
    return {"dev_accuracy": m["dev"]["accuracy"], "dev_weighted_f1": m["dev"]["weighted_f1"]}


def fmt(m):
    return f"{m['mean']:.2f} ± {m['std']:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--skip-meld", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("ERCGRAPH_DATA", str(REPO.parent / "shared" / "data"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    work = Path(tempfile.mkdtemp(prefix="ercgraph-sweep-"))
    rows = []
    for dim in (1024, 1582):
        corpus, store = planted_corpus(dim, seed=dim)
        split = corpus.df["split"].to_numpy()
        x, y = store.features["audio"].numpy(), corpus.label_ids()
        parts = [(x[split == s], y[split == s]) for s in ("train", "dev", "test")]
        probe = linear_probe(*parts[0], *parts[1], *parts[2])
        # the probe's dev score at its chosen C (its test score is not used or shown)
        rows.append(
            {
                "corpus": corpus.name,
                "setting": "linear probe (logistic regression)",
                "dev_weighted_f1": {"mean": probe["dev_weighted_f1"][probe["C"]], "std": 0.0},
                "dev_accuracy": None,
            }
        )
        for normalise in ("none", "standard"):
            r = train_planted(corpus, store, normalise, seeds, work)
            rows.append(
                {"corpus": corpus.name, "setting": f"hierarchical GCN, normalise: {normalise}", **r}
            )
    if not args.skip_meld:
        for normalise in ("none", "standard"):
            r = meld_dev(normalise, seeds, work)
            rows.append(
                {
                    "corpus": "MELD text, frozen MiniLM",
                    "setting": f"hierarchical GCN, normalise: {normalise}",
                    **r,
                }
            )
    result = {
        "seeds": seeds,
        "split_scored": "dev",
        "rows": rows,
        "chosen": {"features.normalise": "standard"},
    }
    path = write_result("sweep_normalise", result)
    print_table(
        [
            {
                "corpus": r["corpus"],
                "setting": r["setting"],
                "dev wF1": fmt(r["dev_weighted_f1"]),
                "dev acc": fmt(r["dev_accuracy"]) if r["dev_accuracy"] else "",
            }
            for r in rows
        ]
    )
    print(f"\nWrote {path}.")


if __name__ == "__main__":
    main()
