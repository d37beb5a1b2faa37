"""Speaker edges: pairs of utterances labelled by whether the same person spoke both."""

from __future__ import annotations

import torch
from torch import Tensor

from ercgraph.errors import ErcgraphError
from ercgraph.graphs.base import Dialogues, IntraModalBuilder
from ercgraph.graphs.utils import check_window, estimate_window_edges, window_pairs
from ercgraph.registry import BUILDERS


@BUILDERS.register("speaker")
class SpeakerBuilder(IntraModalBuilder):
    """``same_speaker`` / ``other_speaker`` edges inside a context window, within each modality.

    Every pair ``j -> i`` (``j != i``) of one dialogue with ``j`` inside the window of ``i`` gets
    ``same_speaker`` when both utterances have the same speaker, else ``other_speaker``. With
    ``directed=True`` the relation is crossed with the direction of the edge
    (``same_speaker_past``, ``same_speaker_future``, ``other_speaker_past``,
    ``other_speaker_future``). This is our reading of DialogueGCN's (Ghosal et al. 2019)
    speaker-pair x direction relations that keeps the number of relations fixed: DialogueGCN
    uses one relation per ordered pair of speakers and direction (``2 M^2`` for ``M`` speakers).

    Args:
        w_past: Past window size; ``-1`` = the whole dialogue so far, ``0`` = none.
        w_future: Future window size; ``-1`` = the rest of the dialogue, ``0`` = none.
        directed: Cross the speaker relation with the direction (past / future).
    """

    EDGE_TYPES = (
        "same_speaker",
        "other_speaker",
        "same_speaker_past",
        "same_speaker_future",
        "other_speaker_past",
        "other_speaker_future",
    )
    PAIR_RULES = {
        "same_speaker": ("same_speaker",),
        "other_speaker": ("other_speaker",),
        "same_speaker_past": ("same_speaker", "past"),
        "same_speaker_future": ("same_speaker", "future"),
        "other_speaker_past": ("other_speaker", "past"),
        "other_speaker_future": ("other_speaker", "future"),
    }
    SORTED_OUTPUT = True

    def __init__(self, w_past: int = -1, w_future: int = -1, directed: bool = False) -> None:
        self.w_past = check_window(type(self).__name__, "w_past", w_past)
        self.w_future = check_window(type(self).__name__, "w_future", w_future)
        if not isinstance(directed, bool):
            raise ErcgraphError(f"SpeakerBuilder: directed must be true or false, got {directed!r}")
        self.directed = directed

    @property
    def edge_types(self) -> tuple[str, ...]:
        if not self.directed:
            return ("same_speaker", "other_speaker") if self.w_past or self.w_future else ()
        dirs = [d for d, w in (("past", self.w_past), ("future", self.w_future)) if w != 0]
        return tuple(f"{s}_{d}" for s in ("same_speaker", "other_speaker") for d in dirs)

    def estimate_edges(self, dialogues: Dialogues, cap: int | None = None) -> Tensor:
        # every window pair gets exactly one relation, directed or not
        return estimate_window_edges(dialogues, self.w_past, self.w_future, cap)

    def forward_relations(self, dialogues: Dialogues) -> dict[str, Tensor]:
        if not self.edge_types:
            return {}
        if not self.directed:
            return _split(
                window_pairs(dialogues, self.w_past, self.w_future), dialogues.speaker, ""
            )
        out: dict[str, Tensor] = {}
        if self.w_past != 0:
            out.update(_split(window_pairs(dialogues, self.w_past, 0), dialogues.speaker, "_past"))
        if self.w_future != 0:
            out.update(
                _split(window_pairs(dialogues, 0, self.w_future), dialogues.speaker, "_future")
            )
        return out


def _split(ei: Tensor, speaker: Tensor, suffix: str) -> dict[str, Tensor]:
    """Split edges into same / other speaker, keeping their (dst, src) order."""
    src, dst = ei[0], ei[1]
    other = (speaker.index_select(0, src) != speaker.index_select(0, dst)).to(torch.uint8)
    # One stable sort of a 0/1 key groups the edges and keeps (dst, src) order inside each
    # group; it is several times faster than two boolean compactions.
    order = torch.argsort(other, stable=True)
    num_same = ei.shape[1] - int(other.sum())
    out = {}
    for name, part in (("same_speaker", order[:num_same]), ("other_speaker", order[num_same:])):
        # 1-D gathers are much faster than index_select along dim 1 of a [2, E] tensor
        out[name + suffix] = torch.stack([src.index_select(0, part), dst.index_select(0, part)])
    return out
