"""DGL interop: exported graphs keep structure, and DGL's RelGraphConv equals PyG's RGCNConv."""

import os

import pytest
import torch

from ercgraph.data.features import FeatureStore
from ercgraph.graphs.build import build_graphs

os.environ.setdefault("DGLBACKEND", "pytorch")
dgl = pytest.importorskip("dgl", reason="the dgl extra is part of .[dev]; install it")


@pytest.fixture(scope="module")
def graph(meld_dev):
    torch.manual_seed(0)
    n = meld_dev.num_utterances
    store = FeatureStore({"text": torch.randn(n, 16)})
    graphs = build_graphs(
        meld_dev, store, [{"name": "speaker", "w_past": 10, "w_future": 10, "directed": True}]
    )
    return max(graphs, key=lambda g: g["text"].num_nodes)  # the longest dev dialogue


def test_export_keeps_nodes_edges_and_features(graph):
    from ercgraph.graphs.dgl_export import to_dgl

    g = to_dgl(graph)
    assert g.num_nodes("text") == graph["text"].num_nodes
    assert set(g.canonical_etypes) == set(graph.edge_types)
    for et in graph.edge_types:
        u, v = g.edges(etype=et)
        assert torch.equal(torch.stack([u, v]), graph[et].edge_index.long())
    assert torch.equal(g.nodes["text"].data["x"], graph["text"].x)
    assert torch.equal(g.nodes["text"].data["y"], graph.y)


def test_relgraphconv_matches_rgcnconv_with_the_same_weights(graph):
    from dgl.nn.pytorch import RelGraphConv
    from torch_geometric.nn import RGCNConv

    from ercgraph.graphs.dgl_export import to_dgl

    hg = to_dgl(graph)
    etypes = hg.canonical_etypes
    assert sum(hg.num_edges(et) for et in etypes) > 0
    # PyG side: one edge_index + relation ids in DGL's canonical edge-type order
    edge_index = torch.cat([graph[et].edge_index for et in etypes], dim=1)
    edge_type = torch.cat(
        [torch.full((graph[et].edge_index.size(1),), i) for i, et in enumerate(etypes)]
    )
    torch.manual_seed(1)
    pyg = RGCNConv(16, 8, num_relations=len(etypes), aggr="add")
    ours = RelGraphConv(16, 8, num_rels=len(etypes), self_loop=True, bias=True)
    with torch.no_grad():
        ours.linear_r.W.copy_(pyg.weight)
        ours.loop_weight.copy_(pyg.root)
        ours.h_bias.copy_(pyg.bias)
    g = dgl.to_homogeneous(hg)
    x = graph["text"].x
    out_dgl = ours(g, x, g.edata[dgl.ETYPE])
    out_pyg = pyg(x, edge_index, edge_type)
    assert torch.allclose(out_dgl, out_pyg, atol=1e-5)
    assert out_pyg.abs().sum() > 0


def test_missing_dgl_gives_a_clear_error(monkeypatch, graph):
    import builtins

    from ercgraph.errors import ErcgraphError
    from ercgraph.graphs import dgl_export

    real_import = builtins.__import__

    def no_dgl(name, *a, **k):
        if name == "dgl":
            raise ImportError("No module named 'dgl'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_dgl)
    with pytest.raises(ErcgraphError, match=r"\.\[dgl\]"):
        dgl_export.to_dgl(graph)
