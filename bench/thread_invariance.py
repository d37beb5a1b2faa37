"""Do the text features depend on the torch thread count? (README figures pin what they use.)

Two checks, each at 1 and at 2 torch threads in this one invocation:

1. **Frozen extraction**: the default MiniLM encodes the first ``--utterances`` MELD training
   utterances (``ercgraph.encoders.text.TextEncoder``, the extraction code path); the two
   matrices are compared element by element.
2. **Fine-tuning steps**: ``--steps`` AdamW steps of the same encoder with mean pooling and a
   linear emotion head (batches of 32 MELD training utterances, fixed seed; the operations
   ``features.text.finetune`` runs), then the same utterances are encoded; the weights and the
   features are compared.

Usage: python bench/thread_invariance.py [--utterances 1500] [--steps 20]
Writes bench/results/thread_invariance.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from common import data_root, write_result  # noqa: E402


def compare(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    rows = d.reshape(len(d), -1).max(1) if d.ndim > 1 else d
    return {
        "identical": bool(np.array_equal(a, b)),
        "max_abs_diff": float(d.max()),
        "rows_differing": int((rows > 0).sum()),
        "rows": int(len(rows)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--utterances", type=int, default=1500)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    import pandas as pd
    import torch

    from ercgraph.encoders.text import TextEncoder

    df = pd.read_csv(data_root() / "meld" / "train_sent_emo.csv")
    texts = df["Utterance"].astype(str).tolist()[: args.utterances]
    labels = sorted(df["Emotion"].unique())
    y_all = torch.tensor([labels.index(e) for e in df["Emotion"]])
    frozen, tuned, weights = {}, {}, {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        enc = TextEncoder("default", progress=False, device="cpu")
        frozen[threads] = enc.encode(texts).numpy()
        torch.manual_seed(0)
        head = torch.nn.Linear(enc.dim, len(labels))
        params = list(enc.model.parameters()) + list(head.parameters())
        opt = torch.optim.AdamW(params, lr=8e-5)
        order = torch.randperm(len(df), generator=torch.Generator().manual_seed(0))
        enc.model.train()
        for step in range(args.steps):
            rows = order[step * 32 : (step + 1) * 32].tolist()
            ids = enc.tokenize([str(df["Utterance"].iloc[r]) for r in rows])
            batch = enc.collate(ids)
            loss = torch.nn.functional.cross_entropy(head(enc.forward_batch(batch)), y_all[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
        enc.model.eval()
        weights[threads] = torch.cat([p.detach().flatten() for p in params]).numpy()
        tuned[threads] = enc.encode(texts).numpy()
    result = {
        "utterances": len(texts),
        "steps": args.steps,
        "frozen_features": compare(frozen[1], frozen[2]),
        "finetuned_weights": compare(weights[1][None, :], weights[2][None, :]),
        "finetuned_features": compare(tuned[1], tuned[2]),
    }
    print(result)
    write_result("thread_invariance", result)


if __name__ == "__main__":
    main()
