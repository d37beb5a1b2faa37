"""DAG-ERC: a directed acyclic graph over each dialogue, walked in utterance order."""

from __future__ import annotations

from collections.abc import Sequence
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


def dialogue_dag(
    speaker: Tensor, valid: Tensor, w_past: int = 10, speaker_window: int = 1
) -> tuple[Tensor, Tensor]:
    """The DAG-ERC predecessors of every utterance of a padded batch of dialogues.

    Utterance ``j`` is a predecessor of ``i`` when ``j < i``, ``i - j <= w_past`` (``-1``: no
    cap) and fewer than ``speaker_window`` utterances of ``i``'s speaker lie strictly between
    them: the edges run from the ``speaker_window``-th previous utterance of the same speaker
    (inclusive) up to ``i - 1``, or from the dialogue's start when that speaker has spoken
    fewer times. Computed for every pair at once (``[B, T, T]`` boolean masks), no loop.

    Args:
        speaker: ``LongTensor [B, T]``, the speaker of each position (any value on padding).
        valid: ``BoolTensor [B, T]``, False on padding.
        w_past: the farthest predecessor, in utterances.
        speaker_window: DAG-ERC's :math:`\\omega`.

    Returns:
        ``(adj, same)``, both ``[B, T, T]`` indexed ``[dialogue, i, j]``: ``adj`` the edges
        ``j → i``, ``same`` whether ``i`` and ``j`` share a speaker (the relation type).
    """
    t = speaker.size(1)
    pos = torch.arange(t, device=speaker.device)
    earlier = pos[None, :] < pos[:, None]  # [i, j]: j < i
    if w_past >= 0:
        earlier = earlier & (pos[:, None] - pos[None, :] <= w_past)
    same = speaker[:, :, None] == speaker[:, None, :]
    same_before = (same & (pos[None, :] < pos[:, None])).long()
    # same-speaker utterances k with j < k < i: all of them before i minus those at or before j
    between = same_before.sum(-1, keepdim=True) - same_before.cumsum(-1)
    pair_valid = valid[:, :, None] & valid[:, None, :]
    adj = earlier & (between < speaker_window) & pair_valid
    return adj, same


class DAGLayer(nn.Module):
    r"""One DAG-ERC layer (Shen et al., 2021): relation-aware attention over the predecessors'
    states of this layer, then a node GRU and a context GRU whose outputs add up.

    For utterance :math:`i` with predecessors :math:`j` (edge relation :math:`r_{ij}`, same or
    other speaker):
    :math:`\alpha_{ij} = \mathrm{softmax}_j(a^\top [H^l_j \Vert H^{l-1}_i])`,
    :math:`M_i = \sum_j \alpha_{ij} W_{r_{ij}} H^l_j`,
    :math:`H^l_i = \mathrm{GRU}_n(H^{l-1}_i, M_i) + \mathrm{GRU}_c(M_i, H^{l-1}_i)`
    (``GRU(input, state)``, :class:`~torch.nn.GRUCell`'s equations). An utterance without
    predecessors has :math:`M_i = 0`.

    The module holds one layer's weights; :meth:`forward` runs that layer alone, position by
    position (the reference), and :func:`run_dag` runs a stack of them together, faster, as
    :class:`DAGERC` does. In :meth:`forward` everything that reads :math:`H^{l-1}` (the query
    half of the scores, the node GRU's input gates, the context GRU's state gates) is computed
    for all positions at once; a step computes what reads :math:`M_i` and, once :math:`H^l_i`
    is known, its key score and both relation values in one product.

    Args:
        hidden: state size.

    Shapes:
        input: ``h`` ``[B, T, hidden]`` (the previous layer), ``adj``/``same`` ``[B, T, T]``.
        output: ``[B, T, hidden]``.
    """

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.score_query = nn.Linear(hidden, 1)
        # H^l_j -> [key score | W_same H^l_j | W_other H^l_j]
        self.key_values = nn.Linear(hidden, 1 + 2 * hidden, bias=False)
        self.node_gru = nn.GRUCell(hidden, hidden)
        self.context_gru = nn.GRUCell(hidden, hidden)

    def reset_parameters(self) -> None:
        for module in (self.score_query, self.key_values, self.node_gru, self.context_gru):
            module.reset_parameters()

    @staticmethod
    def _gru(gi: Tensor, gh: Tensor, state: Tensor) -> Tensor:
        """:class:`~torch.nn.GRUCell` from its input gates ``gi`` and state gates ``gh``."""
        ir, iz, in_ = gi.chunk(3, -1)
        hr, hz, hn = gh.chunk(3, -1)
        r = torch.sigmoid(ir + hr)
        z = torch.sigmoid(iz + hz)
        n = torch.tanh(in_ + r * hn)
        return n + z * (state - n)

    def forward(self, h: Tensor, adj: Tensor, same: Tensor, w_past: int) -> Tensor:
        b, t, d = h.shape
        node, ctx = self.node_gru, self.context_gru
        # Everything that is not a predecessor's state of this layer, for all positions at
        # once, split per position with unbind (slicing one position out of a [B, T, ...]
        # tensor would cost a [B, T, ...] zero gradient per step in backward).
        query = self.score_query(h)[..., 0].unbind(1)  # the query half of the scores
        node_in = nn.functional.linear(h, node.weight_ih, node.bias_ih).unbind(1)
        ctx_state = nn.functional.linear(h, ctx.weight_hh, ctx.bias_hh).unbind(1)
        states = h.unbind(1)
        # additive attention mask (finite, so a row without predecessors is no NaN), and the
        # weights of each predecessor's same- and other-speaker value, zero off the DAG
        bias = torch.zeros_like(adj, dtype=h.dtype).masked_fill(~adj, -1e9)
        relw = (torch.stack([same, ~same], -1) & adj[..., None]).to(h.dtype)
        # what reads M_i, in one product: GRU_n's state gates and GRU_c's input gates
        m_weight = torch.cat([node.weight_hh, ctx.weight_ih])
        m_bias = torch.cat([node.bias_hh, ctx.bias_ih])
        keys: list[Tensor] = []  # per position [B]: the key half of the scores
        values: list[Tensor] = []  # per position [B, 2, d]: W_same H^l_j, W_other H^l_j
        out: list[Tensor] = []
        m = h.new_zeros(b, d)  # M of a node without predecessors
        for i in range(t):
            # A node reads its predecessors' states of this same layer, so positions go in
            # order; every dialogue of the batch takes position i at once.
            lo = 0 if w_past < 0 else max(0, i - w_past)
            if i > lo:
                score = torch.stack(keys[lo:i], 1) + query[i][:, None] + bias[:, i, lo:i]
                alpha = torch.softmax(score, 1)  # [B, w]
                # [B, w, 2] weights against [B, w, 2, d] values, as one [B, 1, 2w] x [B, 2w, d]
                weight = (alpha[..., None] * relw[:, i, lo:i]).view(b, 1, -1)
                m = torch.bmm(weight, torch.stack(values[lo:i], 1).view(b, -1, d))[:, 0]
            gates = nn.functional.linear(m, m_weight, m_bias)
            state = self._gru(node_in[i], gates[:, : 3 * d], m)
            state = state + self._gru(gates[:, 3 * d :], ctx_state[i], states[i])
            out.append(state)
            kv = self.key_values(state)
            keys.append(kv[:, 0])
            values.append(kv[:, 1:].view(b, 2, d))
        return torch.stack(out, 1)


def run_dag(
    layers: Sequence[DAGLayer],
    h0: Tensor,
    valid: Tensor,
    adj: Tensor,
    same: Tensor,
    w_past: int,
    dropout: nn.Module | None = None,
) -> list[Tensor]:
    """All DAG layers at once along a wavefront: what applying ``layers`` one after the other
    gives (with ``dropout`` on every layer's input but the first), in fewer sequential steps.

    Layer ``l`` at position ``p`` needs layer ``l - 1`` at ``p`` and its own layer at the
    predecessors of ``p``, so at step ``s`` every layer ``l`` takes position ``s - l`` and the
    layers run as one batch (their weights stacked, products by ``bmm``): ``T + L - 1`` steps
    instead of ``L * T``. The cost of a step is mostly per-operation overhead on CPU, so this
    nearly divides the time by ``L``. Measured against the layer-by-layer reference
    (:meth:`DAGLayer.forward`) in the tests.

    Shapes:
        ``h0`` ``[B, T, d]``, ``valid`` ``[B, T]`` (False on padding, which trails each
        dialogue), ``adj``/``same`` ``[B, T, T]`` → ``L`` tensors ``[B, T, d]`` (padding
        positions hold unspecified values).
    """
    b, t, d = h0.shape
    n = len(layers)
    w = t if w_past < 0 else min(w_past, t)
    # the predecessor window of every position: offset k is utterance p - w + k
    pos = torch.arange(t, device=h0.device)
    j = pos[:, None] - w + torch.arange(w, device=h0.device)[None, :]  # [T, w]
    jc = j.clamp(min=0)[None].expand(b, t, w)
    adj_w = adj.gather(2, jc) & (j >= 0)
    same_w = same.gather(2, jc)
    bias_w = torch.zeros_like(adj_w, dtype=h0.dtype).masked_fill(~adj_w, -1e9).transpose(0, 1)
    relw_w = (torch.stack([same_w, ~same_w], -1) & adj_w[..., None]).to(h0.dtype).transpose(0, 1)
    # the layers' weights side by side: [L, d, out] for bmm
    # what reads a layer's input H^{l-1}, in one product: GRU_n's input gates, GRU_c's state
    # gates and the query half of the scores
    w_fixed = torch.stack(
        [
            torch.cat([la.node_gru.weight_ih, la.context_gru.weight_hh, la.score_query.weight]).t()
            for la in layers
        ]
    )
    b_fixed = torch.stack(
        [
            torch.cat([la.node_gru.bias_ih, la.context_gru.bias_hh, la.score_query.bias])
            for la in layers
        ]
    )[:, None]
    w_m = torch.stack(
        [torch.cat([la.node_gru.weight_hh, la.context_gru.weight_ih]).t() for la in layers]
    )
    b_m = torch.stack([torch.cat([la.node_gru.bias_hh, la.context_gru.bias_ih]) for la in layers])[
        :, None
    ]
    w_kv = torch.stack([la.key_values.weight.t() for la in layers])
    # Longest dialogues first, so that the rows still at work at step s are the first ones: a
    # row whose every layer is past its dialogue's end leaves the batch (half the rows of a
    # MELD batch, on average).
    lengths = valid.sum(1)
    order = torch.argsort(lengths, descending=True, stable=True)
    ends = lengths[order].tolist()
    inputs = h0[order].unbind(1)
    bias_w, relw_w = bias_w[:, order], relw_w[:, order]
    keys: list[Tensor] = []  # per step [L, B] (rows past their end are zero)
    values: list[Tensor] = []  # per step [L, B, 2, d]
    out: list[Tensor] = []  # per step [L, B, d]
    prev = h0.new_zeros(n, b, d)
    layer_ids = torch.arange(n, device=h0.device)
    for s in range(t + n - 1):
        # layer l works on position s - l; out-of-range slots compute finite garbage that no
        # valid position reads (their window entries are masked, their outputs dropped)
        rows = sum(1 for end in ends if end > s - n + 1)
        below = prev[: n - 1, :rows]
        below = below if dropout is None else dropout(below)
        x = torch.cat([(inputs[s][:rows] if s < t else h0.new_zeros(rows, d))[None], below])
        fixed = torch.baddbmm(b_fixed, x, w_fixed)  # [L, rows, 6d + 1]
        q = fixed[..., 6 * d :]  # [L, rows, 1]
        width = min(w, s)
        if width:
            p = (s - layer_ids).clamp(0, t - 1)
            score = torch.stack(keys[s - width :], -1)[:, :rows] + q
            score = score + bias_w[p][:, :rows, w - width :]
            alpha = torch.softmax(score, -1)  # [L, rows, W]
            weight = alpha[..., None] * relw_w[p][:, :rows, w - width :]
            vals = torch.stack(values[s - width :], 2)[:, :rows]
            m = torch.bmm(weight.view(n * rows, 1, -1), vals.reshape(n * rows, -1, d))
            m = m.view(n, rows, d)
        else:
            m = h0.new_zeros(n, rows, d)
        gates = torch.baddbmm(b_m, m, w_m)  # GRU_n state gates, GRU_c input gates
        state = DAGLayer._gru(fixed[..., : 3 * d], gates[..., : 3 * d], m)
        state = state + DAGLayer._gru(gates[..., 3 * d :], fixed[..., 3 * d : 6 * d], x)
        kv = nn.functional.pad(torch.bmm(state, w_kv), (0, 0, 0, b - rows))
        keys.append(kv[..., 0])
        values.append(kv[..., 1:].view(n, b, 2, d))
        out.append(nn.functional.pad(state, (0, 0, 0, b - rows)))
        prev = state
    stacked = torch.stack(out)  # [T + L - 1, L, B, d], rows longest first
    back = torch.argsort(order)
    return [stacked[i : i + t, i].transpose(0, 1)[back] for i in range(n)]


@MODELS.register("dagerc")
class DAGERC(nn.Module):
    r"""A DAG-ERC-style body (Shen et al., "Directed Acyclic Graph Network for Conversational
    Emotion Recognition", ACL 2021).

    Stages: (1) per-modality projection with speaker and modality embeddings and the configured
    fusion (a linear map to ``hidden`` when the fusion is wider), giving :math:`H^0`; (2) each
    dialogue as a DAG (:func:`dialogue_dag`): every utterance's predecessors are the earlier
    utterances back to and including the same speaker's ``speaker_window``-th previous one
    (all earlier ones when the speaker has not spoken that often), at most ``w_past`` back;
    the edge relation is same speaker or other speaker; (3) ``intra_layers`` :class:`DAGLayer`
    layers; (4) the readout :math:`[H^0 \Vert H^1 \Vert \dots \Vert H^L]`, so the utterance's
    own input reaches the heads undiluted, as in DAG-ERC.

    The DAG is built from the batch's dialogue order and speaker ids (``batch.speaker``, the
    local speaker index; utterances are in turn order within a dialogue): **graph edges of the
    builders are ignored**, so any builders (or none) can be configured. The DAG is computed
    for all pairs at once; because a node's state depends on its predecessors' states of the
    same layer, the layers then walk the positions of the padded dialogues in order: a Python
    loop over ``T + L - 1`` steps (:func:`run_dag`: every dialogue of the batch and every layer
    at once, layer ``l`` at position ``step - l``, dialogues leaving the batch once past their
    end). On MELD (batches of 16) a training epoch takes about three times the
    ``hierarchical_gcn`` epoch. An utterance's outputs depend only on earlier utterances of its
    dialogue (causal).

    Our reading, where it differs from the authors' code: the input is the fused projection of
    the FeatureStore's features (their RoBERTa features pass one linear layer); attention
    scores use the relation only through the value transform (DAG-ERC's relation-aware feature
    transformation); predecessors are capped at ``w_past`` (they have no cap) so the cost per
    position stays bounded; ``out.nodes[m]`` is each modality's projected input plus the last
    layer's state (zeros where the modality is missing), what per-modality heads read.

    Context: a corpus of one-utterance dialogues (RAVDESS clips) gives every utterance an empty
    predecessor set, so the body becomes a per-utterance model (:math:`M_i = 0`, the GRUs act
    on the input alone); it trains there, so it does not declare ``NEEDS_CONTEXT`` (see
    :func:`ercgraph.pipeline.check_context`).

    Args:
        in_dims: modality → input feature dimension.
        edge_types: accepted for a uniform constructor; edges are not read.
        num_classes: number of emotion classes (the heads classify).
        hidden: state size.
        intra_layers: number of DAG layers :math:`L` (``model.intra_layers``).
        dropout: dropout probability (projection, between layers, readout).
        max_speakers: size of the local speaker embedding table of the projection.
        fusion: a ``FUSIONS`` name, ``{"name": ..., **options}`` or a module.
        w_past: farthest predecessor in utterances (``model.options.w_past``; -1 = no cap).
        speaker_window: DAG-ERC's :math:`\omega` (``model.options.speaker_window``).

    Shapes:
        input: a :class:`~torch_geometric.data.Batch` of dialogue graphs.
        output: a :class:`ModelOutput` whose ``utterance`` is
            ``[num_utterances, (intra_layers + 1) * hidden]``.
    """

    #: a one-utterance dialogue degrades it to a per-utterance model, which still trains
    NEEDS_CONTEXT = False

    def __init__(
        self,
        in_dims: dict[str, int],
        edge_types: list[EdgeType],
        num_classes: int,
        hidden: int = 128,
        intra_layers: int = 2,
        dropout: float = 0.3,
        max_speakers: int = 9,
        fusion: Any = "mean",
        w_past: int = 10,
        speaker_window: int = 1,
    ) -> None:
        super().__init__()
        for key, value, low in (
            ("intra_layers", intra_layers, 1),
            ("options.w_past", w_past, -1),
            ("options.speaker_window", speaker_window, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ErcgraphError(
                    f"dagerc: model.{key} must be an integer >= {low}, got {value!r}"
                )
        if w_past == 0:
            raise ErcgraphError("dagerc: model.options.w_past=0 leaves no predecessor; use >= 1")
        self.modalities = list(in_dims)
        self.hidden, self.layers = hidden, intra_layers
        self.w_past, self.speaker_window = w_past, speaker_window
        self.project = ModalityProjection(in_dims, hidden, max_speakers, dropout)
        self.fusion = FUSIONS.create(fusion, modalities=self.modalities, dim=hidden)
        width = self.fusion.out_dim
        self.inp = nn.Identity() if width == hidden else nn.Linear(width, hidden)
        self.dag = nn.ModuleList(DAGLayer(hidden) for _ in range(intra_layers))
        self.dropout = nn.Dropout(dropout)
        self.out_dim = (intra_layers + 1) * hidden

    def forward(self, batch: Batch, input_hook: InputHook | None = None) -> ModelOutput:
        """Layer states concatenated per utterance ``[N, out_dim]``.

        ``input_hook(h0, present)`` may replace the projected inputs before the DAG (masking
        heads) and returns them with the node masks it applied.
        """
        x, present, h, masks = project_batch(self.project, batch, self.modalities, input_hook)
        h0 = self.inp(self.fusion(h, present))
        index = batch[self.modalities[0]].batch
        dense, valid = to_dense_batch(h0, index)
        speaker, _ = to_dense_batch(batch.speaker, index)
        adj, same = dialogue_dag(speaker, valid, self.w_past, self.speaker_window)
        # H^0 already had the projection's dropout; deeper layers' inputs get it here
        states = [dense, *run_dag(self.dag, dense, valid, adj, same, self.w_past, self.dropout)]
        last = states[-1][valid]
        utterance = self.dropout(torch.cat([s[valid] for s in states], -1))
        nodes = {
            m: torch.where(present[m][:, None], h[m] + last, torch.zeros_like(last))
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
            f"modalities={self.modalities}, hidden={self.hidden}, layers={self.layers}, "
            f"w_past={self.w_past}, speaker_window={self.speaker_window}"
        )
