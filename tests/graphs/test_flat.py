"""GraphSet: the flat graphs and their batches equal the per-dialogue graphs and PyG's Batch."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch_geometric.data import Batch

from ercgraph.data.corpus import MELD_LABELS, Corpus
from ercgraph.data.features import FeatureStore
from ercgraph.graphs.build import build_graph_set, build_graphs
from ercgraph.graphs.flat import GraphSet, batches, labels_of

BUILDERS = ["temporal", {"name": "speaker", "directed": True}, "modality"]


@pytest.fixture
def corpus() -> Corpus:
    """Five dialogues of 1 to 4 turns, speakers repeating, the last one unlabelled."""
    rows = []
    lengths = [3, 1, 4, 2, 3]
    labels = list(MELD_LABELS)
    k = 0
    for d, n in enumerate(lengths):
        for t in range(n):
            rows.append(
                {
                    "split": ["train", "train", "train", "dev", "unlabelled"][d],
                    "dialogue_id": f"d{d}",
                    "turn": t,
                    "speaker": "AB"[(t + d) % 2],
                    "label": None if d == 4 else labels[k % len(labels)],
                }
            )
            k += 1
    return Corpus(pd.DataFrame(rows), "toy", MELD_LABELS)


@pytest.fixture
def store(corpus: Corpus) -> FeatureStore:
    n = corpus.num_utterances
    gen = torch.Generator().manual_seed(0)
    audio = torch.ones(n, dtype=torch.bool)
    audio[[1, 5, 6]] = False  # missing audio: its edges are dropped in both paths
    return FeatureStore(
        {"text": torch.randn(n, 4, generator=gen), "audio": torch.randn(n, 3, generator=gen)},
        {"text": torch.ones(n, dtype=torch.bool), "audio": audio},
    )


def assert_same_graph(a, b) -> None:
    assert a.node_types == b.node_types and a.edge_types == b.edge_types
    da, db = a.to_dict(), b.to_dict()
    assert da.keys() == db.keys()
    for key in da:
        va, vb = da[key], db[key]
        if not isinstance(va, dict):
            va, vb = {key: va}, {key: vb}
        assert va.keys() == vb.keys(), key
        for k in va:
            if isinstance(va[k], torch.Tensor):
                assert va[k].dtype == vb[k].dtype and torch.equal(va[k], vb[k]), (key, k)
            else:
                assert va[k] == vb[k], (key, k)


def test_items_equal_build_graphs(corpus: Corpus, store: FeatureStore) -> None:
    targets = {"y_extra": torch.arange(corpus.num_utterances) * 2}
    graphs = build_graphs(corpus, store, BUILDERS, targets=targets)
    gset = build_graph_set(corpus, store, BUILDERS, targets=targets)
    assert len(gset) == len(graphs) == 5
    for g, h in zip(graphs, gset, strict=True):
        assert_same_graph(g, h)
    # missing audio nodes lose their edges, so audio's table differs from text's
    assert gset.edges[("text", "past", "text")] is not gset.edges[("audio", "past", "audio")]
    full = FeatureStore(store.features, {m: torch.ones_like(p) for m, p in store.present.items()})
    shared = build_graph_set(corpus, full, BUILDERS)  # intra-modal relations share one table
    assert shared.edges[("text", "past", "text")] is shared.edges[("audio", "past", "audio")]
    assert gset.num_edges() == sum(int(g[et].num_edges) for g in graphs for et in g.edge_types)


@pytest.mark.parametrize("order", [[0, 1, 2, 3, 4], [3, 0, 4, 4, 1], [2], [1, 2, 3]])
def test_collate_equals_pyg_batch(corpus: Corpus, store: FeatureStore, order: list[int]) -> None:
    graphs = build_graphs(corpus, store, BUILDERS)
    gset = build_graph_set(corpus, store, BUILDERS)
    ours = gset.collate(order)
    pyg = Batch.from_data_list([graphs[i] for i in order])
    assert type(ours) is type(pyg) and ours.num_graphs == pyg.num_graphs == len(order)
    assert_same_graph(ours, pyg)
    for et in ours.edge_types:  # edges point at the right nodes of the batch
        ei = ours[et].edge_index
        assert bool((ours[et[0]].batch[ei[0]] == ours[et[2]].batch[ei[1]]).all())


def test_subset_labels_and_batches(corpus: Corpus, store: FeatureStore) -> None:
    gset = build_graph_set(corpus, store, BUILDERS)
    graphs = build_graphs(corpus, store, BUILDERS)
    dev = gset.subset([3, 4])
    assert [g.dialogue_id for g in dev] == ["d3", "d4"]
    assert torch.equal(dev.node_attr("y"), torch.cat([graphs[3].y, graphs[4].y]))
    assert [t.tolist() for t in labels_of(dev)] == [graphs[3].y.tolist(), graphs[4].y.tolist()]
    assert [t.tolist() for t in labels_of(graphs[3:])] == [g.y.tolist() for g in graphs[3:]]
    ours = list(batches(gset, 2, order=[4, 0, 2]))
    pyg = list(batches(graphs, 2, order=[4, 0, 2]))
    assert [b.num_graphs for b in ours] == [2, 1]
    for a, b in zip(ours, pyg, strict=True):
        assert_same_graph(a, b)
    with pytest.raises(IndexError, match="out of range"):
        dev[2]


def test_empty_edge_table_and_one_node_dialogue() -> None:
    df = pd.DataFrame(
        {
            "split": ["train"] * 3,
            "dialogue_id": ["a", "b", "b"],
            "turn": [0, 0, 1],
            "speaker": ["x", "y", "y"],
            "label": ["joy", "anger", "joy"],
        }
    )
    corpus = Corpus(df, "toy", MELD_LABELS)
    store = FeatureStore({"text": torch.randn(3, 2)}, {"text": torch.ones(3, dtype=torch.bool)})
    gset = build_graph_set(corpus, store, [{"name": "speaker", "directed": True}])
    batch = gset.collate([0])
    assert batch["text"].x.shape == (1, 2)
    assert all(batch[et].edge_index.shape == (2, 0) for et in batch.edge_types)
    assert isinstance(gset, GraphSet) and len(gset.subset([])) == 0
