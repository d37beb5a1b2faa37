"""Graph assembly: compose builders, build typed edges, cache them, and cut one graph per dialogue.

The pipeline runs once over the whole corpus as a flat batch:

1. :func:`compose` resolves the configured builders (names, ``{"name": ..., **kwargs}`` dicts,
   dotted paths or instances) and the kept edge types (the ablation switch).
2. :func:`build_edges` runs them and returns global edges, sorted by ``(dst, src)`` per type.
3. :func:`cached_edges` stores that edge structure (not the features) on disk, keyed by the
   builders' ``repr``, the edge types, the modalities and a fingerprint of the corpus columns the
   builders read, and verifies it on load.
4. :func:`build_graphs` drops edges touching a missing modality and cuts everything into one
   :class:`~torch_geometric.data.HeteroData` per dialogue with vectorised splits.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from ercgraph.errors import ErcgraphError
from ercgraph.graphs.base import (
    Dialogues,
    EdgeDict,
    EdgeType,
    GraphBuilder,
    cache_identity,
    pair_mask,
)
from ercgraph.graphs.flat import EdgeTable, GraphSet, fill_graph
from ercgraph.registry import BUILDERS

if TYPE_CHECKING:
    from torch_geometric.data import HeteroData

    from ercgraph.data.corpus import Corpus
    from ercgraph.data.features import FeatureStore

log = logging.getLogger(__name__)

#: Bump when the cached edge layout or the manifest changes (a builder's own semantics are
#: versioned by its ``VERSION`` class attribute).
FORMAT_VERSION = 2
#: The Corpus columns graph structure depends on (part of the cache key).
#: The Corpus columns the edges depend on (not ``split``: cross-validation folds re-split one
#: corpus and reuse its edges).
CORPUS_COLUMNS = ("dialogue_id", "turn", "speaker")
#: Most edges one dialogue's graph may have (every edge type, each modality copy counted).
#: A dialogue's graph goes through the model whole, so this bounds the memory of one forward
#: pass: a whole-dialogue window grows with the square of the dialogue length.
MAX_DIALOGUE_EDGES = 5_000_000
#: Most edges all graphs together may have (the same count), which bounds construction memory.
MAX_EDGES = 50_000_000


@dataclass(frozen=True)
class Composition:
    """Resolved builders and the relations kept from them.

    Args:
        builders: The builders that contribute at least one kept relation, in config order.
        edge_types: The kept relation names, in builder order.
    """

    builders: tuple[GraphBuilder, ...]
    edge_types: tuple[str, ...]

    @property
    def pair_rules(self) -> dict[str, tuple[str, ...]]:
        """Relation -> pair rule (:attr:`GraphBuilder.PAIR_RULES`) for the relations the
        builders produce."""
        return {
            rel: tuple(rule)
            for b in self.builders
            for rel, rule in type(b).PAIR_RULES.items()
            if rel in b.edge_types
        }

    def cache_manifest(self, modalities: Sequence[str]) -> dict[str, Any]:
        """The builder part of the graph cache key: each builder's ``module:qualname``, its
        ``VERSION`` and its ``repr`` (see :func:`~ercgraph.graphs.base.cache_identity`).

        Raises:
            ErcgraphError: if a builder's ``repr`` cannot show every constructor argument.
        """
        return {
            "builders": [cache_identity(b) for b in self.builders],
            "edge_types": sorted(self.edge_types),
            "modalities": list(modalities),
        }


def compose(builders: Any, edge_types: Sequence[str] | None = None) -> Composition:
    """Resolve builder specs and the kept edge types.

    Args:
        builders: A list of builder specs (a registered name, a dotted path ``pkg.mod:Class``, a
            ``{"name": ..., **kwargs}`` dict, a :class:`GraphBuilder` instance or class), one
            spec, or a :class:`Composition` (its builders are reused).
        edge_types: Relation names to keep (``None`` = every relation the builders produce).

    Raises:
        ErcgraphError: if a spec is not a builder, a builder's ``repr`` does not show every
            constructor argument (it is the cache key), two builders produce the same relation,
            or a requested edge type is produced by no builder (the message lists the available
            ones).
    """
    if isinstance(builders, Composition):
        builders = builders.builders
    if isinstance(builders, (str, dict, GraphBuilder)) or (
        isinstance(builders, type) and issubclass(builders, GraphBuilder)
    ):
        builders = [builders]
    resolved: list[GraphBuilder] = []
    owner: dict[str, GraphBuilder] = {}
    for k, spec in enumerate(builders):
        if isinstance(spec, type) and issubclass(spec, GraphBuilder):
            spec = spec()
        builder = BUILDERS.create(spec)
        if not isinstance(builder, GraphBuilder):
            raise ErcgraphError(
                f"graph builder #{k} ({spec!r}) is a {type(builder).__name__}, not a "
                "GraphBuilder (subclass ercgraph.graphs.GraphBuilder)"
            )
        cache_identity(builder)  # its repr is the cache key: refuse one that hides an argument
        for rel in builder.edge_types:
            if rel in owner:
                raise ErcgraphError(
                    f"edge type {rel!r} is produced by two builders, {owner[rel]!r} and "
                    f"{builder!r}; drop one of them or restrict it"
                )
            owner[rel] = builder
        resolved.append(builder)
    available = list(owner)
    if edge_types is None:
        keep = set(available)
    else:
        if isinstance(edge_types, str):
            edge_types = [edge_types]
        for rel in edge_types:
            if rel not in owner:
                raise ErcgraphError(
                    f"unknown edge type {rel!r} in graph.edge_types: no configured builder "
                    f"produces it; available edge types: {', '.join(available) or 'none'}"
                )
        keep = set(edge_types)
    kept = tuple(r for r in available if r in keep)
    used = tuple(b for b in resolved if any(r in keep for r in b.edge_types))
    return Composition(used, kept)


def build_edges(
    dialogues: Dialogues, builders: Any, edge_types: Sequence[str] | None = None
) -> EdgeDict:
    """Run the builders over a flat batch and keep the requested relations.

    Args:
        dialogues: The flat batch.
        builders: Builder specs or a :class:`Composition` (see :func:`compose`).
        edge_types: Relation names to keep (``None`` = all).

    Returns:
        ``{(src_modality, relation, dst_modality): LongTensor [2, E]}`` with global utterance
        indices. Keys are ordered by relation (builder order), then source and target modality
        (``dialogues.modalities`` order); the edges of a type are sorted by ``(dst, src)``.

    Raises:
        ErcgraphError: before building anything, when the graphs would exceed
            :data:`MAX_DIALOGUE_EDGES` or :data:`MAX_EDGES` (see :func:`check_size`).
    """
    if isinstance(builders, Composition) and edge_types is None:
        comp = builders
    else:
        comp = compose(builders, edge_types)
    check_size(dialogues, comp)
    keep = set(comp.edge_types)
    out: EdgeDict = {}
    memo: dict[int, tuple[Tensor, Tensor]] = {}
    for builder in comp.builders:
        trusted = bool(getattr(builder, "SORTED_OUTPUT", False))
        for key, ei in builder(dialogues).items():
            if key[1] in keep:
                if id(ei) not in memo:  # intra-modal relations share one tensor per modality
                    memo[id(ei)] = (
                        ei,
                        ei.contiguous() if trusted else _sort_edges(ei, dialogues.num_utterances),
                    )
                out[key] = memo[id(ei)][1]
    rank = {r: i for i, r in enumerate(comp.edge_types)}
    mod = {m: i for i, m in enumerate(dialogues.modalities)}
    order = sorted(out, key=lambda k: (rank[k[1]], mod[k[0]], mod[k[2]]))
    return {k: out[k] for k in order}


def estimate_edges(dialogues: Dialogues, comp: Composition, cap: int | None = None) -> Tensor:
    """Edges per dialogue (``LongTensor [D]``) the builders would return, from
    :meth:`GraphBuilder.estimate_edges` (builders that cannot tell count 0)."""
    total = torch.zeros(dialogues.num_dialogues, dtype=torch.long)
    for builder in comp.builders:
        count = builder.estimate_edges(dialogues, cap=cap)
        if count is not None:
            total += count
    return total


def check_size(dialogues: Dialogues, comp: Composition) -> None:
    """Refuse graphs that would not fit in memory, before building them.

    The edge count of every dialogue is estimated in closed form from the window sizes and
    dialogue lengths (:meth:`GraphBuilder.estimate_edges`), then checked against
    :data:`MAX_DIALOGUE_EDGES` and :data:`MAX_EDGES`. The suggested window is the widest cap on
    every context window that fits both limits (found by bisection over the same estimate).

    Raises:
        ErcgraphError: naming the largest dialogue, its estimated edge count and the window to
            use instead.
    """
    counts = estimate_edges(dialogues, comp)
    if not counts.numel():
        return
    total, d = int(counts.sum()), int(counts.argmax())
    per_dialogue, limit = MAX_DIALOGUE_EDGES, MAX_EDGES
    if int(counts[d]) <= per_dialogue and total <= limit:
        return
    where = (
        f"dialogue {dialogues.name(d)} ({int(dialogues.sizes[d])} turns) would get about "
        f"{int(counts[d]):,} edges from {', '.join(map(repr, comp.builders))}"
    )
    if int(counts[d]) > per_dialogue:
        problem = (
            f"graph too large: {where} (limit {per_dialogue:,} per dialogue, "
            "ercgraph.graphs.build.MAX_DIALOGUE_EDGES)"
        )
    else:
        problem = (
            f"graphs too large: about {total:,} edges in all (limit {limit:,}, "
            f"ercgraph.graphs.build.MAX_EDGES); the largest is {where}"
        )

    def fits(cap: int) -> bool:
        c = estimate_edges(dialogues, comp, cap)
        return int(c.max()) <= per_dialogue and int(c.sum()) <= limit

    if torch.equal(estimate_edges(dialogues, comp, 1), estimate_edges(dialogues, comp, 2)):
        hint = "no builder has a context window to cap; use fewer modalities or shorter dialogues"
    elif not fits(1):
        hint = "even a window of 1 does not fit; use fewer builders, modalities or dialogues"
    else:
        lo, hi = 1, max(int(dialogues.sizes.max()) - 1, 1)  # fits(lo); find the widest cap
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
        hint = f"cap every context window at {lo} (w_past: {lo}, w_future: {lo})"
    raise ErcgraphError(f"{problem}; {hint}")


def _sort_edges(ei: Tensor, n: int) -> Tensor:
    """Sort edges by (dst, src); skip the sort when they already are."""
    if ei.shape[1] > 1:
        key = ei[1] * n + ei[0]
        if bool((key[1:] < key[:-1]).any()):
            ei = ei[:, torch.argsort(key, stable=True)]
    return ei.contiguous()


def remove_pairs(
    edges: EdgeDict,
    speaker: Tensor,
    drop: Collection[str],
    rules: Mapping[str, Sequence[str]],
) -> EdgeDict:
    """Remove relations together with the information they carry.

    The information of a relation is a set of node pairs: the pairs that match its rule
    (``rules``, from :attr:`GraphBuilder.PAIR_RULES`: ``past`` is every pair whose source
    precedes its target) or, for a relation without a rule, the ``(src node, dst node)`` pairs
    its edges link (modalities included). The dropped relations are removed and every other
    relation loses its edges on those pairs, so no message travels along them any more.

    Args:
        edges: Edge type -> ``LongTensor [2, E]`` (global indices of a flat batch, or local
            indices of one dialogue).
        speaker: ``LongTensor [N]``, the speaker of each utterance, indexed like ``edges``.
        drop: Relation names whose information is removed.
        rules: Relation -> pair rule (e.g. :attr:`Composition.pair_rules`).

    Returns:
        The kept edge types in their order; a tensor nothing was removed from is returned as
        is (so tensors shared across modalities stay shared).
    """
    drop = set(drop)
    n = speaker.numel()
    ruled = [tuple(rules[r]) for r in sorted(drop) if r in rules]
    linked: dict[tuple[str, str], list[Tensor]] = {}
    for (a, rel, b), ei in edges.items():
        if rel in drop and rel not in rules:
            linked.setdefault((a, b), []).append(ei[0] * n + ei[1])
    taken = {k: torch.cat(v) for k, v in linked.items()}
    out: EdgeDict = {}
    memo: dict[tuple[int, tuple[str, str] | None], Tensor] = {}
    for (a, rel, b), ei in edges.items():
        if rel in drop:
            continue
        pair_key = (a, b) if (a, b) in taken else None
        memo_key = (id(ei), pair_key)
        if memo_key not in memo:
            remove = torch.zeros(ei.shape[1], dtype=torch.bool)
            for rule in ruled:
                remove |= pair_mask(rule, ei[0], ei[1], speaker)
            if pair_key is not None:
                remove |= torch.isin(ei[0] * n + ei[1], taken[pair_key])
            memo[memo_key] = ei[:, ~remove] if bool(remove.any()) else ei
        out[(a, rel, b)] = memo[memo_key]
    return out


# -- the on-disk cache ------------------------------------------------------------------------
def cache_key(corpus: Corpus, comp: Composition, modalities: Sequence[str]) -> tuple[str, dict]:
    """The graph cache key and the manifest it hashes."""
    manifest = {
        **comp.cache_manifest(modalities),
        "corpus": corpus.fingerprint(CORPUS_COLUMNS),
        "format": FORMAT_VERSION,
    }
    blob = json.dumps(manifest, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:24], manifest


def cached_edges(
    corpus: Corpus,
    dialogues: Dialogues,
    builders: Any,
    cache_dir: Path | str,
    edge_types: Sequence[str] | None = None,
) -> tuple[EdgeDict, bool]:
    """Return the edges from ``cache_dir/graphs/<key>.safetensors`` or build and save them.

    A missing, corrupt, truncated or stale cache file is rebuilt (with a logged warning when it
    existed), never trusted.

    Returns:
        The global edges (as :func:`build_edges`) and whether they came from the cache.
    """
    from ercgraph.data.features import reclaim_cache_path

    comp = (
        builders
        if isinstance(builders, Composition) and edge_types is None
        else compose(builders, edge_types)
    )
    key, manifest = cache_key(corpus, comp, dialogues.modalities)
    path = Path(cache_dir) / "graphs" / f"{key}.safetensors"
    for entry in (path, path.with_suffix(".json")):
        reclaim_cache_path(entry)  # a folder in a cache file's place: rebuilt or named
    if path.exists() or path.with_suffix(".json").exists():
        try:
            edges = _load_edges(path, manifest, comp, dialogues)
            log.info("reusing graph cache %s", path)
            return edges, True
        except ErcgraphError as exc:
            log.warning("%s; rebuilding it", exc)
    edges = build_edges(dialogues, comp)
    _save_edges(path, manifest, edges)
    return edges, False


def _save_edges(path: Path, manifest: dict, edges: EdgeDict) -> None:
    from safetensors.torch import save

    from ercgraph.data.features import atomic_write_bytes

    # intra-modal relations share one tensor across modalities: store it once
    names: dict[int, str] = {}
    tensors: dict[str, Tensor] = {}
    for ei in edges.values():
        if id(ei) not in names:
            names[id(ei)] = f"e{len(names)}"
            tensors[names[id(ei)]] = ei.contiguous()
    blob = save(tensors)
    meta = {
        "format": FORMAT_VERSION,
        "manifest": manifest,
        "edge_types": [[*k, names[id(ei)]] for k, ei in edges.items()],
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    atomic_write_bytes(path, blob)
    atomic_write_bytes(path.with_suffix(".json"), json.dumps(meta, indent=1).encode())


def _load_edges(path: Path, manifest: dict, comp: Composition, dialogues: Dialogues) -> EdgeDict:
    from safetensors.torch import load

    where = f"graph cache {str(path)!r}"
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
        blob = path.read_bytes()
    except (OSError, ValueError) as exc:
        raise ErcgraphError(f"{where} is unreadable: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        raise ErcgraphError(f"{where} has an unknown format")
    if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
        raise ErcgraphError(f"{where} is corrupt or truncated (checksum mismatch)")
    if meta.get("manifest") != manifest:
        raise ErcgraphError(f"{where} is stale (its manifest differs)")
    try:
        tensors = load(blob)
        edges = {(a, rel, b): tensors[name] for a, rel, b, name in meta["edge_types"]}
    except Exception as exc:
        raise ErcgraphError(f"{where} is corrupt: {exc}") from exc
    n, batch = dialogues.num_utterances, dialogues.batch
    for key, ei in edges.items():
        ok = (
            len(key) == 3
            and key[1] in comp.edge_types
            and key[0] in dialogues.modalities
            and key[2] in dialogues.modalities
            and ei.dim() == 2
            and ei.shape[0] == 2
            and ei.dtype == torch.long
        )
        if ok and ei.numel():
            ok = (
                bool((ei >= 0).all())
                and bool((ei < n).all())
                and bool((batch[ei[0]] == batch[ei[1]]).all())
            )
        if not ok:
            raise ErcgraphError(f"{where}: edge type {key!r} does not fit this corpus")
    return edges


# -- one graph per dialogue ---------------------------------------------------------------------
def drop_missing(edges: EdgeDict, present: dict[str, Tensor]) -> EdgeDict:
    """Remove edges whose source or target node has its modality missing (``present`` False)."""
    out: EdgeDict = {}
    for (a, rel, b), ei in edges.items():
        pa, pb = present.get(a), present.get(b)
        keep = None
        if pa is not None and not bool(pa.all()):
            keep = pa[ei[0]]
        if pb is not None and not bool(pb.all()):
            keep = pb[ei[1]] if keep is None else keep & pb[ei[1]]
        out[(a, rel, b)] = ei if keep is None else ei[:, keep]
    return out


def build_graphs(
    corpus: Corpus,
    store: FeatureStore,
    builders: Any,
    edge_types: Sequence[str] | None = None,
    cache_dir: Path | str | None = None,
    targets: dict[str, Tensor] | None = None,
    drop_pairs: Sequence[str] | None = None,
) -> list[HeteroData]:
    """One :class:`~torch_geometric.data.HeteroData` per dialogue, in Corpus row order.

    Each graph has, for every modality ``m`` of ``store``: ``data[m].x`` (float ``[n, dim]``) and
    ``data[m].present_mask`` (bool ``[n]``); graph-level attributes (concatenated by
    :class:`~torch_geometric.data.Batch`): ``y`` (label id, -1 when missing), ``speaker`` (local
    speaker index), ``turn``, ``row`` (Corpus row, to map predictions back), all long ``[n]``,
    and ``dialogue_id`` (str); and ``data[(m1, rel, m2)].edge_index`` with local indices for every
    kept edge type (possibly empty, so every graph has the same edge types). Edges touching a
    node whose modality is missing are removed.

    ``x`` and ``present_mask`` are views of the store's rows (no copy); do not modify them in
    place.

    Args:
        corpus: The utterances (rows grouped by dialogue, in turn order, as Corpus guarantees).
        store: Features aligned to the Corpus rows.
        builders: Builder specs (see :func:`compose`).
        edge_types: Relation names to keep (``None`` = all).
        cache_dir: Folder for the edge cache (``<cache_dir>/graphs/``); ``None`` = no cache.
        targets: Extra per-utterance graph attributes ``[N, ...]`` in Corpus row order (the
            heads' targets, e.g. ``y_sentiment``, ``y_regression``).
        drop_pairs: Relations removed together with their information (see
            :func:`remove_pairs`): the pair ablation. They must not be among ``edge_types``.

    Raises:
        ErcgraphError: on a feature/corpus row mismatch or a bad builder configuration.
    """
    from torch_geometric.data import HeteroData

    dialogues, edges, globals_ = _flat_parts(
        corpus, store, builders, edge_types, cache_dir, targets, drop_pairs
    )
    with _gc_paused():
        return _assemble(HeteroData, corpus, store, dialogues, edges, globals_)


def build_graph_set(
    corpus: Corpus,
    store: FeatureStore,
    builders: Any,
    edge_types: Sequence[str] | None = None,
    cache_dir: Path | str | None = None,
    targets: dict[str, Tensor] | None = None,
    drop_pairs: Sequence[str] | None = None,
    standardise: dict[str, tuple[Tensor, Tensor]] | None = None,
) -> GraphSet:
    """The graphs of :func:`build_graphs` as one :class:`~ercgraph.graphs.flat.GraphSet`: flat
    tensors and a CSR-style edge table per relation, no object per dialogue (what training
    batches from). Same arguments and errors as :func:`build_graphs`; ``standardise`` is
    applied to the rows each graph or batch gathers (see :class:`~ercgraph.graphs.flat.GraphSet`).
    """
    dialogues, edges, globals_ = _flat_parts(
        corpus, store, builders, edge_types, cache_dir, targets, drop_pairs
    )
    tables: dict[int, EdgeTable] = {}
    for ei in edges.values():
        if id(ei) not in tables:  # intra-modal relations share one table across modalities
            tables[id(ei)] = EdgeTable.from_global(ei, dialogues.batch, dialogues.ptr)
    sizes = dialogues.sizes
    return GraphSet(
        {m: store.features[m] for m in dialogues.modalities},
        {m: store.present[m] for m in dialogues.modalities},
        globals_,
        dialogues.ptr[:-1],
        sizes,
        corpus.dialogue_ids(),
        {k: tables[id(ei)] for k, ei in edges.items()},
        standardise=standardise,
    )


def _flat_parts(
    corpus: Corpus,
    store: FeatureStore,
    builders: Any,
    edge_types: Sequence[str] | None,
    cache_dir: Path | str | None,
    targets: dict[str, Tensor] | None,
    drop_pairs: Sequence[str] | None,
) -> tuple[Dialogues, EdgeDict, dict[str, Tensor]]:
    """The flat batch, its global edges (missing modalities dropped) and per-utterance
    attributes that :func:`build_graphs` and :func:`build_graph_set` cut or wrap."""
    modalities = tuple(store.modalities)
    if not modalities:
        raise ErcgraphError("build_graphs: the feature store has no modality")
    store.check_rows(corpus.num_utterances, "build_graphs")
    comp, drop = compose_dropping(builders, edge_types, drop_pairs)
    dialogues = Dialogues.from_corpus(corpus, modalities)
    if cache_dir is None:
        edges = build_edges(dialogues, comp)
    else:
        edges, _ = cached_edges(corpus, dialogues, comp, cache_dir)
    if drop:
        edges = remove_pairs(edges, dialogues.speaker, drop, comp.pair_rules)
        keep = set(edge_types) if edge_types is not None else set(comp.edge_types) - set(drop)
        edges = {k: v for k, v in edges.items() if k[1] in keep}
    edges = drop_missing(edges, store.present)
    globals_ = {
        "y": torch.from_numpy(corpus.label_ids()),
        "speaker": dialogues.speaker,
        "turn": torch.from_numpy(corpus.df["turn"].to_numpy(dtype=np.int64, copy=True)),
        "row": torch.arange(dialogues.num_utterances),
    }
    for name, value in (targets or {}).items():
        if name in globals_ or value.shape[0] != dialogues.num_utterances:
            raise ErcgraphError(
                f"build_graphs: target {name!r} clashes with a graph attribute or has "
                f"{value.shape[0]} rows for {dialogues.num_utterances} utterances"
            )
        globals_[name] = value
    return dialogues, edges, globals_


def compose_dropping(
    builders: Any, edge_types: Sequence[str] | None, drop_pairs: Sequence[str] | None
) -> tuple[Composition, list[str]]:
    """The composition to build and the relations to drop with their pairs (as
    :func:`build_graphs` resolves them; call it to validate a config before any work).

    With pairs to drop, every relation is built (a dropped relation's edges are its pairs when
    it has no rule) and the kept ones are picked afterwards.

    Raises:
        ErcgraphError: on an unknown builder or edge type, or a relation both kept and dropped.
    """
    if isinstance(drop_pairs, str):
        drop_pairs = [drop_pairs]
    drop = list(drop_pairs or ())
    if not drop:
        return compose(builders, edge_types), []
    full = compose(builders)
    for rel in drop:
        if rel not in full.edge_types:
            raise ErcgraphError(
                f"unknown edge type {rel!r} to drop with its pairs: no configured builder "
                f"produces it; available edge types: {', '.join(full.edge_types) or 'none'}"
            )
    if isinstance(edge_types, str):
        edge_types = [edge_types]
    if edge_types is not None:
        compose(full, edge_types)
        for rel in drop:
            if rel in edge_types:
                raise ErcgraphError(
                    f"edge type {rel!r} is both kept (graph.edge_types) and dropped with its "
                    "pairs; name it in one of them"
                )
    return full, drop


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector.

    Cutting MELD into graphs creates ~100k small tensors and containers, which sets off
    repeated full collections that cost more than the work itself. Nothing created here forms a
    reference cycle, so no garbage is held back.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _assemble(
    cls: type[HeteroData],
    corpus: Corpus,
    store: FeatureStore,
    dialogues: Dialogues,
    edges: EdgeDict,
    globals_: dict[str, Tensor],
) -> list[HeteroData]:
    """Split the flat tensors per dialogue (views, no copies) and wrap them in HeteroData."""
    sizes = dialogues.sizes.tolist()
    nodes = {
        m: (torch.split(store.features[m], sizes), torch.split(store.present[m].bool(), sizes))
        for m in dialogues.modalities
    }
    glob = {k: torch.split(v, sizes) for k, v in globals_.items()}
    glob["dialogue_id"] = corpus.dialogue_ids()
    split_memo: dict[int, tuple[Tensor, ...]] = {}
    parts = {}
    for k, ei in edges.items():
        if id(ei) not in split_memo:  # intra-modal relations share one tensor across modalities
            split_memo[id(ei)] = _split_edges(ei, dialogues)
        parts[k] = split_memo[id(ei)]
    return _wrap(cls, dialogues.num_dialogues, glob, nodes, parts)


def _wrap(
    cls: type[HeteroData],
    num: int,
    glob: dict[str, Sequence[Any]],
    nodes: dict[str, tuple[Sequence[Tensor], Sequence[Tensor]]],
    edges: dict[EdgeType, Sequence[Tensor]],
) -> list[HeteroData]:
    """Create ``num`` HeteroData objects from per-dialogue pieces (``piece[d]``), filled with
    :func:`~ercgraph.graphs.flat.fill_graph`."""
    return [_fast_graph(cls, d, glob, nodes, edges) for d in range(num)]


def _fast_graph(
    cls: type[HeteroData],
    d: int,
    glob: dict[str, Sequence[Any]],
    nodes: dict[str, tuple[Sequence[Tensor], Sequence[Tensor]]],
    edges: dict[EdgeType, Sequence[Tensor]],
) -> HeteroData:
    return fill_graph(
        cls(),
        {k: v[d] for k, v in glob.items()},
        {m: {"x": xs[d], "present_mask": masks[d]} for m, (xs, masks) in nodes.items()},
        {k: {"edge_index": parts[d]} for k, parts in edges.items()},
    )


def _split_edges(ei: Tensor, dialogues: Dialogues) -> tuple[Tensor, ...]:
    """Cut global edges sorted by dst into per-dialogue local edges (no loop over edges)."""
    owner = dialogues.batch.index_select(0, ei[1])
    if owner.numel() > 1 and bool((owner[1:] < owner[:-1]).any()):
        perm = torch.argsort(owner, stable=True)
        ei, owner = ei[:, perm], owner[perm]
    counts = torch.bincount(owner, minlength=dialogues.num_dialogues)
    local = ei - dialogues.ptr.index_select(0, owner)
    # per-dialogue column slices are views (as PyG's own InMemoryDataset slicing gives)
    return torch.split(local, counts.tolist(), dim=1)
