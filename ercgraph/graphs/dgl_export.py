"""Export ercgraph's dialogue graphs to DGL heterographs (optional extra ``dgl``).

Install with ``pip install -e ".[dgl]"`` (dgl 1.1.3, the last DGL release that runs with current
torch). DGL needs ``DGLBACKEND=pytorch``; :func:`to_dgl` sets it when it is unset, at call time.
"""

from __future__ import annotations

import os
from typing import Any

from ercgraph.errors import ErcgraphError


def _import_dgl() -> Any:
    os.environ.setdefault("DGLBACKEND", "pytorch")
    try:
        import dgl
    except ImportError as exc:
        raise ErcgraphError(
            "DGL export needs the 'dgl' extra: pip install -e '.[dgl]' "
            f"(dgl==1.1.3); import failed: {exc}"
        ) from exc
    return dgl


def to_dgl(data: Any) -> Any:
    """Convert one dialogue graph (a PyG ``HeteroData``) to a ``dgl.DGLHeteroGraph``.

    Node types, canonical edge types ``(src, relation, dst)``, node counts and edge order are
    kept; every node tensor of the same length as the node count (``x``, ``present_mask``) is
    copied to ``ndata``; the utterance-level labels and speakers go to every node type's
    ``ndata["y"]`` and ``ndata["speaker"]`` (nodes of every modality are aligned to utterances).
    """
    dgl = _import_dgl()
    num_nodes = {nt: int(data[nt].num_nodes) for nt in data.node_types}
    edges = {et: (data[et].edge_index[0], data[et].edge_index[1]) for et in data.edge_types}
    g = dgl.heterograph(edges, num_nodes_dict=num_nodes)
    for nt in data.node_types:
        for key, value in data[nt].items():
            if hasattr(value, "shape") and value.shape[:1] == (num_nodes[nt],):
                g.nodes[nt].data[key] = value
        for key in ("y", "speaker"):
            value = getattr(data, key, None)
            if value is not None and value.shape[:1] == (num_nodes[nt],):
                g.nodes[nt].data[key] = value
    return g
