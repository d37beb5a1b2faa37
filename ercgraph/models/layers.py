"""Shared building blocks: the convolution resolver and per-modality input projection."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GraphConv, SAGEConv, TransformerConv
from torch_geometric.nn.resolver import resolver

from ercgraph.errors import ErcgraphError

#: Convolutions the hierarchical GCN accepts by name. ``rgcn`` is our reading of R-GCN
#: (Schlichtkrull et al., 2018) on a HeteroConv: one GraphConv per relation with mean aggregation
#: (the 1/c_{i,r} normaliser) summed over relations; the per-relation root weights add up to R-GCN's
#: single self-connection weight. ``graphconv`` is the same with sum aggregation.
CONV_NAMES = ("rgcn", "graphconv", "gat", "transformer", "sage")


def conv_resolver(name: str | nn.Module, hidden: int, heads: int = 4) -> nn.Module:
    """Build one message-passing layer ``hidden → hidden`` for one edge type.

    Uses PyG's generic :func:`~torch_geometric.nn.resolver.resolver`, so a module instance passes
    through unchanged and a class name such as ``"GraphConv"`` also resolves.
    """
    if not isinstance(name, str):
        return name
    key = name.lower()
    kwargs: dict[str, Any]
    if key == "rgcn":
        return GraphConv(hidden, hidden, aggr="mean")
    if key == "graphconv":
        return GraphConv(hidden, hidden, aggr="add")
    if key == "gat":
        if hidden % heads:
            raise ErcgraphError(
                f"model.conv 'gat' splits model.hidden={hidden} over model.heads={heads}; "
                "hidden must be a multiple of heads"
            )
        return GATConv(hidden, hidden // heads, heads=heads, add_self_loops=False)
    if key == "transformer":
        kwargs = {"heads": heads, "concat": False, "root_weight": False}
        return TransformerConv(hidden, hidden, **kwargs)
    if key == "sage":
        return SAGEConv(hidden, hidden, aggr="mean")
    try:
        return resolver(
            [GATConv, GraphConv, SAGEConv, TransformerConv],
            {},
            name,
            nn.Module,
            "Conv",
            hidden,
            hidden,
        )
    except ValueError:
        raise ErcgraphError(
            f"unknown convolution {name!r} for model.conv; choose one of {', '.join(CONV_NAMES)}"
        ) from None


class ModalityProjection(nn.Module):
    """Stage 1: project each modality to ``hidden`` and add speaker and modality embeddings.

    Args:
        in_dims: modality → input feature dimension.
        hidden: output dimension.
        max_speakers: speakers beyond this local index share the last embedding.
        dropout: dropout on the projected features.
    """

    def __init__(
        self, in_dims: dict[str, int], hidden: int, max_speakers: int = 9, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.in_dims = dict(in_dims)
        self.max_speakers = max_speakers
        self.proj = nn.ModuleDict({m: nn.Linear(d, hidden) for m, d in in_dims.items()})
        self.speaker = nn.Embedding(max_speakers, hidden)
        self.modality = nn.Embedding(len(in_dims), hidden)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in self.proj.values():
            lin.reset_parameters()
        nn.init.normal_(self.speaker.weight, std=0.02)
        nn.init.normal_(self.modality.weight, std=0.02)

    def forward(self, x_dict: dict[str, Tensor], speaker: Tensor) -> dict[str, Tensor]:
        """Shapes: ``x_dict[m]`` [N, in_dims[m]], ``speaker`` [N] → ``[N, hidden]`` per modality."""
        spk = self.speaker(speaker.clamp(max=self.max_speakers - 1))
        out = {}
        for i, (m, lin) in enumerate(self.proj.items()):
            mod = self.modality.weight[i]
            out[m] = self.dropout(torch.relu(lin(x_dict[m]) + spk + mod))
        return out


def masked_mean(h_dict: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
    """Mean over the modalities present for each utterance. Shapes: [N, h] each → [N, h]."""
    stacked = torch.stack([h_dict[m] for m in present], dim=1)  # [N, M, h]
    mask = torch.stack([present[m] for m in present], dim=1).unsqueeze(-1).float()
    return (stacked * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def run_sequence(rnn: nn.RNNBase, x: Tensor, batch: Tensor) -> Tensor:
    """Run a batch-first RNN over each dialogue's nodes, packed so padding is never read.

    Shapes: ``x`` [N, d] (nodes of consecutive dialogues), ``batch`` [N] → [N, out].
    """
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    from torch_geometric.utils import to_dense_batch

    dense, mask = to_dense_batch(x, batch)
    lengths = mask.sum(1)
    keep = lengths > 0  # a dialogue without nodes of this modality has no sequence
    packed = pack_padded_sequence(
        dense[keep], lengths[keep].cpu(), batch_first=True, enforce_sorted=False
    )
    out, _ = pad_packed_sequence(rnn(packed)[0], batch_first=True, total_length=dense.size(1))
    return out[mask[keep]]
