"""Tiny synthetic conversations for the component tests: a Corpus, graphs with every head's
targets, and a model with every head."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Batch

from ercgraph.config import ModelConfig
from ercgraph.data.corpus import Corpus
from ercgraph.data.features import FeatureStore
from ercgraph.graphs.build import build_graphs
from ercgraph.models import build_model
from ercgraph.registry import HEADS

LABELS = ("joy", "anger", "neutral")
ALL_HEADS = ["emotion", "sentiment", "regression", "reconstruction"]


def toy_corpus(n_dialogues: int = 12, seed: int = 0) -> Corpus:
    """Dialogues of 3-6 turns, two speakers, emotions, sentiment and V/A/D on every row."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(n_dialogues):
        split = "train" if d < n_dialogues // 2 else "dev" if d < 3 * n_dialogues // 4 else "test"
        for t in range(int(rng.integers(3, 7))):
            rows.append(
                {
                    "split": split,
                    "dialogue_id": f"d{d}",
                    "turn": t,
                    "speaker": "AB"[t % 2],
                    "label": LABELS[int(rng.integers(3))],
                    "sentiment": ["negative", "neutral", "positive"][int(rng.integers(3))],
                    "valence": float(rng.normal(3, 0.5)),
                    "arousal": float(rng.normal(3, 0.5)),
                    "dominance": float(rng.normal(3, 0.5)),
                }
            )
    return Corpus(pd.DataFrame(rows), "toy", LABELS)


def toy_store(corpus: Corpus, seed: int = 0) -> FeatureStore:
    gen = torch.Generator().manual_seed(seed)
    n = corpus.num_utterances
    audio_present = torch.arange(n) % 4 != 0
    return FeatureStore(
        {"text": torch.randn(n, 8, generator=gen), "audio": torch.randn(n, 5, generator=gen)},
        {"text": torch.ones(n, dtype=torch.bool), "audio": audio_present},
    )


def toy_setup(heads=None, model: str = "hierarchical_gcn", fusion="mean", **model_kw):
    """(model, batch, head states) with every head's targets on the batch."""
    heads = heads or ALL_HEADS
    corpus = toy_corpus()
    store = toy_store(corpus)
    states, targets = {}, {}
    from ercgraph.models.build import head_key, head_specs

    for name, options in head_specs(heads):
        cls = HEADS.get(name)
        states[head_key(name)] = cls.fit(corpus, **options)
        targets.update(cls.targets(corpus, states[head_key(name)], **options))
    builders = [
        {"name": "temporal", "w_past": 2, "w_future": 2},
        {"name": "speaker", "w_past": 2, "w_future": 2},
        {"name": "modality"},
    ]
    graphs = build_graphs(corpus, store, builders, targets=targets)
    batch = Batch.from_data_list(graphs)
    torch.manual_seed(0)
    net = build_model(
        ModelConfig(name=model, hidden=16, dropout=0.0, fusion=fusion, **model_kw),
        store.dims(),
        list(batch.edge_types),
        list(corpus.labels),
        heads,
        states,
    )
    return net, batch, states


def fit(model, objective, batch, steps: int, lr: float = 1e-2) -> None:
    """Full-batch Adam steps of ``objective`` on one batch (the components' learning tests)."""
    opt = torch.optim.Adam(list(model.parameters()) + list(objective.parameters()), lr=lr)
    for _ in range(steps):
        loss, _ = objective(model.train()(batch), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
