"""Temporal edges: each utterance receives from the utterances around it in its dialogue."""

from __future__ import annotations

from torch import Tensor

from ercgraph.graphs.base import Dialogues, IntraModalBuilder
from ercgraph.graphs.utils import check_window, estimate_window_edges, window_pairs
from ercgraph.registry import BUILDERS


@BUILDERS.register("temporal")
class TemporalBuilder(IntraModalBuilder):
    """``past`` and ``future`` edges inside a context window, within each modality.

    Utterance ``i`` receives a ``past`` edge from each of the ``w_past`` utterances before it and
    a ``future`` edge from each of the ``w_future`` utterances after it, never across dialogues
    (the context window of DialogueGCN, Ghosal et al. 2019, split by direction).

    Args:
        w_past: Past window size; ``-1`` = the whole dialogue so far, ``0`` = no past edges.
        w_future: Future window size; ``-1`` = the rest of the dialogue, ``0`` = no future edges.

    Example:
        For one dialogue of three utterances, ``TemporalBuilder(w_past=1, w_future=0)`` gives
        ``{("text", "past", "text"): tensor([[0, 1], [1, 2]])}`` (edges 0 -> 1 and 1 -> 2).
    """

    EDGE_TYPES = ("past", "future")
    PAIR_RULES = {"past": ("past",), "future": ("future",)}
    SORTED_OUTPUT = True

    def __init__(self, w_past: int = -1, w_future: int = -1) -> None:
        self.w_past = check_window(type(self).__name__, "w_past", w_past)
        self.w_future = check_window(type(self).__name__, "w_future", w_future)

    @property
    def edge_types(self) -> tuple[str, ...]:
        return tuple(r for r, w in (("past", self.w_past), ("future", self.w_future)) if w != 0)

    def estimate_edges(self, dialogues: Dialogues, cap: int | None = None) -> Tensor:
        return estimate_window_edges(dialogues, self.w_past, self.w_future, cap)

    def forward_relations(self, dialogues: Dialogues) -> dict[str, Tensor]:
        out = {}
        if self.w_past != 0:
            out["past"] = window_pairs(dialogues, self.w_past, 0)
        if self.w_future != 0:
            out["future"] = window_pairs(dialogues, 0, self.w_future)
        return out
