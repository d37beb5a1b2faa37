"""Shared building blocks: the convolution resolver, per-modality input projection, and packed
sequences along a dialogue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GraphConv, SAGEConv, TransformerConv
from torch_geometric.nn.resolver import resolver

from ercgraph.errors import ErcgraphError

#: Convolutions the hierarchical GCN accepts by name: name → (PyG class, fixed arguments).
#: ``rgcn`` is our reading of R-GCN (Schlichtkrull et al., 2018) on a HeteroConv: one GraphConv per
#: relation with mean aggregation (the 1/c_{i,r} normaliser) summed over relations; the
#: per-relation root weights add up to R-GCN's single self-connection weight. ``graphconv`` is the
#: same with sum aggregation. Any other PyG convolution class name (``GINConv`` is not one: it
#: needs an MLP) resolves through PyG's resolver with ``(hidden, hidden)``.
CONVS: dict[str, tuple[type, dict[str, Any]]] = {
    "rgcn": (GraphConv, {"aggr": "mean"}),
    "graphconv": (GraphConv, {"aggr": "add"}),
    "gat": (GATConv, {"add_self_loops": False}),
    "transformer": (TransformerConv, {"concat": False, "root_weight": False}),
    "sage": (SAGEConv, {"aggr": "mean"}),
}
CONV_NAMES = tuple(CONVS)
#: Convolutions with attention heads (``model.heads`` acts on these only).
HEADED = ("gat", "transformer")
DEFAULT_HEADS = 4

InputHook = Callable[
    [dict[str, Tensor], dict[str, Tensor]], tuple[dict[str, Tensor], dict[str, Tensor]]
]


def check_conv(name: Any, hidden: int, heads: int) -> None:
    """Refuse ``model.heads`` where it cannot act, and a GAT hidden size it cannot split."""
    if not isinstance(name, str):
        return
    key = name.lower()
    if key not in CONVS and key.removesuffix("conv") not in CONVS:
        try:
            resolver(list(_PYG_CONVS), {}, name, nn.Module, "Conv", hidden, hidden)
        except (ValueError, TypeError):
            raise ErcgraphError(
                f"unknown convolution {name!r} for model.conv; choose one of "
                f"{', '.join(CONV_NAMES)} (or a PyG class name such as 'GraphConv')"
            ) from None
    if key not in HEADED and heads != DEFAULT_HEADS:
        raise ErcgraphError(
            f"model.heads={heads} has no effect with model.conv {name!r} (it has no attention "
            f"heads); use one of {', '.join(HEADED)} or leave model.heads at {DEFAULT_HEADS}"
        )
    if key == "gat" and hidden % heads:
        raise ErcgraphError(
            f"model.conv 'gat' splits model.hidden={hidden} over model.heads={heads}; "
            "hidden must be a multiple of heads"
        )


_PYG_CONVS = (GATConv, GraphConv, SAGEConv, TransformerConv)


def conv_resolver(name: str | nn.Module, hidden: int, heads: int = DEFAULT_HEADS) -> nn.Module:
    """Build one message-passing layer ``hidden → hidden`` for one edge type.

    Our names resolve through :data:`CONVS`; anything else goes to PyG's generic
    :func:`~torch_geometric.nn.resolver.resolver` (so ``"GraphConv"`` also works), and a module
    instance passes through unchanged.
    """
    if not isinstance(name, str):
        return name
    check_conv(name, hidden, heads)
    key = name.lower()
    if key in CONVS:
        cls, kwargs = CONVS[key]
        out = hidden
        if key in HEADED:
            kwargs = {**kwargs, "heads": heads}
            out = hidden // heads if key == "gat" else hidden
        return resolver(
            list(_PYG_CONVS), {}, cls.__name__, nn.Module, "Conv", hidden, out, **kwargs
        )
    return resolver(list(_PYG_CONVS), {}, name, nn.Module, "Conv", hidden, hidden)


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


def project_batch(
    project: ModalityProjection,
    batch: Any,
    modalities: list[str],
    input_hook: InputHook | None = None,
) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
    """The prologue every body shares: raw inputs, presence masks, projected node inputs, and
    the node masks ``input_hook`` applied to them (a masking head; none without one).

    Returns:
        ``(x, present, h, masks)``, each modality → tensor.
    """
    x = {m: batch[m].x for m in modalities}
    present = {m: batch[m].present_mask for m in modalities}
    h = project(x, batch.speaker)
    masks: dict[str, Tensor] = {}
    if input_hook is not None:
        h, masks = input_hook(h, present)
    return x, present, h, masks


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
