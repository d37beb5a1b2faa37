"""Test helpers for the graph tests: a naive per-edge reference builder and edge-set views."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ercgraph.graphs.base import Dialogues


def naive_pairs(
    dialogues: Dialogues, w_past: int, w_future: int, label: Callable[[int, int], str | None]
) -> dict[str, set[tuple[int, int]]]:
    """Reference: nested Python loops over dialogues and utterance pairs (DialogueGCN style).

    ``label(j, i)`` names the relation of edge ``j -> i`` (None = no edge).
    """
    out: dict[str, set[tuple[int, int]]] = {}
    ptr = dialogues.ptr.tolist()
    for d in range(len(ptr) - 1):
        start, end = ptr[d], ptr[d + 1]
        for i in range(start, end):
            lo = start if w_past < 0 else max(start, i - w_past)
            hi = end - 1 if w_future < 0 else min(end - 1, i + w_future)
            for j in range(lo, hi + 1):
                if j == i:
                    continue
                rel = label(j, i)
                if rel is not None:
                    out.setdefault(rel, set()).add((j, i))
    return out


def edge_set(ei: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, ei.t().tolist()))


def is_sorted_by_dst_src(ei: torch.Tensor) -> bool:
    """True when edges are ordered by (dst, src) without repeats."""
    if ei.shape[1] < 2:
        return True
    key = ei[1] * (int(ei.max()) + 1) + ei[0]
    return bool((key[1:] > key[:-1]).all())
