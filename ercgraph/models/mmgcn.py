"""The MMGCN baseline: a deep spectral GCN (GCNII layers) over one homogeneous multimodal graph."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.nn import GCN2Conv
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import coalesce

from ercgraph.errors import ErcgraphError
from ercgraph.fusions.base import merge_fusion_aux
from ercgraph.models.layers import InputHook, ModalityProjection, project_batch, run_sequence
from ercgraph.models.outputs import ModelOutput
from ercgraph.registry import FUSIONS, MODELS

EdgeType = tuple[str, str, str]
EDGE_WEIGHTING = ("angular", "none")


@MODELS.register("mmgcn")
class MMGCN(nn.Module):
    r"""An MMGCN-style model (Hu et al., "MMGCN: Multimodal Fusion via Deep Graph Convolution
    Network for Emotion Recognition in Conversation", ACL 2021).

    Stages: (1) per-modality projection with speaker and modality embeddings; (2) a
    bidirectional LSTM along each dialogue (``intra_layers`` layers) for the modalities in
    ``context_modalities``, the others keep their projection (MMGCN's modality encoders: an LSTM
    for text, fully connected layers for audio and visual); (3) every edge type of the graph
    taken as one homogeneous graph over all modality nodes (node :math:`i` of modality
    :math:`k` is node :math:`kN + i`; duplicate edges merged; edges touching a missing node
    dropped), with MMGCN's angular edge weights :math:`1 - \arccos(\mathrm{sim}(h_i, h_j))/\pi`
    of the layer inputs and the symmetric normalisation with self-loops; (4) ``layers``
    :class:`~torch_geometric.nn.GCN2Conv` layers (GCNII: initial residual ``alpha`` and
    identity mapping :math:`\beta_l = \log(\lambda / l + 1)`), each after dropout and followed
    by a ReLU; (5) the readout: the configured fusion of each utterance's modality node states
    (``concat``, MMGCN's concatenation, by default) concatenated with the same fusion of the
    GCN inputs (MMGCN's ``use_residue``).

    The graph is what the builders give: MMGCN's is ``temporal`` with ``w_past: -1, w_future:
    -1`` (every utterance of a modality linked to every other of that modality in the dialogue)
    plus ``modality`` (the nodes of one utterance linked across modalities); on one-utterance
    dialogues only the cross-modal edges remain. Differences from the authors' code, our
    reading: the speaker embedding is added to every modality (they add it to text), edge
    weights are computed on all edges from the GCN inputs (the same form they use), the LSTM
    is optional per modality, and depth defaults to 4 as in their released run script (the
    paper's point is that GCNII lets the stack go much deeper; raise ``layers``).

    Args:
        in_dims: modality → input feature dimension.
        edge_types: edge types present in every graph; all of them form the one graph.
        num_classes: number of emotion classes (the heads classify).
        hidden: node state size (even when an LSTM runs: it is bidirectional).
        dropout: dropout probability (inputs of every GCN layer, and the output).
        max_speakers: size of the local speaker embedding table.
        intra_layers: layers of the bidirectional LSTM along each dialogue (0 = none).
        fusion: a ``FUSIONS`` name or spec for the readout (default ``concat``).
        layers: number of GCNII layers.
        alpha: GCNII's initial-residual weight.
        lamda: GCNII's :math:`\lambda` (``lambda`` is a Python keyword; PyG calls it
            ``theta``).
        edge_weighting: ``angular`` (MMGCN) or ``none`` (every edge weighs 1).
        context_modalities: modalities that get the LSTM (None = all; MMGCN: ``[text]``).

    Shapes:
        output: a :class:`ModelOutput` with ``utterance`` ``[num_utterances, 2 * fusion
        out_dim]``.
    """

    def __init__(
        self,
        in_dims: dict[str, int],
        edge_types: list[EdgeType],
        num_classes: int,
        hidden: int = 128,
        dropout: float = 0.3,
        max_speakers: int = 9,
        intra_layers: int = 2,
        fusion: Any = "concat",
        layers: int = 4,
        alpha: float = 0.1,
        lamda: float = 0.5,
        edge_weighting: str = "angular",
        context_modalities: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.modalities = list(in_dims)
        self.hidden = hidden
        self.edge_types = [tuple(et) for et in edge_types]
        if layers < 1:
            raise ErcgraphError(f"mmgcn: layers must be >= 1, got {layers}")
        if not 0.0 <= alpha <= 1.0:
            raise ErcgraphError(f"mmgcn: alpha must be in [0, 1], got {alpha}")
        if lamda <= 0:
            raise ErcgraphError(f"mmgcn: lamda must be > 0, got {lamda}")
        if edge_weighting not in EDGE_WEIGHTING:
            raise ErcgraphError(
                f"mmgcn: edge_weighting must be one of {EDGE_WEIGHTING}, got {edge_weighting!r}"
            )
        context = self.modalities if context_modalities is None else list(context_modalities)
        unknown = [m for m in context if m not in self.modalities]
        if unknown:
            raise ErcgraphError(
                f"mmgcn: context_modalities {unknown} are not among the features' modalities "
                f"{self.modalities}"
            )
        if intra_layers < 0:
            raise ErcgraphError(f"mmgcn: intra_layers must be >= 0, got {intra_layers}")
        if intra_layers == 0 and context_modalities:
            raise ErcgraphError(
                f"mmgcn: context_modalities {context} get no LSTM with model.intra_layers=0; "
                "set intra_layers >= 1 or drop context_modalities"
            )
        if intra_layers > 0 and context and hidden % 2:
            raise ErcgraphError(
                f"mmgcn: the bidirectional LSTM needs an even model.hidden, got {hidden}"
            )
        self.layers, self.alpha, self.lamda = layers, alpha, lamda
        self.intra_layers = intra_layers
        self.edge_weighting = edge_weighting
        self.context_modalities = context if intra_layers > 0 else []
        self.project = ModalityProjection(in_dims, hidden, max_speakers, dropout)
        self.rnn = nn.ModuleDict(
            {
                m: nn.LSTM(
                    hidden,
                    hidden // 2,
                    num_layers=intra_layers,
                    batch_first=True,
                    bidirectional=True,
                    dropout=dropout if intra_layers > 1 else 0.0,
                )
                for m in self.context_modalities
            }
        )
        self.convs = nn.ModuleList(
            GCN2Conv(hidden, alpha, theta=lamda, layer=i + 1, normalize=False)
            for i in range(layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.fusion = FUSIONS.create(fusion, modalities=self.modalities, dim=hidden)
        self.fusion0 = FUSIONS.create(fusion, modalities=self.modalities, dim=hidden)
        self.out_dim = 2 * self.fusion.out_dim

    def homogeneous_edges(self, batch: Batch, present: Tensor, n: int) -> Tensor:
        """Every edge type's edges in one ``[2, E]`` index over the stacked modality nodes,
        without duplicates or edges touching a missing node (``present`` ``[M * n]``)."""
        offset = {m: k * n for k, m in enumerate(self.modalities)}
        device = present.device
        parts = [
            batch[et].edge_index + torch.tensor([[offset[et[0]]], [offset[et[2]]]], device=device)
            for et in self.edge_types
            if et in batch.edge_types
        ]
        if not parts:
            return torch.empty(2, 0, dtype=torch.long, device=device)
        edge_index = torch.cat(parts, dim=1)
        edge_index = edge_index[:, present[edge_index[0]] & present[edge_index[1]]]
        return coalesce(edge_index, num_nodes=len(self.modalities) * n)

    def forward(self, batch: Batch, input_hook: InputHook | None = None) -> ModelOutput:
        x, present, h0, masks = project_batch(self.project, batch, self.modalities, input_hook)
        h_in = dict(h0)
        for m in self.context_modalities:
            keep = present[m]  # missing nodes never enter the sequence
            h_in[m] = h0[m].clone()
            if keep.any():
                h_in[m][keep] = run_sequence(self.rnn[m], h0[m][keep], batch[m].batch[keep])
        n = h0[self.modalities[0]].size(0)
        x0 = torch.cat([h_in[m] for m in self.modalities])
        node_present = torch.cat([present[m] for m in self.modalities])
        edge_index = self.homogeneous_edges(batch, node_present, n)
        weight = None
        if self.edge_weighting == "angular":
            # scaled below 1 as in the authors' code: arccos has an infinite slope at +-1
            cos = nn.functional.cosine_similarity(x0[edge_index[0]], x0[edge_index[1]], dim=-1)
            weight = 1.0 - torch.acos(cos * 0.99999) / math.pi
        edge_index, weight = gcn_norm(
            edge_index, weight, x0.size(0), add_self_loops=True, dtype=x0.dtype
        )
        h = x0
        for conv in self.convs:
            h = torch.relu(conv(self.dropout(h), x0, edge_index, weight))
        h = self.dropout(h)
        nodes = dict(zip(self.modalities, h.split(n)))
        fused = torch.cat([self.fusion(nodes, present), self.fusion0(h_in, present)], dim=-1)
        return ModelOutput(
            utterance=fused,
            nodes=nodes,
            inputs=x,
            present=present,
            node_masks=masks,
            aux=merge_fusion_aux({}, self.fusion, self.fusion0),
        )

    def extra_repr(self) -> str:
        return (
            f"layers={self.layers}, alpha={self.alpha}, lamda={self.lamda}, "
            f"intra_layers={self.intra_layers}, edge_weighting={self.edge_weighting!r}, "
            f"context_modalities={self.context_modalities}"
        )
