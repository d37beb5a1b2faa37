"""The hierarchical graph model: projection → intra-modal → cross-modal → fusion (heads read it)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import HeteroConv

from ercgraph.fusions.base import merge_fusion_aux
from ercgraph.models.layers import (
    InputHook,
    ModalityProjection,
    conv_resolver,
    project_batch,
    run_sequence,
)
from ercgraph.models.outputs import ModelOutput
from ercgraph.registry import FUSIONS, MODELS

EdgeType = tuple[str, str, str]


@MODELS.register("hierarchical_gcn")
class HierarchicalGCN(nn.Module):
    r"""Hierarchical relational GCN over a speaker/temporal/modality dialogue graph.

    Stages: (1) per-modality projection with speaker and modality embeddings; (2) ``intra_layers``
    relational layers over the intra-modal edge types (temporal and speaker relations, one
    convolution per edge type through :class:`~torch_geometric.nn.HeteroConv`); (3)
    ``cross_layers`` layers over ``cross_modal`` edges; (4) fusion of an utterance's modality nodes
    (a ``FUSIONS`` entry, the masked mean by default) concatenated with the same fusion of the
    projected input. The heads (emotion classifier and others) read that utterance
    representation. Each graph layer is residual with layer norm, in the spirit of the hierarchical
    designs of MMGCN (Hu et al., 2021) and M3Net (Chen et al., 2023); the exact stacking is our
    own reading.

    Args:
        in_dims: modality → input feature dimension.
        edge_types: the ``(src, relation, dst)`` edge types present in every graph.
        num_classes: number of emotion classes (kept for a uniform constructor; the heads
            classify).
        hidden: hidden size.
        conv: convolution name (``rgcn``, ``graphconv``, ``gat``, ``transformer``, ``sage``).
        intra_layers: number of intra-modal layers.
        cross_layers: number of cross-modal layers (unused edge-free stages are skipped).
        heads: attention heads for ``gat``/``transformer``.
        dropout: dropout probability.
        max_speakers: size of the (local) speaker embedding table.
        context_rnn: run a bidirectional GRU per modality along each dialogue before the graph.
        fusion: a ``FUSIONS`` name, ``{"name": ..., **options}`` or a module.

    Shapes:
        input: a :class:`~torch_geometric.data.Batch` of ``HeteroData`` graphs.
        output: a :class:`~ercgraph.models.outputs.ModelOutput` whose ``utterance`` is
            ``[num_utterances, out_dim]`` in batch utterance order.
    """

    def __init__(
        self,
        in_dims: dict[str, int],
        edge_types: list[EdgeType],
        num_classes: int,
        hidden: int = 128,
        conv: str = "rgcn",
        intra_layers: int = 2,
        cross_layers: int = 1,
        heads: int = 4,
        dropout: float = 0.3,
        max_speakers: int = 9,
        context_rnn: bool = False,
        fusion: Any = "mean",
    ) -> None:
        super().__init__()
        self.in_dims = dict(in_dims)
        self.modalities = list(in_dims)
        self.hidden = hidden
        self.num_classes = num_classes
        self.intra_types = [et for et in edge_types if et[0] == et[2]]
        self.cross_types = [et for et in edge_types if et[0] != et[2]]
        self.project = ModalityProjection(in_dims, hidden, max_speakers, dropout)
        self.context_rnn = context_rnn
        self.rnn = (
            nn.ModuleDict(
                {
                    m: nn.GRU(hidden, hidden // 2, batch_first=True, bidirectional=True)
                    for m in self.modalities
                }
            )
            if context_rnn
            else None
        )

        def stack(types: list[EdgeType], n: int) -> nn.ModuleList:
            if not types:
                return nn.ModuleList()
            return nn.ModuleList(
                HeteroConv({et: conv_resolver(conv, hidden, heads) for et in types}, aggr="sum")
                for _ in range(n)
            )

        self.intra = stack(self.intra_types, intra_layers)
        self.cross = stack(self.cross_types, cross_layers)
        self.norms = nn.ModuleList(
            nn.ModuleDict({m: nn.LayerNorm(hidden) for m in self.modalities})
            for _ in range(len(self.intra) + len(self.cross))
        )
        self.dropout = nn.Dropout(dropout)
        self.fusion = FUSIONS.create(fusion, modalities=self.modalities, dim=hidden)
        self.fusion0 = FUSIONS.create(fusion, modalities=self.modalities, dim=hidden)
        self.out_dim = 2 * self.fusion.out_dim

    def forward(self, batch: Batch, input_hook: InputHook | None = None) -> ModelOutput:
        """Node states and the fused utterance representation ``[N, out_dim]``.

        ``input_hook(h0, present)`` may replace the projected inputs before message passing
        (masking heads) and returns them with the node masks it applied.
        """
        x_dict, present, h0, masks = project_batch(self.project, batch, self.modalities, input_hook)
        h = h0
        if self.rnn is not None:
            h = {}
            for m in self.modalities:
                keep = present[m]  # missing nodes never enter the sequence
                h[m] = h0[m].clone()
                if keep.any():
                    h[m][keep] = run_sequence(self.rnn[m], h0[m][keep], batch[m].batch[keep])
        edge_index_dict = batch.collect("edge_index", allow_empty=True)
        layers = [(layer, self.intra_types) for layer in self.intra]
        layers += [(layer, self.cross_types) for layer in self.cross]
        for i, (layer, types) in enumerate(layers):
            out = layer(h, {et: edge_index_dict[et] for et in types})
            h = {
                m: self.norms[i][m](h[m] + self.dropout(out[m].relu())) if m in out else h[m]
                for m in self.modalities
            }
        fused = torch.cat([self.fusion(h, present), self.fusion0(h0, present)], dim=-1)
        return ModelOutput(
            utterance=self.dropout(fused),
            nodes=h,
            inputs=x_dict,
            present=present,
            node_masks=masks,
            aux=merge_fusion_aux({}, self.fusion, self.fusion0),
        )
