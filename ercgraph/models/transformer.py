"""A dialogue-level transformer encoder over the fused utterance vectors."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.utils import to_dense_batch

from ercgraph.errors import ErcgraphError
from ercgraph.fusions.base import merge_fusion_aux
from ercgraph.models.layers import InputHook, ModalityProjection, project_batch
from ercgraph.models.m2fnet import sinusoidal_positions
from ercgraph.models.outputs import ModelOutput
from ercgraph.registry import FUSIONS, MODELS

EdgeType = tuple[str, str, str]
POSITIONS = ("sinusoidal", "learned")


@MODELS.register("dialogue_transformer")
class DialogueTransformer(nn.Module):
    r"""A transformer encoder (Vaswani et al., 2017) over each dialogue's utterance vectors:
    the sequence-level context encoder that ERC models commonly put on top of utterance
    features.

    Stages: (1) per-modality projection with speaker and modality embeddings and the
    configured fusion (a linear map to ``hidden`` when the fusion is wider), giving the
    utterance vector :math:`u_i`; (2) :math:`u_i` plus a learned embedding of the speaker's
    index within the dialogue (capped at ``max_speakers``, as the projection caps it) plus a
    position code of the utterance's index in its dialogue (``positions``: sine/cosine, or a
    learned table of ``max_positions`` rows, later positions sharing the last); (3) an
    ``nn.TransformerEncoder`` of ``layers`` pre-norm layers with ``heads`` heads, a ``4 *
    hidden`` feed-forward width and a final layer norm, over the padded dialogues with a
    key-padding mask (an utterance attends within its own dialogue only), and with ``causal``
    also a mask that hides later utterances (past-only context); (4) the readout
    :math:`[u_i \Vert \mathrm{enc}_i]`: the utterance's own projected input reaches the heads
    undiluted.

    It is a sequence model: **graph edges are ignored**, only the dialogue grouping and the
    node order inside a dialogue are read. On one-utterance dialogues each utterance attends
    to itself only: a per-utterance model that still trains, so it does not declare
    ``NEEDS_CONTEXT``. ``out.nodes[m]`` is each modality's projected input plus the encoder
    state of its utterance (zeros where the modality is missing).

    Args:
        in_dims: modality → input feature dimension.
        edge_types: accepted for a uniform constructor; edges are not read.
        num_classes: number of emotion classes (the heads classify).
        hidden: model width (a multiple of ``heads``).
        heads: attention heads (``model.heads``).
        dropout: dropout probability (projection, encoder, readout).
        max_speakers: size of the speaker embedding tables.
        fusion: a ``FUSIONS`` name, ``{"name": ..., **options}`` or a module.
        layers: encoder layers (``model.options.layers``).
        causal: attend to earlier utterances and itself only (``model.options.causal``).
        positions: ``sinusoidal`` or ``learned`` (``model.options.positions``).
        max_positions: rows of the learned position table.

    Shapes:
        input: a :class:`~torch_geometric.data.Batch` of dialogue graphs.
        output: a :class:`ModelOutput` whose ``utterance`` is ``[num_utterances, 2 * hidden]``.
    """

    #: a one-utterance dialogue degrades it to a per-utterance model, which still trains
    NEEDS_CONTEXT = False

    def __init__(
        self,
        in_dims: dict[str, int],
        edge_types: list[EdgeType],
        num_classes: int,
        hidden: int = 128,
        heads: int = 4,
        dropout: float = 0.3,
        max_speakers: int = 9,
        fusion: Any = "mean",
        layers: int = 2,
        causal: bool = False,
        positions: str = "sinusoidal",
        max_positions: int = 128,
    ) -> None:
        super().__init__()
        if heads < 1 or hidden % heads:
            raise ErcgraphError(
                f"dialogue_transformer splits model.hidden={hidden} over model.heads={heads} "
                "attention heads; hidden must be a positive multiple of heads"
            )
        for key, value in (("layers", layers), ("max_positions", max_positions)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ErcgraphError(
                    f"dialogue_transformer: model.options.{key} must be an integer >= 1, "
                    f"got {value!r}"
                )
        if not isinstance(causal, bool):
            raise ErcgraphError(
                f"dialogue_transformer: model.options.causal must be true or false, got {causal!r}"
            )
        if positions not in POSITIONS:
            raise ErcgraphError(
                f"dialogue_transformer: model.options.positions must be one of "
                f"{', '.join(POSITIONS)}, got {positions!r}"
            )
        self.modalities = list(in_dims)
        self.hidden, self.heads, self.layers = hidden, heads, layers
        self.causal, self.positions, self.max_speakers = causal, positions, max_speakers
        self.project = ModalityProjection(in_dims, hidden, max_speakers, dropout)
        self.fusion = FUSIONS.create(fusion, modalities=self.modalities, dim=hidden)
        width = self.fusion.out_dim
        self.inp = nn.Identity() if width == hidden else nn.Linear(width, hidden)
        self.speaker = nn.Embedding(max_speakers, hidden)
        self.position = nn.Embedding(max_positions, hidden) if positions == "learned" else None
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(
                hidden, heads, 4 * hidden, dropout, batch_first=True, norm_first=True
            ),
            layers,
            norm=nn.LayerNorm(hidden),
            enable_nested_tensor=False,
        )
        self.dropout = nn.Dropout(dropout)
        self.out_dim = 2 * hidden
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.speaker.weight, std=0.02)
        if self.position is not None:
            nn.init.normal_(self.position.weight, std=0.02)

    def forward(self, batch: Batch, input_hook: InputHook | None = None) -> ModelOutput:
        """The projected input and the encoder state per utterance ``[N, 2 * hidden]``.

        ``input_hook(h0, present)`` may replace the projected inputs before the encoder
        (masking heads) and returns them with the node masks it applied.
        """
        x, present, h, masks = project_batch(self.project, batch, self.modalities, input_hook)
        u = self.inp(self.fusion(h, present))
        index = batch[self.modalities[0]].batch
        dense, valid = to_dense_batch(u, index)  # [B, T, d], [B, T]
        speaker, _ = to_dense_batch(batch.speaker, index)
        length = dense.size(1)
        if self.position is not None:
            pos = torch.arange(length, device=u.device).clamp(max=self.position.num_embeddings - 1)
            pos = self.position(pos)
        else:
            pos = sinusoidal_positions(length, self.hidden, u.device)
        seq = dense + self.speaker(speaker.clamp(max=self.max_speakers - 1)) + pos
        mask = None
        if self.causal:
            # True = hidden; a padded query still sees the real keys before it, so no row of
            # the softmax is empty (an empty row would be NaN and poison the gradients)
            mask = torch.ones(length, length, dtype=torch.bool, device=u.device).triu(1)
        enc = self.encoder(seq, mask=mask, src_key_padding_mask=~valid)[valid]
        utterance = self.dropout(torch.cat([u, enc], -1))
        nodes = {
            m: torch.where(present[m][:, None], h[m] + enc, torch.zeros_like(enc))
            for m in self.modalities
        }
        return ModelOutput(
            utterance=utterance,
            nodes=nodes,
            inputs=x,
            present=present,
            node_masks=masks,
            aux=merge_fusion_aux({}, self.fusion),
        )

    def extra_repr(self) -> str:
        return (
            f"modalities={self.modalities}, hidden={self.hidden}, heads={self.heads}, "
            f"layers={self.layers}, causal={self.causal}, positions={self.positions!r}"
        )
