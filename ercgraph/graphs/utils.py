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
    owner = torch.repeat_interleave(torch.arange(counts.numel()), counts, output_size=total)
    # value = lo[owner] + (position inside the run) = arange + (lo - run start)[owner]
    shift = lo - (counts.cumsum(0) - counts)
    return owner, torch.arange(total).add_(shift.index_select(0, owner))


def window_pairs(dialogues: Dialogues, w_past: int, w_future: int) -> Tensor:
    """All ordered pairs ``j -> i`` with ``j != i`` in the same dialogue and ``j`` in i's window.

    The window of utterance ``i`` spans ``w_past`` utterances before it and ``w_future`` after
    it (``-1`` = to the start / end of the dialogue, ``0`` = none).

    Returns:
        ``LongTensor [2, E]`` of global indices ``(src=j, dst=i)``, sorted by ``(dst, src)``.
    """
    i = torch.arange(dialogues.num_utterances)
    batch = dialogues.batch
    if w_past == 0:
        lo = i + 1
    elif w_past < 0:
        lo = dialogues.ptr[:-1].index_select(0, batch)
    else:
        lo = torch.maximum(i - w_past, dialogues.ptr[:-1].index_select(0, batch))
    if w_future == 0:
        hi = i
    elif w_future < 0:
        hi = dialogues.ptr[1:].index_select(0, batch)
    else:
        hi = torch.minimum(i + (w_future + 1), dialogues.ptr[1:].index_select(0, batch))
    if w_past == 0 or w_future == 0:  # one side of i only: a plain range per utterance
        dst, src = ragged_ranges(lo, hi)
    else:  # [lo, hi) minus i itself: enumerate hi - lo - 1 values and step over i
        dst, src = ragged_ranges(lo, hi - 1)
        src += src >= dst
    return torch.stack([src, dst])


def window_edge_count(sizes: Tensor, w: int) -> Tensor:
    """How many edges one side of a context window gives each dialogue, without building them.

    In a dialogue of ``n`` utterances, a past window of ``w`` gives utterance ``i`` an edge
    from each of ``min(i, w)`` earlier ones, ``sum_i min(i, w) = w n - w (w + 1) / 2`` edges in
    all with ``w`` clamped to ``n - 1`` (``-1`` = the whole dialogue: ``n (n - 1) / 2``). A
    future window gives the same count by symmetry.

    Args:
        sizes: ``LongTensor [D]``, utterances per dialogue.
        w: The window size (``-1`` = whole dialogue, ``0`` = none).

    Returns:
        ``LongTensor [D]``: the edge count of each dialogue (what :func:`window_pairs` would
        produce for that side).
    """
    sizes = sizes.long()
    if w == 0:
        return torch.zeros_like(sizes)
    last = (sizes - 1).clamp_min(0)
    w = last if w < 0 else last.clamp_max(w)
    return w * sizes - w * (w + 1) // 2


def estimate_window_edges(
    dialogues: Dialogues, w_past: int, w_future: int, cap: int | None = None
) -> Tensor:
    """Edges per dialogue of one relation set over both window sides, per modality copy.

    Args:
        dialogues: The batch (only its dialogue sizes and modalities are read).
        w_past: Past window (``-1`` = whole dialogue, ``0`` = none).
        w_future: Future window.
        cap: If given, count as if every non-empty window were at most ``cap`` wide.

    Returns:
        ``LongTensor [D]``: edges per dialogue, summed over both sides and every modality.
    """
    total = torch.zeros_like(dialogues.sizes)
    for w in (w_past, w_future):
        if w != 0 and cap is not None and (w < 0 or w > cap):
            w = cap
        total += window_edge_count(dialogues.sizes, w)
    return total * len(dialogues.modalities)


def check_window(builder: str, name: str, value: object) -> int:
    """Validate a window size (an int >= -1) and return it.

    Raises:
        ErcgraphError: naming the builder and argument.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise ErcgraphError(
            f"{builder}: {name} must be an integer >= -1 (-1 = whole dialogue, 0 = none), "
            f"got {value!r}"
        )
    return value
