"""Graph construction speed on all of MELD: vectorised builders vs a per-edge Python loop.

The baseline is the way DialogueGCN / COGMEN-style code builds edges: for each dialogue, for each
utterance ``i``, for each ``j`` in its window, append the edge ``(j, i)`` to the Python list of
its relation, then turn the lists into ``edge_index`` tensors (a lean rewrite of that pattern
without their per-edge torch calls, so a conservative baseline). Like for like: both sides
build an intra-modal relation once and share that tensor across modalities, and the cross-modal
self edges once for every modality pair; the edge sets, the sharing and the number of edges
built are asserted identical. Both are measured in the same run (best of several repeats) on the
same dialogues.

Configurations (temporal past/future + speaker crossed with direction, as DialogueGCN):
  * whole dialogue: windows -1/-1, text nodes;
  * window 10/10 (DialogueGCN's default), text nodes;
  * window 10/10 with text, audio and visual nodes plus cross-modal edges (MMGCN-style).

Columns: edges in the graph (``edges``, a shared tensor counted once per edge type) and edges
built (``edges_built``, each shared tensor once); vectorised seconds for the edges alone
(``build_edges``) and for the full ``build_graphs`` (one HeteroData per dialogue, synthetic
features, no cache); ``build_graphs`` with a warm edge cache; naive-loop seconds; speedup =
naive / vectorised edges. Targets: speedup >= 50x and the full build of all MELD under 1 s.

Both sides run on one core by default (``--threads 1``): the loop is single-threaded, and on a
small shared machine torch's intra-op threads mostly add contention at these tensor sizes.

Usage: python bench/graph_speed.py [--repeats 7] [--naive-repeats 3] [--threads 1]
Writes bench/results/graph_speed.json (with bench/common.py's write_result) and prints a markdown
table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

try:
    from bench.common import best_of, data_root, peak_rss_mb, print_table, write_result
except ImportError:  # run as a script: bench/ itself is on sys.path
    from common import best_of, data_root, peak_rss_mb, print_table, write_result

from ercgraph.config import Config
from ercgraph.data.corpus import Corpus
from ercgraph.data.features import FeatureStore
from ercgraph.data.load import load_corpus
from ercgraph.graphs.base import Dialogues
from ercgraph.graphs.build import build_edges, build_graphs, compose

#: Synthetic feature sizes (MiniLM text, IS10 audio, DenseNet visual as in MELD's release).
DIMS = {"text": 384, "audio": 1582, "visual": 342}
CONFIGS = [
    {"name": "whole dialogue", "w": (-1, -1), "modalities": ("text",), "cross_modal": False},
    {"name": "window 10/10", "w": (10, 10), "modalities": ("text",), "cross_modal": False},
    {
        "name": "window 10/10, 3 modalities",
        "w": (10, 10),
        "modalities": ("text", "audio", "visual"),
        "cross_modal": True,
    },
]
TARGET_SPEEDUP = 50.0
TARGET_FULL_S = 1.0


def builders_for(cfg: dict) -> list:
    w_past, w_future = cfg["w"]
    specs: list = [
        {"name": "temporal", "w_past": w_past, "w_future": w_future},
        {"name": "speaker", "w_past": w_past, "w_future": w_future, "directed": True},
    ]
    if cfg["cross_modal"]:
        specs.append("modality")
    return specs


def naive_edges(
    speakers: list[list[int]],
    w_past: int,
    w_future: int,
    modalities: tuple[str, ...],
    cross_modal: bool,
) -> dict[tuple[str, str, str], torch.Tensor]:
    """The per-edge loop baseline, as DialogueGCN / COGMEN-style code builds a batch graph.

    Nested loops per dialogue over ``i`` and the ``j`` of its window append each edge to the
    Python list of its relation; the lists become one ``edge_index [2, E]`` per relation at the
    end. It does the same work as the vectorised builders and returns the same structure: an
    intra-modal relation is built once and the one tensor is shared by ``(m, relation, m)`` for
    every modality ``m`` (as ``IntraModalBuilder`` does), and the cross-modal self edges
    ``i -> i`` are built once and shared by every ordered modality pair (as ``ModalityBuilder``
    does). It is a lean rewrite: the original code also calls torch per edge, which is far
    slower.
    """
    relations = [
        f"{who}{direction}"
        for who in ("", "same_speaker_", "other_speaker_")
        for direction in ("past", "future")
    ]
    lists: dict[str, list[tuple[int, int]]] = {rel: [] for rel in relations}
    self_edges: list[tuple[int, int]] = []
    offset = 0
    for spk in speakers:
        n = len(spk)
        for i in range(n):
            lo = 0 if w_past < 0 else max(0, i - w_past)
            hi = n if w_future < 0 else min(n, i + w_future + 1)
            for j in range(lo, hi):
                if j == i:
                    continue
                direction = "past" if j < i else "future"
                who = "same_speaker" if spk[j] == spk[i] else "other_speaker"
                lists[direction].append((offset + j, offset + i))
                lists[f"{who}_{direction}"].append((offset + j, offset + i))
            if cross_modal:
                self_edges.append((offset + i, offset + i))
        offset += n

    def as_index(pairs: list[tuple[int, int]]) -> torch.Tensor:
        return torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).t().contiguous()

    out: dict[tuple[str, str, str], torch.Tensor] = {}
    for rel in relations:
        ei = as_index(lists[rel])
        for m in modalities:
            out[(m, rel, m)] = ei
    if cross_modal and len(modalities) > 1:
        ei = as_index(self_edges)
        for a in modalities:
            for b in modalities:
                if a != b:
                    out[(a, "cross_modal", b)] = ei
    return out


def tensors_built(edges: dict[tuple, torch.Tensor]) -> tuple[int, int]:
    """(distinct edge tensors, edges in them): the work done, each shared tensor counted once."""
    unique = {id(ei): ei for ei in edges.values()}
    return len(unique), sum(int(ei.shape[1]) for ei in unique.values())


def sharing(edges: dict[tuple, torch.Tensor]) -> list[list[tuple]]:
    """The edge types grouped by the tensor they share (sorted, for comparison)."""
    groups: dict[int, list[tuple]] = {}
    for key, ei in edges.items():
        groups.setdefault(id(ei), []).append(key)
    return sorted(sorted(g) for g in groups.values())


def same_edges(fast: dict, slow: dict, n: int) -> None:
    """Assert both dicts hold the same edge types and the same edge sets."""
    fast_keys = {k for k, ei in fast.items() if ei.shape[1]}
    slow = {k: ei for k, ei in slow.items() if ei.shape[1]}
    if fast_keys != set(slow):
        raise AssertionError(f"edge types differ: {sorted(fast_keys ^ set(slow))}")
    for key, ei in slow.items():
        a = torch.sort(fast[key][1] * n + fast[key][0]).values
        b = torch.sort(ei[1] * n + ei[0]).values
        if not torch.equal(a, b):
            raise AssertionError(f"edge set of {key} differs: {a.numel()} vs {b.numel()} edges")


def store_for(n: int, modalities: tuple[str, ...]) -> FeatureStore:
    gen = torch.Generator().manual_seed(0)
    return FeatureStore({m: torch.randn(n, DIMS[m], generator=gen) for m in modalities})


def run(corpus: Corpus, cfg: dict, repeats: int, naive_repeats: int, cache: Path) -> dict:
    mods = cfg["modalities"]
    specs = builders_for(cfg)
    comp = compose(specs)
    dialogues = Dialogues.from_corpus(corpus, mods)
    n = dialogues.num_utterances
    speakers = [t.tolist() for t in torch.split(dialogues.speaker, dialogues.sizes.tolist())]
    store = store_for(n, mods)

    edges_s, fast = best_of(lambda: build_edges(dialogues, comp), repeats)
    full_s, graphs = best_of(lambda: build_graphs(corpus, store, specs), repeats)
    build_graphs(corpus, store, specs, cache_dir=cache)  # fill the cache
    cached_s, _ = best_of(lambda: build_graphs(corpus, store, specs, cache_dir=cache), repeats, 0)
    naive_s, slow = best_of(
        lambda: naive_edges(speakers, *cfg["w"], mods, cfg["cross_modal"]),
        naive_repeats,
        0,
    )
    same_edges(fast, slow, n)
    if sharing(fast) != sharing(slow):
        raise AssertionError("the loop shares edge tensors across edge types differently")
    assert len(graphs) == dialogues.num_dialogues
    num_edges = sum(int(ei.shape[1]) for ei in fast.values())
    tensors, edges_built = tensors_built(fast)
    assert (tensors, edges_built) == tensors_built(slow)
    return {
        "config": cfg["name"],
        "modalities": list(mods),
        "builders": [repr(b) for b in comp.builders],
        "dialogues": dialogues.num_dialogues,
        "utterances": n,
        "edge_types": len(fast),
        "edges": num_edges,
        "edge_tensors_built": tensors,
        "edges_built": edges_built,
        "vectorised_edges_s": edges_s,
        "build_graphs_s": full_s,
        "build_graphs_cached_s": cached_s,
        "naive_s": naive_s,
        "speedup": naive_s / edges_s,
        "naive_over_full_build": naive_s / full_s,
        "edge_sets_identical": True,
        "edge_sharing_identical": True,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7, help="timed repeats of the vectorised code")
    ap.add_argument("--naive-repeats", type=int, default=3, help="timed repeats of the loop")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: like the single-threaded loop; "
        "0 = torch's default)",
    )
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    corpus = load_corpus(Config(data_root=str(data_root())))
    print(f"{corpus}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ercgraph-graph-speed-") as tmp:
        for cfg in CONFIGS:
            rows.append(run(corpus, cfg, args.repeats, args.naive_repeats, Path(tmp)))
            print(f"  {cfg['name']}: done", flush=True)
    ok_speed = all(r["speedup"] >= TARGET_SPEEDUP for r in rows)
    ok_full = all(r["build_graphs_s"] < TARGET_FULL_S for r in rows)
    result = {
        "corpus": {
            "name": corpus.name,
            "utterances": corpus.num_utterances,
            "dialogues": len(corpus.dialogue_ids()),
            "splits": corpus.splits,
        },
        "torch_threads": torch.get_num_threads(),
        "repeats": {"vectorised": args.repeats, "naive": args.naive_repeats, "statistic": "min"},
        "targets": {
            "speedup_min": TARGET_SPEEDUP,
            "build_graphs_max_s": TARGET_FULL_S,
            "speedup_met": ok_speed,
            "build_graphs_met": ok_full,
        },
        "peak_rss_mb": peak_rss_mb(),
        "rows": rows,
    }
    path = write_result("graph_speed", result)
    print_table(
        rows,
        {
            "config": "config",
            "edges": "edges",
            "edges_built": "edges built",
            "vectorised_edges_s": "vectorised edges s",
            "build_graphs_s": "build_graphs s (HeteroData, no cache)",
            "build_graphs_cached_s": "build_graphs s (cache hit)",
            "naive_s": "naive loop s",
            "speedup": "speedup x",
        },
        ".3g",
    )
    print(
        f"\nTargets: speedup >= {TARGET_SPEEDUP:g}x: {'met' if ok_speed else 'MISSED'}; "
        f"build_graphs < {TARGET_FULL_S:g} s: {'met' if ok_full else 'MISSED'}. "
        f"Peak RSS {result['peak_rss_mb']:.0f} MiB. Wrote {path}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
