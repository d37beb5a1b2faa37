"""Cross-modal edges: the nodes of one utterance in different modalities exchange messages."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ercgraph.errors import ErcgraphError
from ercgraph.graphs.base import Dialogues, EdgeDict, GraphBuilder
from ercgraph.registry import BUILDERS


@BUILDERS.register("modality")
class ModalityBuilder(GraphBuilder):
    """``cross_modal`` edges between the nodes of the same utterance, in both directions.

    For every chosen modality pair ``(a, b)``, node ``i`` of ``a`` sends to node ``i`` of ``b``
    and back, as in MMGCN (Hu et al. 2021). With a single modality nothing is produced.

    Args:
        pairs: Modality pairs to link, e.g. ``[["text", "audio"]]``; ``None`` links every pair of
            the batch's modalities. A pair naming a modality the batch lacks is an error.
    """

    EDGE_TYPES = ("cross_modal",)
    SORTED_OUTPUT = True

    def __init__(self, pairs: Sequence[Sequence[str]] | None = None) -> None:
        if pairs is not None:
            norm = []
            for pair in pairs:
                if (
                    isinstance(pair, str)
                    or len(pair) != 2
                    or not all(isinstance(m, str) for m in pair)
                    or pair[0] == pair[1]
                ):
                    raise ErcgraphError(
                        f"ModalityBuilder: each entry of pairs must be two different modality "
                        f"names like ['text', 'audio'], got {pair!r}"
                    )
                norm.append([pair[0], pair[1]])
            pairs = norm
        self.pairs = pairs

    def directed_pairs(self, modalities: Sequence[str]) -> list[tuple[str, str]]:
        """The ordered ``(src, dst)`` modality pairs linked for a batch with ``modalities``."""
        if self.pairs is None:
            return [(a, b) for a in modalities for b in modalities if a != b]
        out: list[tuple[str, str]] = []
        for a, b in self.pairs:
            for m in (a, b):
                if m not in modalities:
                    raise ErcgraphError(
                        f"{self!r}: pair {[a, b]} names modality {m!r}, but the features have "
                        f"{list(modalities)}"
                    )
            for pair in ((a, b), (b, a)):
                if pair not in out:
                    out.append(pair)
        return out

    def estimate_edges(self, dialogues: Dialogues, cap: int | None = None) -> Tensor:
        # one edge per utterance and linked modality pair; no context window to cap
        return dialogues.sizes * len(self.directed_pairs(dialogues.modalities))

    def forward(self, dialogues: Dialogues) -> EdgeDict:
        pairs = self.directed_pairs(dialogues.modalities)
        if not pairs:
            return {}
        i = torch.arange(dialogues.num_utterances)
        ei = torch.stack([i, i])
        return {(a, "cross_modal", b): ei for a, b in pairs}
