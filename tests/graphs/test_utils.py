"""Vectorised helpers: ragged ranges, context windows and window validation."""

from __future__ import annotations

import pytest
import torch

from ercgraph.errors import ErcgraphError
from ercgraph.graphs.base import Dialogues
from ercgraph.graphs.utils import check_window, ragged_ranges, window_edge_count, window_pairs

from .helpers import edge_set, is_sorted_by_dst_src, naive_pairs


def test_ragged_ranges_exact() -> None:
    owner, value = ragged_ranges(torch.tensor([2, 5, 0, 7]), torch.tensor([4, 5, 3, 6]))
    assert owner.tolist() == [0, 0, 2, 2, 2]
    assert value.tolist() == [2, 3, 0, 1, 2]


def test_ragged_ranges_empty() -> None:
    owner, value = ragged_ranges(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    assert owner.numel() == value.numel() == 0


@pytest.mark.parametrize("seed", range(5))
def test_window_pairs_matches_naive_on_random_dialogues(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.randint(0, 9, (12,), generator=gen).tolist()
    d = Dialogues.from_sequences([list(range(n)) for n in sizes])
    for w_past in (-1, 0, 1, 3):
        for w_future in (-1, 0, 2):
            ei = window_pairs(d, w_past, w_future)
            ref = naive_pairs(d, w_past, w_future, lambda j, i: "any")
            assert edge_set(ei) == ref.get("any", set()), (w_past, w_future)
            assert ei.shape[1] == len(ref.get("any", ())) and is_sorted_by_dst_src(ei)


def test_empty_batch() -> None:
    d = Dialogues(torch.zeros(0, dtype=torch.long), torch.zeros(1, dtype=torch.long))
    assert window_pairs(d, -1, -1).shape == (2, 0)


@pytest.mark.parametrize("value", [-1, 0, 7])
def test_check_window_accepts(value: int) -> None:
    assert check_window("B", "w", value) == value


def test_check_window_names_builder_and_argument() -> None:
    with pytest.raises(
        ErcgraphError,
        match=r"MyBuilder: w_future must be an integer >= -1 .*"
        r"got -3",
    ):
        check_window("MyBuilder", "w_future", -3)


@pytest.mark.parametrize("w", [-1, 0, 1, 2, 5, 100])
def test_window_edge_count_is_the_closed_form_of_window_pairs(w: int) -> None:
    sizes = [0, 1, 2, 3, 7, 12]
    d = Dialogues.from_sequences([list(range(n)) for n in sizes])
    for w_past, w_future in ((w, 0), (0, w)):
        ei = window_pairs(d, w_past, w_future) if w else torch.zeros(2, 0, dtype=torch.long)
        built = torch.bincount(d.batch[ei[1]], minlength=len(sizes))
        assert window_edge_count(d.sizes, w).tolist() == built.tolist()


def test_window_edge_count_of_a_long_dialogue_needs_no_edges() -> None:
    assert window_edge_count(torch.tensor([5000]), -1).tolist() == [5000 * 4999 // 2]
    assert window_edge_count(torch.tensor([5000]), 10).tolist() == [10 * 5000 - 55]
