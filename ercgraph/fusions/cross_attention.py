"""Cross-attention fusion: multi-head attention across the modality states of one utterance."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ercgraph.errors import ErcgraphError
from ercgraph.fusions.base import Fusion, stack
from ercgraph.registry import FUSIONS


class AttentionBlock(nn.Module):
    """A pre-norm transformer block: ``q + attention(norm(q), norm(keys))``, then
    ``q + feed_forward(norm(q))``. The stack that uses it applies one final layer norm.

    Pre-norm (Xiong et al., "On Layer Normalization in the Transformer Architecture", ICML 2020)
    keeps an identity path from the input to the output of every block. With post-norm blocks,
    M2FNet's stack (a dialogue transformer, then two visual-queried blocks) trained with the
    emotion loss alone stayed at chance on the planted XOR check of bench/methods.py (seed 0);
    pre-norm learns it (99.8, seeds 0-2).

    The feed-forward layer is ``2 * dim`` wide (as M2FNet's dialogue transformers here): at the
    common ``4 * dim``, two blocks cost several times the whole hierarchical GCN step.

    A query row whose keys are all missing gets a zero attention update (instead of the NaN a
    softmax over nothing gives), so it passes through the residual and feed-forward parts only.

    Args:
        dim: the token size.
        heads: attention heads (``dim`` must be divisible by it).
        dropout: dropout probability on the attention weights, inside the feed-forward layer
            and on both residual branches.

    Shapes:
        query: ``[N, Q, dim]``; keys: ``[N, K, dim]``; ``key_missing``: bool ``[N, K]``, True
        where a key must be ignored; output: ``[N, Q, dim]``.
    """

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_query = nn.LayerNorm(dim)
        self.norm_keys = nn.LayerNorm(dim)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(
            nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: Tensor, keys: Tensor, key_missing: Tensor) -> Tensor:
        has_key = ~key_missing.all(dim=1)
        # A row without any key attends to its (zeroed) keys and its update is dropped below:
        # a fully masked softmax would be NaN, and NaN times zero stays NaN.
        mask = key_missing & has_key[:, None]
        kv = self.norm_keys(keys)
        update, _ = self.attn(
            self.norm_query(query), kv, kv, key_padding_mask=mask, need_weights=False
        )
        update = update * has_key[:, None, None].to(update.dtype)
        query = query + self.dropout(update)
        return query + self.dropout(self.ff(self.norm_ff(query)))


@FUSIONS.register("cross_attention")
class CrossAttentionFusion(Fusion):
    r"""Multi-head attention across the modality states of each utterance.

    The modality states of one utterance are its tokens (plus a learned per-modality embedding,
    so attention can tell the modalities apart; our addition). ``layers`` stacked pre-norm blocks
    each run layer norm, attention, residual, layer norm, feed-forward, residual; one layer norm
    closes the stack (the papers do not state the norm placement; pre-norm is our choice, see
    :class:`AttentionBlock`).

    * ``query`` set to a modality name: that modality's state is the only query and the other
      modalities are keys and values in every block (M2FNet's text-queried attention, Chudasama
      et al. 2022; the cross-attention fusion of Foal-Net, Li et al. 2024). The output is the
      query token after the last block and the final layer norm. An utterance whose query
      modality is missing falls back to the mean of its present modality states (unattended);
      one whose query is present but no other modality is gets a zero attention update
      (residual and feed-forward only).
    * ``query`` null: every modality queries all modalities (itself included; self-attention
      over the modality tokens), and the output is the mean of the present modalities' tokens
      after the last block and the final layer norm.

    A missing modality (``present`` False) is zeroed, masked out of the keys and left out of
    every mean, so its values never reach the output. An utterance with no modality present gets
    zeros. ``out_dim`` is ``dim``.

    Args:
        modalities: the modality names.
        dim: the size of each modality's node state.
        query: the querying modality, or None (every modality queries all of them).
        layers: number of stacked attention blocks (≥ 1).
        heads: attention heads; ``dim`` must be divisible by it.
        dropout: dropout inside the blocks.

    Shapes:
        input: ``h[m]`` ``[N, dim]``, ``present[m]`` bool ``[N]``.
        output: ``[N, dim]``.
    """

    def __init__(
        self,
        modalities: list[str],
        dim: int,
        query: str | None = None,
        layers: int = 1,
        heads: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(modalities, dim)
        if query is not None and query not in self.modalities:
            raise ErcgraphError(
                f"cross_attention fusion: query {query!r} is not a modality of the model; "
                f"choose one of {self.modalities} or null (every modality queries)"
            )
        if query is not None and len(self.modalities) < 2:
            raise ErcgraphError(
                f"cross_attention fusion: query {query!r} needs at least one other modality to "
                f"attend to; the model has only {self.modalities} (use query: null)"
            )
        if int(layers) < 1:
            raise ErcgraphError(f"cross_attention fusion: layers must be >= 1, got {layers}")
        if int(heads) < 1 or dim % int(heads) != 0:
            raise ErcgraphError(
                f"cross_attention fusion: heads={heads} must divide the state size dim={dim} "
                f"(model.hidden); choose heads among the divisors of {dim}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ErcgraphError(f"cross_attention fusion: dropout must be in [0, 1), got {dropout}")
        self.query, self.layers, self.heads, self.dropout = query, int(layers), int(heads), dropout
        self.embedding = nn.Parameter(torch.empty(len(self.modalities), dim))
        self.blocks = nn.ModuleList(
            AttentionBlock(dim, self.heads, dropout) for _ in range(self.layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.embedding, std=0.02)

    def forward(self, h: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        x, mask = stack(h, present, self.modalities)  # [N, M, d], [N, M, 1]
        x = torch.where(mask > 0, x, torch.zeros_like(x))  # missing values (even NaN) vanish
        mean = x.sum(1) / mask.sum(1).clamp(min=1.0)
        missing = mask.squeeze(-1) == 0  # [N, M]
        tokens = (x + self.embedding) * mask
        if self.query is None:
            for block in self.blocks:
                tokens = block(tokens, tokens, missing)
            tokens = self.norm(tokens)
            return (tokens * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        q = self.modalities.index(self.query)
        others = [i for i in range(len(self.modalities)) if i != q]
        out, keys = tokens[:, q : q + 1], tokens[:, others]
        for block in self.blocks:
            out = block(out, keys, missing[:, others])
        return torch.where(missing[:, q, None], mean, self.norm(out).squeeze(1))

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, query={self.query!r}, layers={self.layers}, "
            f"heads={self.heads}, dropout={self.dropout}"
        )
