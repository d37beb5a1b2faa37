"""TemporalBuilder: past/future edges inside a window, never across dialogues."""

from __future__ import annotations

import pytest
import torch

from ercgraph.errors import ErcgraphError
from ercgraph.graphs.base import Dialogues
from ercgraph.graphs.temporal import TemporalBuilder
from ercgraph.registry import BUILDERS

from .helpers import edge_set, is_sorted_by_dst_src, naive_pairs


@pytest.fixture
def two_dialogues() -> Dialogues:
    # dialogue 0: utterances 0..3, dialogue 1: utterances 4..5
    return Dialogues.from_sequences([["A", "B", "A", "C"], ["D", "E"]])


def test_whole_dialogue_exact_edges(two_dialogues: Dialogues) -> None:
    out = TemporalBuilder()(two_dialogues)
    assert list(out) == [("text", "past", "text"), ("text", "future", "text")]
    past = out[("text", "past", "text")]
    # j -> i with j < i, sorted by (dst, src)
    assert past.tolist() == [[0, 0, 1, 0, 1, 2, 4], [1, 2, 2, 3, 3, 3, 5]]
    future = out[("text", "future", "text")]
    assert future.tolist() == [[1, 2, 3, 2, 3, 3, 5], [0, 0, 0, 1, 1, 2, 4]]
    assert past.dtype == torch.long


def test_windows(two_dialogues: Dialogues) -> None:
    out = TemporalBuilder(w_past=1, w_future=2)(two_dialogues)
    assert edge_set(out[("text", "past", "text")]) == {(0, 1), (1, 2), (2, 3), (4, 5)}
    assert edge_set(out[("text", "future", "text")]) == {
        (1, 0),
        (2, 0),
        (2, 1),
        (3, 1),
        (3, 2),
        (5, 4),
    }


def test_zero_window_drops_the_relation(two_dialogues: Dialogues) -> None:
    builder = TemporalBuilder(w_past=2, w_future=0)
    assert builder.edge_types == ("past",)
    out = builder(two_dialogues)
    assert list(out) == [("text", "past", "text")]
    assert TemporalBuilder(0, 0).edge_types == ()
    assert TemporalBuilder(0, 0)(two_dialogues) == {}


def test_every_modality_gets_the_same_edges() -> None:
    d = Dialogues.from_sequences([["A", "B", "C"]], modalities=("text", "audio", "visual"))
    out = TemporalBuilder(w_past=1, w_future=1)(d)
    assert {k for k in out} == {
        (m, r, m) for m in ("text", "audio", "visual") for r in ("past", "future")
    }
    assert out[("audio", "past", "audio")].tolist() == [[0, 1], [1, 2]]


def test_single_utterance_and_empty_dialogues() -> None:
    d = Dialogues(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1, 3]))
    out = TemporalBuilder()(d)
    assert out[("text", "past", "text")].tolist() == [[1], [2]]
    assert out[("text", "future", "text")].tolist() == [[2], [1]]


def test_repr_lists_arguments() -> None:
    assert repr(TemporalBuilder()) == "TemporalBuilder(w_past=-1, w_future=-1)"
    assert (
        repr(BUILDERS.create({"name": "temporal", "w_past": 3, "w_future": 0}))
        == "TemporalBuilder(w_past=3, w_future=0)"
    )


@pytest.mark.parametrize("bad", [-2, 1.5, "4", True, None])
def test_bad_window_is_a_clear_error(bad: object) -> None:
    with pytest.raises(ErcgraphError, match="w_past must be an integer >= -1"):
        TemporalBuilder(w_past=bad)


def test_unknown_argument_names_the_allowed_ones() -> None:
    with pytest.raises(ErcgraphError, match="unknown argument 'window'.*w_past, w_future"):
        BUILDERS.create({"name": "temporal", "window": 3})


@pytest.mark.parametrize(("w_past", "w_future"), [(-1, -1), (4, 4), (10, 0), (0, 2)])
def test_matches_naive_loop_on_meld_dev(
    meld_dialogues: Dialogues, w_past: int, w_future: int
) -> None:
    out = TemporalBuilder(w_past, w_future)(meld_dialogues)
    ref = naive_pairs(meld_dialogues, w_past, w_future, lambda j, i: "past" if j < i else "future")
    got = {rel: edge_set(ei) for (_, rel, _), ei in out.items()}
    assert all(is_sorted_by_dst_src(ei) for ei in out.values())
    assert got == {rel: ref.get(rel, set()) for rel in got}
    assert set(ref) <= set(got)
    # the whole-dialogue config on MELD dev is not trivial
    if w_past == -1:
        assert len(got["past"]) == sum(n * (n - 1) // 2 for n in meld_dialogues.sizes.tolist())


@pytest.mark.parametrize("args", [(-1, -1), (1, 0), (0, 2), (3, -1), (0, 0)])
@pytest.mark.parametrize("cap", [None, 1, 2])
def test_estimate_edges_counts_what_is_built(args: tuple, cap: int | None) -> None:
    d = Dialogues.from_sequences(
        [["A", "B", "A", "C", "B"], [], ["D"], ["E", "F", "E"]], modalities=("text", "audio")
    )
    builder = TemporalBuilder(*args)
    if cap is not None:  # what the builder would build with every window capped at cap
        capped = [w if w == 0 or 0 < w <= cap else cap for w in args[:2]]
        reference = TemporalBuilder(*capped, *args[2:])
    else:
        reference = builder
    built = torch.zeros(d.num_dialogues, dtype=torch.long)
    for ei in reference(d).values():
        built += torch.bincount(d.batch[ei[1]], minlength=d.num_dialogues)
    assert builder.estimate_edges(d, cap=cap).tolist() == built.tolist()
