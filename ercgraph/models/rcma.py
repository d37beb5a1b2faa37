"""The RCMA body: per-modality temporal convolutions along each dialogue, then a fusion
(recursive cross-modal attention by default)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.utils import to_dense_batch

from ercgraph.errors import ErcgraphError
from ercgraph.fusions.base import merge_fusion_aux
from ercgraph.models.layers import InputHook, ModalityProjection, project_batch
from ercgraph.models.outputs import ModelOutput
from ercgraph.registry import FUSIONS, MODELS

EdgeType = tuple[str, str, str]


class TemporalConvNet(nn.Module):
    """A stack of residual dilated 1-D convolutions over padded sequences (a TCN, Bai et al.,
    2018, without weight normalisation).

    Block ``i`` is ``x + dropout(relu(conv_i(x)))`` with dilation ``2**i``; padding positions are
    zeroed before every block, so a sequence never reads what lies beyond its end (or another
    sequence). Non-causal blocks see ``(kernel_size - 1) * 2**i / 2`` steps on either side
    (the extra step of an even kernel on the past side); causal blocks see only the past.

    Args:
        dim: channels (input and output).
        layers: number of blocks.
        kernel_size: convolution width.
        causal: pad on the past side only.
        dropout: dropout after each block's activation.

    Shapes:
        input: ``x`` ``[B, L, dim]``, ``mask`` bool ``[B, L]`` (True on real steps).
        output: ``[B, L, dim]`` (zero on padding).
    """

    def __init__(
        self, dim: int, layers: int, kernel_size: int, causal: bool, dropout: float
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.causal = causal
        self.convs = nn.ModuleList(
            nn.Conv1d(dim, dim, kernel_size, dilation=2**i) for i in range(layers)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        keep = mask.unsqueeze(1).to(x.dtype)  # [B, 1, L]
        h = x.transpose(1, 2) * keep  # [B, dim, L]
        for conv in self.convs:
            span = (self.kernel_size - 1) * conv.dilation[0]
            left = span if self.causal else span - span // 2
            padded = nn.functional.pad(h, (left, span - left))
            h = (h + self.dropout(torch.relu(conv(padded)))) * keep
        return h.transpose(1, 2)


@MODELS.register("rcma")
class RCMABody(nn.Module):
    """The RCMA model body (Praveen et al., "Recursive Cross-Modal Attention for Multimodal
    Fusion in Dimensional Emotion Recognition", CVPR Workshops (ABAW) 2024), on dialogues.

    Per modality: a projection (with speaker and modality embeddings, as every body here), then
    a temporal convolution network along each dialogue's utterances (:class:`TemporalConvNet`;
    the dialogues of a batch are padded apart with :func:`~torch_geometric.utils.to_dense_batch`
    and never mix), then the configured fusion of each utterance's modality states (``rcma``,
    recursive cross-modal attention, by default). RCMA runs its TCNs over the frames of a video
    window; here the sequence is the dialogue's utterances. The body reads no graph edges (they
    are accepted for a uniform constructor): its context is the TCN's receptive field,
    ``1 + (kernel_size - 1) * (2**tcn_layers - 1)`` utterances. An utterance whose modality is
    missing enters that modality's TCN as zeros. RCMA's final BLSTM over the fused sequence is
    left out: the heads read the fused states directly.

    Args:
        in_dims: modality → input feature dimension.
        edge_types: accepted for a uniform constructor; not read.
        num_classes: number of emotion classes (the heads classify).
        hidden: size of each modality's state.
        dropout: dropout probability.
        max_speakers: size of the local speaker embedding table.
        fusion: a ``FUSIONS`` name or spec (default ``rcma``).
        tcn_layers: temporal convolution blocks per modality (dilations 1, 2, 4, ...).
        kernel_size: temporal convolution width.
        causal: convolve over past utterances only (default: both sides).

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
        fusion: Any = "rcma",
        tcn_layers: int = 2,
        kernel_size: int = 3,
        causal: bool = False,
    ) -> None:
        super().__init__()
        if tcn_layers < 0:
            raise ErcgraphError(f"rcma: tcn_layers must be >= 0, got {tcn_layers}")
        if kernel_size < 1:
            raise ErcgraphError(f"rcma: kernel_size must be >= 1, got {kernel_size}")
        self.modalities = list(in_dims)
        self.hidden = hidden
        self.tcn_layers = tcn_layers
        self.kernel_size = kernel_size
        self.causal = causal
        self.project = ModalityProjection(in_dims, hidden, max_speakers, dropout)
        self.tcn = nn.ModuleDict(
            {
                m: TemporalConvNet(hidden, tcn_layers, kernel_size, causal, dropout)
                for m in self.modalities
            }
        )
        self.fusion = FUSIONS.create(fusion, modalities=self.modalities, dim=hidden)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = self.fusion.out_dim

    def forward(self, batch: Batch, input_hook: InputHook | None = None) -> ModelOutput:
        x, present, h0, masks = project_batch(self.project, batch, self.modalities, input_hook)
        h = {}
        for m in self.modalities:
            seq = h0[m] * present[m].unsqueeze(-1).to(h0[m].dtype)
            dense, mask = to_dense_batch(seq, batch[m].batch)
            h[m] = self.tcn[m](dense, mask)[mask]
        utterance = self.dropout(self.fusion(h, present))
        return ModelOutput(
            utterance=utterance,
            nodes=h,
            inputs=x,
            present=present,
            node_masks=masks,
            aux=merge_fusion_aux({}, self.fusion),
        )

    def extra_repr(self) -> str:
        return f"tcn_layers={self.tcn_layers}, kernel_size={self.kernel_size}, causal={self.causal}"
