"""Vectorised helpers for writing graph builders (ragged ranges and context windows).

Everything here is tensor code over the whole flat batch: ``arange``, ``repeat_interleave`` and
masks, with a cost linear in the number of edges produced.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ercgraph.errors import ErcgraphError
from ercgraph.graphs.base import Dialogues


def ragged_ranges(lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Enumerate the integers ``lo[k] <= v < hi[k]`` for every ``k`` at once.

    Args:
        lo: ``LongTensor [K]``, inclusive lower bounds.
        hi: ``LongTensor [K]``, exclusive upper bounds (an empty range where ``hi <= lo``).

    Returns:
        ``(owner, value)``, two ``LongTensor [sum(hi - lo)]``: the range ``k`` each value comes
        from, and the value. Ordered by owner, then value.
    """
    counts = (hi - lo).clamp_min(0)
    total = int(counts.sum())
    owner = torch.repeat_interleave(torch.arange(lo.numel()), counts, output_size=total)
    starts = counts.cumsum(0) - counts
    value = torch.arange(total) + (lo - starts)[owner]
    return owner, value


def window_pairs(dialogues: Dialogues, w_past: int, w_future: int) -> Tensor:
    """All ordered pairs ``j -> i`` with ``j != i`` in the same dialogue and ``j`` in i's window.

    The window of utterance ``i`` spans ``w_past`` utterances before it and ``w_future`` after
    it (``-1`` = to the start / end of the dialogue, ``0`` = none).

    Returns:
        ``LongTensor [2, E]`` of global indices ``(src=j, dst=i)``, sorted by ``(dst, src)``.
    """
    n = dialogues.num_utterances
    i = torch.arange(n)
    batch = dialogues.batch
    start = dialogues.ptr[:-1][batch]
    end = dialogues.ptr[1:][batch]
    lo = start if w_past < 0 else torch.maximum(i - w_past, start)
    hi = end if w_future < 0 else torch.minimum(i + w_future + 1, end)
    dst, src = ragged_ranges(lo, hi)
    keep = src != dst
    return torch.stack([src[keep], dst[keep]])


def check_window(builder: str, name: str, value: object) -> int:
    """Validate a window size (an int >= -1) and return it.

    Raises:
        ErcgraphError: naming the builder and argument.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise ErcgraphError(
            f"{builder}: {name} must be an integer >= -1 (-1 = whole dialogue, 0 = none), "
            f"got {value!r}")
    return value
