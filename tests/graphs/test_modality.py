"""ModalityBuilder: cross-modal edges between the nodes of one utterance."""

from __future__ import annotations

import pytest

from ercgraph.errors import ErcgraphError
from ercgraph.graphs.base import Dialogues
from ercgraph.graphs.modality import ModalityBuilder
from ercgraph.registry import BUILDERS

MODS = ("text", "audio", "visual")


@pytest.fixture
def dialogues() -> Dialogues:
    return Dialogues.from_sequences([["A", "B"], ["C"]], modalities=MODS)


def test_all_pairs_both_directions(dialogues: Dialogues) -> None:
    out = ModalityBuilder()(dialogues)
    assert set(out) == {(a, "cross_modal", b) for a in MODS for b in MODS if a != b}
    for ei in out.values():
        assert ei.tolist() == [[0, 1, 2], [0, 1, 2]]


def test_chosen_pairs(dialogues: Dialogues) -> None:
    out = BUILDERS.create({"name": "modality", "pairs": [["text", "audio"]]})(dialogues)
    assert list(out) == [("text", "cross_modal", "audio"), ("audio", "cross_modal", "text")]


def test_reversed_duplicate_pair_is_merged(dialogues: Dialogues) -> None:
    out = ModalityBuilder(pairs=[("text", "visual"), ("visual", "text")])(dialogues)
    assert list(out) == [("text", "cross_modal", "visual"), ("visual", "cross_modal", "text")]


def test_single_modality_produces_nothing() -> None:
    assert ModalityBuilder()(Dialogues.from_sequences([["A", "B"]])) == {}


def test_pair_with_a_missing_modality_is_an_error(dialogues: Dialogues) -> None:
    with pytest.raises(ErcgraphError, match="names modality 'video', but the features have"):
        ModalityBuilder(pairs=[["text", "video"]])(dialogues)


@pytest.mark.parametrize("pairs", [["text", "audio"], [["text"]], [["text", "text"]], [[1, 2]]])
def test_malformed_pairs(pairs: object) -> None:
    with pytest.raises(ErcgraphError, match="each entry of pairs must be two different"):
        ModalityBuilder(pairs=pairs)


def test_repr_lists_arguments() -> None:
    assert repr(ModalityBuilder()) == "ModalityBuilder(pairs=None)"
    assert (
        repr(ModalityBuilder(pairs=[("text", "audio")]))
        == "ModalityBuilder(pairs=[['text', 'audio']])"
    )


def test_on_meld_dev(meld_dialogues: Dialogues) -> None:
    d = Dialogues(meld_dialogues.speaker, meld_dialogues.ptr, ("text", "audio"))
    out = ModalityBuilder()(d)
    n = d.num_utterances
    for ei in out.values():
        assert ei.shape == (2, n)
        assert (ei[0] == ei[1]).all()


@pytest.mark.parametrize(("pairs", "linked"), [(None, 6), ([["text", "audio"]], 2)])
def test_estimate_edges_counts_what_is_built(dialogues: Dialogues, pairs, linked: int) -> None:
    builder = ModalityBuilder(pairs)
    assert len(builder(dialogues)) == linked
    assert builder.estimate_edges(dialogues).tolist() == [2 * linked, linked]
    assert builder.estimate_edges(dialogues, cap=1).tolist() == [2 * linked, linked]  # no window
