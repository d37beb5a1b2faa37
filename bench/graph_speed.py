"""Graph construction speed on all of MELD: vectorised builders vs a per-edge Python loop.

The baseline is the way DialogueGCN / COGMEN-style code builds edges: for each dialogue, for each
utterance ``i``, for each ``j`` in its window, append the edge ``(j, i)`` and its relation id to
Python lists, then turn the lists into ``edge_index`` / ``edge_type`` tensors (a lean rewrite of
that pattern without their per-edge torch calls, so a conservative baseline). Both are measured
in the same run (best of several repeats) on the same dialogues, and the edge sets are asserted
identical.

Configurations (temporal past/future + speaker crossed with direction, as DialogueGCN):
  * whole dialogue: windows -1/-1, text nodes;
  * window 10/10 (DialogueGCN's default), text nodes;
  * window 10/10 with text, audio and visual nodes plus cross-modal edges (MMGCN-style).

Columns: edges built; vectorised seconds for the edges alone (``build_edges``) and for the full
``build_graphs`` (one HeteroData per dialogue, synthetic features, no cache); ``build_graphs``
with a warm edge cache; naive-loop seconds; speedup = naive / vectorised edges.
Targets: speedup >= 50x and the full build of all MELD under 1 s.

Both sides run on one core by default (``--threads 1``): the loop is single-threaded, and on a
small shared machine torch's intra-op threads mostly add contention at these tensor sizes.

Usage: python bench/graph_speed.py [--repeats 7] [--naive-repeats 3] [--threads 1]
Writes bench/results/graph_speed.json and prints a markdown table.
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
    relations: list[tuple[str, str, str]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-edge loop baseline, as DialogueGCN / COGMEN-style code builds a batch graph.

    Nested loops per dialogue over ``i`` and the ``j`` of its window append each edge and its
    relation id (looked up in a fixed edge-type mapping) to Python lists, which become an
    ``edge_index [2, E]`` and an ``edge_type [E]`` tensor at the end (what an RGCN consumes).
    It is a lean rewrite: the original code also calls torch per edge, which is far slower.
    """
    type_id = {rel: k for k, rel in enumerate(relations)}
    edges: list[tuple[int, int]] = []
    edge_type: list[int] = []
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
                for m in modalities:
                    edges.append((offset + j, offset + i))
                    edge_type.append(type_id[(m, direction, m)])
                    edges.append((offset + j, offset + i))
                    edge_type.append(type_id[(m, f"{who}_{direction}", m)])
            if cross_modal:
                for a in modalities:
                    for b in modalities:
                        if a != b:
                            edges.append((offset + i, offset + i))
                            edge_type.append(type_id[(a, "cross_modal", b)])
        offset += n
    return (
        torch.tensor(edges, dtype=torch.long).t().contiguous(),
        torch.tensor(edge_type, dtype=torch.long),
    )


def group_by_type(
    edge_index: torch.Tensor, edge_type: torch.Tensor, relations: list[tuple[str, str, str]]
) -> dict[tuple, torch.Tensor]:
    """``(edge_index, edge_type)`` -> ``{edge type: edge_index}`` (for the comparison only)."""
    out = {}
    for k, rel in enumerate(relations):
        mask = edge_type == k
        if bool(mask.any()):
            out[rel] = edge_index[:, mask]
    return out


def same_edges(fast: dict, slow: dict, n: int) -> None:
    """Assert both dicts hold the same edge types and the same edge sets."""
    fast_keys = {k for k, ei in fast.items() if ei.shape[1]}
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
    relations = list(fast)
    naive_s, (slow_index, slow_type) = best_of(
        lambda: naive_edges(speakers, *cfg["w"], mods, cfg["cross_modal"], relations),
        naive_repeats,
        0,
    )
    same_edges(fast, group_by_type(slow_index, slow_type, relations), n)
    assert len(graphs) == dialogues.num_dialogues
    num_edges = sum(int(ei.shape[1]) for ei in fast.values())
    return {
        "config": cfg["name"],
        "modalities": list(mods),
        "builders": [repr(b) for b in comp.builders],
        "dialogues": dialogues.num_dialogues,
        "utterances": n,
        "edge_types": len(fast),
        "edges": num_edges,
        "vectorised_edges_s": edges_s,
        "build_graphs_s": full_s,
        "build_graphs_cached_s": cached_s,
        "naive_s": naive_s,
        "speedup": naive_s / edges_s,
        "naive_over_full_build": naive_s / full_s,
        "edge_sets_identical": True,
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
