"""Reference baselines, one config away from the hierarchical model."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import GraphConv, RGCNConv

from ercgraph.errors import ErcgraphError
from ercgraph.fusions.base import merge_fusion_aux
from ercgraph.models.layers import InputHook, ModalityProjection, project_batch, run_sequence
from ercgraph.models.outputs import ModelOutput
from ercgraph.registry import FUSIONS, MODELS

EdgeType = tuple[str, str, str]


@MODELS.register("mlp")
class ContextFreeMLP(nn.Module):
    """Context-free baseline: each utterance is classified from its own features only.

    Args:
        in_dims: modality → input feature dimension.
        edge_types: accepted for a uniform constructor; the MLP reads no edges.
        num_classes: number of emotion classes.
        hidden: hidden size.
        dropout: dropout probability.
        max_speakers: size of the local speaker embedding table.
        fusion: a ``FUSIONS`` name or spec (how the modality projections become one vector).

    Shapes:
        output: a :class:`ModelOutput` with ``utterance`` ``[num_utterances, out_dim]``.
    """

    def __init__(
        self,
        in_dims: dict[str, int],
        edge_types: list[EdgeType],
        num_classes: int,
        hidden: int = 128,
        dropout: float = 0.3,
        max_speakers: int = 9,
        fusion: Any = "mean",
    ) -> None:
        super().__init__()
        self.modalities = list(in_dims)
        self.hidden = hidden
        self.project = ModalityProjection(in_dims, hidden, max_speakers, dropout)
        self.fusion = FUSIONS.create(fusion, modalities=self.modalities, dim=hidden)
        self.out_dim = self.fusion.out_dim

    def forward(self, batch: Batch, input_hook: InputHook | None = None) -> ModelOutput:
        x, present, h, masks = project_batch(self.project, batch, self.modalities, input_hook)
        utterance = self.fusion(h, present)
        return ModelOutput(
            utterance=utterance,
            nodes=h,
            inputs=x,
            present=present,
            node_masks=masks,
            aux=merge_fusion_aux({}, self.fusion),
        )


@MODELS.register("dialoguegcn")
class DialogueGCNStyle(nn.Module):
    """A DialogueGCN-style model (Ghosal et al., 2019).

    Our reading: a bidirectional GRU encodes each dialogue sequentially; a relational GCN
    (:class:`~torch_geometric.nn.RGCNConv`, basis decomposition) runs over every intra-modal
    relation in the graph (configure the ``speaker`` builder with ``directed: true`` and a 10/10
    window for DialogueGCN's speaker × direction relations), followed by a
    :class:`~torch_geometric.nn.GraphConv` over all edges; the classifier reads the GRU and graph
    states concatenated. DialogueGCN's edge attention weights are replaced by the mean
    normaliser of R-GCN. Multimodal input is the concatenation of the modality features (with
    missing modalities excluded from the mean projection).

    Args:
        in_dims: modality → input feature dimension.
        edge_types: edge types present in every graph; intra-modal ones of the first modality
            become the R-GCN relations.
        num_classes: number of emotion classes.
        hidden: hidden size.
        dropout: dropout probability.
        max_speakers: size of the local speaker embedding table.
        num_bases: R-GCN basis count (None = full weights).
        fusion: a ``FUSIONS`` name or spec for the modality projections.

    Shapes:
        output: a :class:`ModelOutput` with ``utterance`` ``[num_utterances, 2 * hidden]``.
    """

    def __init__(
        self,
        in_dims: dict[str, int],
        edge_types: list[EdgeType],
        num_classes: int,
        hidden: int = 128,
        dropout: float = 0.3,
        max_speakers: int = 9,
        num_bases: int | None = 30,
        fusion: Any = "mean",
    ) -> None:
        super().__init__()
        self.modalities = list(in_dims)
        self.hidden = hidden
        self.fusion = FUSIONS.create(fusion, modalities=self.modalities, dim=hidden)
        if self.fusion.out_dim != hidden:
            raise ErcgraphError(
                f"dialoguegcn runs its GRU on a {hidden}-d fused input; fusion "
                f"{type(self.fusion).__name__} gives {self.fusion.out_dim}-d (use mean or gated)"
            )
        first = self.modalities[0]
        self.relations = [et for et in edge_types if et[0] == et[2] == first]
        self.project = ModalityProjection(in_dims, hidden, max_speakers, dropout)
        self.gru = nn.GRU(hidden, hidden // 2, batch_first=True, bidirectional=True)
        n_rel = max(len(self.relations), 1)
        self.rgcn = RGCNConv(
            hidden,
            hidden,
            n_rel,
            num_bases=min(num_bases, n_rel) if num_bases else None,
            aggr="mean",
        )
        self.gconv = GraphConv(hidden, hidden, aggr="add")
        self.dropout = nn.Dropout(dropout)
        self.out_dim = 2 * hidden

    def forward(self, batch: Batch, input_hook: InputHook | None = None) -> ModelOutput:
        x, present, nodes, masks = project_batch(self.project, batch, self.modalities, input_hook)
        h = self.fusion(nodes, present)
        node_batch = batch[self.modalities[0]].batch
        seq = run_sequence(self.gru, h, node_batch)
        if self.relations:
            edge_index = torch.cat([batch[et].edge_index for et in self.relations], dim=1)
            edge_type = torch.cat(
                [
                    torch.full((batch[et].edge_index.size(1),), i, dtype=torch.long)
                    for i, et in enumerate(self.relations)
                ]
            )
        else:
            edge_index = torch.empty(2, 0, dtype=torch.long, device=h.device)
            edge_type = torch.empty(0, dtype=torch.long, device=h.device)
        edge_type = edge_type.to(h.device)
        g = self.dropout(torch.relu(self.rgcn(seq, edge_index, edge_type)))
        g = torch.relu(self.gconv(g, edge_index))
        utterance = self.dropout(torch.cat([seq, g], dim=-1))
        return ModelOutput(
            utterance=utterance,
            nodes=nodes,
            inputs=x,
            present=present,
            node_masks=masks,
            aux=merge_fusion_aux({}, self.fusion),
        )
