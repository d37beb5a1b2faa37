"""SpeakerBuilder: same/other speaker pairs, optionally crossed with direction."""

from __future__ import annotations

import pytest
import torch

from ercgraph.errors import ErcgraphError
from ercgraph.graphs.base import Dialogues
from ercgraph.graphs.speaker import SpeakerBuilder

from .helpers import edge_set, is_sorted_by_dst_src, naive_pairs


@pytest.fixture
def dialogues() -> Dialogues:
    # dialogue 0: A B A B (utterances 0..3); dialogue 1: C C (4, 5)
    return Dialogues.from_sequences([["A", "B", "A", "B"], ["C", "C"]])


def test_undirected_exact_edges(dialogues: Dialogues) -> None:
    out = SpeakerBuilder()(dialogues)
    assert list(out) == [("text", "same_speaker", "text"), ("text", "other_speaker", "text")]
    assert edge_set(out[("text", "same_speaker", "text")]) == {
        (0, 2),
        (2, 0),
        (1, 3),
        (3, 1),
        (4, 5),
        (5, 4),
    }
    assert edge_set(out[("text", "other_speaker", "text")]) == {
        (0, 1),
        (1, 0),
        (0, 3),
        (3, 0),
        (1, 2),
        (2, 1),
        (2, 3),
        (3, 2),
    }


def test_directed_relations(dialogues: Dialogues) -> None:
    out = SpeakerBuilder(directed=True)(dialogues)
    got = {rel: edge_set(ei) for (_, rel, _), ei in out.items()}
    assert got == {
        "same_speaker_past": {(0, 2), (1, 3), (4, 5)},
        "same_speaker_future": {(2, 0), (3, 1), (5, 4)},
        "other_speaker_past": {(0, 1), (0, 3), (1, 2), (2, 3)},
        "other_speaker_future": {(1, 0), (3, 0), (2, 1), (3, 2)},
    }


def test_window_limits_pairs(dialogues: Dialogues) -> None:
    out = SpeakerBuilder(w_past=1, w_future=0, directed=True)(dialogues)
    assert SpeakerBuilder(w_past=1, w_future=0, directed=True).edge_types == (
        "same_speaker_past",
        "other_speaker_past",
    )
    got = {rel: edge_set(ei) for (_, rel, _), ei in out.items()}
    assert got == {"same_speaker_past": {(4, 5)}, "other_speaker_past": {(0, 1), (1, 2), (2, 3)}}


def test_zero_windows_produce_nothing(dialogues: Dialogues) -> None:
    for directed in (False, True):
        builder = SpeakerBuilder(0, 0, directed=directed)
        assert builder.edge_types == ()
        assert builder(dialogues) == {}


def test_edge_types_declares_all_six() -> None:
    assert set(SpeakerBuilder.EDGE_TYPES) == {
        "same_speaker",
        "other_speaker",
        "same_speaker_past",
        "same_speaker_future",
        "other_speaker_past",
        "other_speaker_future",
    }
    assert SpeakerBuilder().edge_types == ("same_speaker", "other_speaker")


def test_repr_lists_arguments() -> None:
    assert (
        repr(SpeakerBuilder(4, 2, directed=True))
        == "SpeakerBuilder(w_past=4, w_future=2, directed=True)"
    )


def test_directed_must_be_bool() -> None:
    with pytest.raises(ErcgraphError, match="directed must be true or false"):
        SpeakerBuilder(directed="yes")


@pytest.mark.parametrize(
    ("w_past", "w_future", "directed"),
    [(-1, -1, False), (-1, -1, True), (10, 10, True), (3, 0, False)],
)
def test_matches_naive_loop_on_meld_dev(
    meld_dialogues: Dialogues, w_past: int, w_future: int, directed: bool
) -> None:
    speaker = meld_dialogues.speaker.tolist()

    def label(j: int, i: int) -> str:
        rel = "same_speaker" if speaker[j] == speaker[i] else "other_speaker"
        if directed:
            rel += "_past" if j < i else "_future"
        return rel

    out = SpeakerBuilder(w_past, w_future, directed)(meld_dialogues)
    ref = naive_pairs(meld_dialogues, w_past, w_future, label)
    got = {rel: edge_set(ei) for (_, rel, _), ei in out.items()}
    assert all(is_sorted_by_dst_src(ei) for ei in out.values())
    assert set(ref) <= set(got)
    assert got == {rel: ref.get(rel, set()) for rel in got}
    assert sum(map(len, got.values())) > 2_000


@pytest.mark.parametrize(
    "args", [(-1, -1, False), (1, 0, True), (2, 3, True), (0, 2, False), (0, 0, True)]
)
@pytest.mark.parametrize("cap", [None, 1, 2])
def test_estimate_edges_counts_what_is_built(args: tuple, cap: int | None) -> None:
    d = Dialogues.from_sequences(
        [["A", "B", "A", "C", "B"], [], ["D"], ["E", "F", "E"]], modalities=("text", "audio")
    )
    builder = SpeakerBuilder(*args)
    if cap is not None:  # what the builder would build with every window capped at cap
        capped = [w if w == 0 or 0 < w <= cap else cap for w in args[:2]]
        reference = SpeakerBuilder(*capped, *args[2:])
    else:
        reference = builder
    built = torch.zeros(d.num_dialogues, dtype=torch.long)
    for ei in reference(d).values():
        built += torch.bincount(d.batch[ei[1]], minlength=d.num_dialogues)
    assert builder.estimate_edges(d, cap=cap).tolist() == built.tolist()
