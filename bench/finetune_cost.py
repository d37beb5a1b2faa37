"""What fine-tuning costs per step and per epoch on this machine: the shipped recipe
(``configs/meld_text_finetuned.yaml``) with the default MiniLM (the baseline) and with
all-mpnet-base-v2, on the same MELD training batches, in one invocation.

Each encoder trains for ``--steps`` optimiser steps (forward, backward, AdamW) on the first
batches of the recipe's own shuffled, length-bucketed epoch order, after ``--warmup`` untimed
steps. The epoch cost is the measured mean seconds per step times the steps of one epoch: a
projection from the measured steps, labelled as such (batches are length-bucketed, so a slice of
the shuffled order has the epoch's mix of lengths in expectation, not exactly).

With ``--full`` it instead runs the shipped recipe end to end on a fresh cache (fine-tuning
with its dev scoring, then the feature extraction) and times it.

Usage: python bench/finetune_cost.py [--steps 30] [--warmup 3] [--threads 2] [--full]
Writes bench/results/finetune_cost.json (or finetune_wall.json with --full).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from common import print_table, write_result  # noqa: E402

ENCODERS = ("default", "all-mpnet-base-v2")


def measure(corpus, encoder: str, ft, steps: int, warmup: int) -> dict:  # noqa: ANN001
    import numpy as np
    import torch

    from ercgraph.encoders.context import build_encoder_inputs
    from ercgraph.encoders.finetune import _batches, _scheduler, param_groups
    from ercgraph.encoders.text import TextEncoder

    torch.manual_seed(0)
    enc = TextEncoder(
        encoder, max_length=ft.max_length, truncation_side="left", normalize=False, progress=False
    )
    inputs = build_encoder_inputs(corpus, enc, ft.context_turns, ft.future_turns, ft.pool)
    labels = torch.as_tensor(corpus.label_ids())
    train = np.flatnonzero((corpus.df["split"].to_numpy() == "train") & (labels.numpy() >= 0))
    lengths = np.array([len(inputs.ids[i]) for i in train])
    batches = _batches(lengths, ft.batch_size, torch.Generator().manual_seed(ft.seed))
    head = torch.nn.Linear(enc.dim, corpus.num_classes)
    opt = torch.optim.AdamW(param_groups(enc.model, head, ft), lr=ft.lr)
    sched = _scheduler(opt, ft, len(batches) * ft.epochs)
    enc.model.train()
    times = []
    for k, pos in enumerate(batches[: warmup + steps]):
        rows = train[pos]
        spans = None if inputs.spans is None else [inputs.spans[i] for i in rows]
        t0 = time.perf_counter()
        batch = enc.collate([inputs.ids[i] for i in rows], spans)
        loss = torch.nn.functional.cross_entropy(head(enc.forward_batch(batch)), labels[rows])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if k >= warmup:
            times.append(time.perf_counter() - t0)
    s_step = float(np.mean(times))
    return {
        "encoder": encoder,
        "parameters_m": sum(p.numel() for p in enc.model.parameters()) / 1e6,
        "steps_measured": len(times),
        "s_per_step": s_step,
        "s_per_step_std": float(np.std(times)),
        "steps_per_epoch": len(batches),
        "epoch_min_projected": s_step * len(batches) / 60,
        "recipe_min_projected": s_step * len(batches) * ft.epochs / 60,
        "mean_tokens": inputs.stats["mean_tokens"],
    }


def full_run(corpus, ft, threads: int) -> dict:  # noqa: ANN001
    """The shipped recipe end to end in a fresh folder: fine-tuning (with its dev scoring after
    every epoch) and the feature extraction that follows, timed."""
    import tempfile

    from ercgraph.config import TextFeatureConfig
    from ercgraph.encoders.extract import extract_text_features

    cache = Path(tempfile.mkdtemp(prefix="ercgraph-ft-wall-"))
    t0 = time.perf_counter()
    _, info = extract_text_features(corpus, TextFeatureConfig(finetune=ft), cache, progress=False)
    wall = time.perf_counter() - t0
    return {
        "encoder": "default",
        "finetune_s": info["finetune_seconds"],
        "extract_s": wall - info["finetune_seconds"],
        "wall_s": wall,
        "torch_threads": threads,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--full",
        action="store_true",
        help="instead: time the shipped recipe end to end (fine-tuning + extraction) on a "
        "fresh cache; writes bench/results/finetune_wall.json",
    )
    args = ap.parse_args()
    os.environ.setdefault("ERCGRAPH_DATA", str(REPO.parent / "shared" / "data"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import dataclasses

    import torch

    from ercgraph.config import load_config
    from ercgraph.pipeline import read_corpus

    torch.set_num_threads(args.threads)
    cfg = load_config(REPO / "configs/meld_text_finetuned.yaml", [])
    corpus, _ = read_corpus(cfg)
    ft = cfg.features.text.finetune
    if args.full:
        row = full_run(corpus, ft, args.threads)
        result = {
            "recipe": {k: v for k, v in dataclasses.asdict(ft).items() if k != "enabled"},
            "rows": [row],
            "budget_min": 25,
        }
        path = write_result("finetune_wall", result)
        print(f"fine-tuning {row['finetune_s'] / 60:.1f} min, extraction {row['extract_s']:.0f} s")
        print(f"\nWrote {path}.")
        return
    rows = [measure(corpus, e, ft, args.steps, args.warmup) for e in ENCODERS]
    base = rows[0]
    for r in rows:
        r["x_vs_default"] = r["s_per_step"] / base["s_per_step"]
    result = {
        "recipe": {k: v for k, v in dataclasses.asdict(ft).items() if k != "enabled"},
        "torch_threads": args.threads,
        "rows": rows,
        "note": "epoch and recipe minutes are projected from the measured steps "
        "(mean s/step x steps per epoch [x epochs]); dev scoring between epochs not included",
    }
    path = write_result("finetune_cost", result)
    print_table(
        [
            {
                "encoder": r["encoder"],
                "params M": f"{r['parameters_m']:.0f}",
                "s/step": f"{r['s_per_step']:.2f}",
                "x": f"{r['x_vs_default']:.2f}",
                "epoch min (projected)": f"{r['epoch_min_projected']:.1f}",
                "recipe min (projected)": f"{r['recipe_min_projected']:.1f}",
            }
            for r in rows
        ]
    )
    print(f"\nWrote {path}.")


if __name__ == "__main__":
    main()
