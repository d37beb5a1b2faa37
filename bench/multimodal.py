"""Three modalities vs text only on a MELD-sized corpus, in the same run.

Real MELD text (frozen default MiniLM, from the cache or extracted) plus audio and visual
features of the published MELD dims (300 and 342, as in MELD_features_raw1.pkl), here seeded
synthetic arrays; the graph gains audio/visual nodes and cross_modal edges. Both variants train
the same hierarchical GCN for a few epochs (one seed) and the table compares mean epoch time and
peak RSS. Target: three modalities cost at most 3x the text-only epoch.

Usage: python bench/multimodal.py [--epochs 5]
Writes bench/results/multimodal.json (with bench/common.py's write_result) and prints a markdown
table.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import tempfile
import time
from pathlib import Path

try:
    from bench.common import write_result
except ImportError:  # run as a script: bench/ itself is on sys.path
    from common import write_result

REPO = Path(__file__).resolve().parents[1]
#: Three modalities may cost at most this multiple of the text-only epoch.
TARGET_EPOCH_RATIO = 3.0


def main() -> None:
    import logging

    import torch

    from ercgraph.config import GraphConfig, cache_dir, load_config
    from ercgraph.data.features import FeatureStore
    from ercgraph.data.load import load_corpus
    from ercgraph.graphs.build import build_graphs
    from ercgraph.pipeline import Prepared, fit_heads, fit_normaliser, head_targets, load_features
    from ercgraph.train import run

    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args()
    os.environ.setdefault("ERCGRAPH_DATA", str(REPO.parent / "shared" / "data"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)
    base = load_config(
        REPO / "configs/meld_text.yaml",
        [f"train.epochs={args.epochs}", f"train.patience={args.epochs}"],
    )
    corpus = load_corpus(base)
    text, _ = load_features(base, corpus)
    gen = torch.Generator().manual_seed(0)
    n = corpus.num_utterances
    three = text.merge(
        FeatureStore(
            {
                "audio": torch.randn(n, 300, generator=gen),
                "visual": torch.randn(n, 342, generator=gen),
            }
        )
    )
    work = Path(tempfile.mkdtemp(prefix="ercgraph-mm-bench-"))
    rows = []
    for name, store, extra in (
        ("text", text, []),
        ("text+audio+visual", three, [{"name": "modality"}]),
    ):
        builders = list(base.graph.builders) + extra
        cfg = dataclasses.replace(
            base,
            graph=GraphConfig(builders=builders),
            features=dataclasses.replace(base.features, modalities=list(store.features)),
        )
        # what ercgraph.pipeline.prepare does, with this store: normalise, head targets, graphs
        normaliser = fit_normaliser(cfg, corpus, store)
        if normaliser is not None:
            store = normaliser.apply(store)
        states = fit_heads(cfg, corpus)
        targets = head_targets(cfg, corpus, states)
        t0 = time.perf_counter()
        graphs = build_graphs(corpus, store, builders, None, cache_dir(cfg), targets)
        graphs_s = time.perf_counter() - t0
        split = corpus.df.groupby("dialogue_id", sort=False)["split"].first()
        by = {s: [g for g in graphs if split[g.dialogue_id] == s] for s in ("train", "dev", "test")}
        edge_types = sorted(graphs[0].edge_types)
        prep = Prepared(corpus, store, by, edge_types, {}, {}, normaliser, states)
        m = run(cfg, work / name.replace("+", "_"), prep=prep)
        edges = sum(int(g[et].edge_index.size(1)) for g in graphs for et in g.edge_types)
        rows.append(
            {
                "variant": name,
                "edges": edges,
                "graphs_s": graphs_s,
                "epoch_s": m["epoch_s_mean"],
                "edge_types": len(prep.edge_types),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "dev_weighted_f1": m["dev"]["weighted_f1"]["mean"],
            }
        )
    rows[1]["epoch_ratio_vs_text"] = rows[1]["epoch_s"] / rows[0]["epoch_s"]
    ratio = rows[1]["epoch_ratio_vs_text"]
    result = {
        "epochs": args.epochs,
        "seeds": list(base.train.seeds),
        "baseline": "text",
        "targets": {
            "epoch_ratio_max": TARGET_EPOCH_RATIO,
            "epoch_ratio_met": ratio <= TARGET_EPOCH_RATIO,
        },
        "note": "audio/visual are synthetic arrays of the published MELD dims (300/342); "
        "dev F1 of the 3-modality run is therefore not meaningful",
        "rows": rows,
    }
    dest = write_result("multimodal", result)
    print(
        "\n| variant | edge types | edges | graph build s | epoch s | ratio vs text | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['edge_types']} | {r['edges']} | {r['graphs_s']:.2f} | "
            f"{r['epoch_s']:.2f} | {r.get('epoch_ratio_vs_text', 1.0):.2f}x | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    print(f"\nWrote {dest}.")


if __name__ == "__main__":
    main()
