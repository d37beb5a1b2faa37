"""Speaker edges: pairs of utterances labelled by whether the same person spoke both."""

from __future__ import annotations

from torch import Tensor

from ercgraph.errors import ErcgraphError
from ercgraph.graphs.base import Dialogues, IntraModalBuilder
from ercgraph.graphs.utils import check_window, window_pairs
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

    EDGE_TYPES = ("same_speaker", "other_speaker", "same_speaker_past", "same_speaker_future",
                  "other_speaker_past", "other_speaker_future")

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

    def forward_relations(self, dialogues: Dialogues) -> dict[str, Tensor]:
        if not self.edge_types:
            return {}
        ei = window_pairs(dialogues, self.w_past, self.w_future)
        speaker = dialogues.speaker
        same = speaker[ei[0]] == speaker[ei[1]]
        if not self.directed:
            return {"same_speaker": ei[:, same], "other_speaker": ei[:, ~same]}
        past = ei[0] < ei[1]
        out = {}
        for name, mask in (("same_speaker", same), ("other_speaker", ~same)):
            if self.w_past != 0:
                out[f"{name}_past"] = ei[:, mask & past]
            if self.w_future != 0:
                out[f"{name}_future"] = ei[:, mask & ~past]
        return out
