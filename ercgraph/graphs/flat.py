"""The dialogue graphs of a corpus as flat tensors, cut into batches without per-graph objects.

A :class:`GraphSet` holds what :func:`~ercgraph.graphs.build.build_graphs` would cut into one
``HeteroData`` per dialogue, but keeps it whole:

* the node features of every modality as the FeatureStore's ``[N, dim]`` rows (in memory or
  memory-mapped; a batch reads only its own rows), the ``present`` masks and the per-utterance
  attributes (``y``, ``speaker``, ``turn``, ``row`` and the heads' targets);
* the dialogue boundaries (``starts``, ``sizes``, CSR-style over the Corpus rows);
* per edge type, the edges of every dialogue in *local* indices, concatenated in dialogue order
  (each dialogue's edges sorted by ``(dst, src)``), with each dialogue's first edge and edge count:
  one CSR-style edge table for the corpus, not one tensor per dialogue. Intra-modal relations
  share one table across modalities, as the builders share their tensors.

:meth:`GraphSet.collate` makes the batch of any dialogues with a few gathers (``index_select``
and ``repeat_interleave``): exactly the tensors ``Batch.from_data_list`` makes from the
per-dialogue graphs (tested), without building and walking those objects. Collation of many small
``HeteroData`` objects was most of a training epoch's time. The batch is a PyG
``HeteroDataBatch`` with ``x``, ``present_mask``, ``batch`` and ``ptr`` per node type,
``edge_index`` per edge type, the per-utterance attributes and ``dialogue_id`` (a list); it lacks
the slice bookkeeping of ``to_data_list``, which nothing in training reads.

A GraphSet is also a ``Sequence`` of per-dialogue ``HeteroData`` (views, built on access), so code
that walks graphs one by one (ablation variants, ``show``) keeps working; :func:`batches` accepts
either a GraphSet or a plain list of graphs.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ercgraph.graphs.base import EdgeType

if TYPE_CHECKING:
    from torch_geometric.data import HeteroData


def _exclusive_cumsum(x: Tensor) -> Tensor:
    return torch.cumsum(x, 0) - x


def _ranges(starts: Tensor, counts: Tensor) -> Tensor:
    """The concatenation of ``arange(s, s + c)`` for every ``(s, c)``, without a Python loop."""
    total = int(counts.sum())
    if total == 0:
        return torch.zeros(0, dtype=torch.long)
    shift = torch.repeat_interleave(starts - _exclusive_cumsum(counts), counts, output_size=total)
    return shift + torch.arange(total)


class EdgeTable:
    """The edges of one relation for every dialogue: ``local [2, E]`` (indices inside the
    dialogue), ``first [D]`` (column of each dialogue's first edge) and ``count [D]``."""

    __slots__ = ("count", "first", "local")

    def __init__(self, local: Tensor, first: Tensor, count: Tensor) -> None:
        self.local, self.first, self.count = local, first, count

    @classmethod
    def from_global(cls, ei: Tensor, batch: Tensor, ptr: Tensor) -> EdgeTable:
        """From global edges of a flat batch (``batch[i]`` = dialogue of utterance ``i``)."""
        num = ptr.numel() - 1
        owner = batch.index_select(0, ei[1])
        if owner.numel() > 1 and bool((owner[1:] < owner[:-1]).any()):
            perm = torch.argsort(owner, stable=True)
            ei, owner = ei[:, perm], owner[perm]
        count = torch.bincount(owner, minlength=num)
        local = (ei - ptr.index_select(0, owner)).contiguous()
        return cls(local, _exclusive_cumsum(count), count)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.local, self.first, self.count))


class GraphSet(Sequence["HeteroData"]):
    """Dialogue graphs over flat tensors (see the module docstring).

    Args:
        features: modality → ``[N, dim]`` float rows in Corpus order.
        present: modality → ``[N]`` bool.
        node_attrs: name → ``[N, ...]`` per-utterance graph attributes (``y``, ``speaker``, ...).
        starts: ``[D]`` first Corpus row of every dialogue.
        sizes: ``[D]`` utterances of every dialogue.
        dialogue_ids: ``D`` dialogue ids.
        edges: edge type → :class:`EdgeTable` (the same table object for types that share it).
        index: the dialogues of this set (positions into the ``D`` dialogues); default all.
        standardise: modality → ``(mean, std)`` applied to the rows a graph or batch gathers
            (``(x - mean) / std``, zero where the modality is missing), for memory-mapped
            features that are never standardised as a whole.
    """

    def __init__(
        self,
        features: dict[str, Tensor],
        present: dict[str, Tensor],
        node_attrs: dict[str, Tensor],
        starts: Tensor,
        sizes: Tensor,
        dialogue_ids: Sequence[str],
        edges: dict[EdgeType, EdgeTable],
        index: Tensor | None = None,
        standardise: dict[str, tuple[Tensor, Tensor]] | None = None,
    ) -> None:
        self.features = features
        self.present = {m: p.bool() for m, p in present.items()}
        self.node_attrs = node_attrs
        self.starts, self.sizes = starts.long(), sizes.long()
        self.dialogue_ids = list(dialogue_ids)
        self.edges = edges
        self.index = torch.arange(len(self.dialogue_ids)) if index is None else index.long()
        self.standardise = dict(standardise or {})

    def _rows(self, m: str, x: Tensor, present: Tensor) -> Tensor:
        """Gathered feature rows of modality ``m`` as the model sees them."""
        if m not in self.standardise:
            return x
        mean, std = self.standardise[m]
        z = (x - mean) / std
        return torch.where(present[:, None], z, torch.zeros_like(z))

    # -- the Sequence of per-dialogue graphs ------------------------------------------------
    def __len__(self) -> int:
        return int(self.index.numel())

    def __getitem__(self, i: int) -> HeteroData:  # type: ignore[override]
        if isinstance(i, slice):
            raise TypeError("GraphSet: use subset(positions) for a slice")
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"GraphSet index {i} out of range ({len(self)} dialogues)")
        from torch_geometric.data import HeteroData

        d = int(self.index[i])
        s, n = int(self.starts[d]), int(self.sizes[d])
        glob: dict[str, Any] = {k: v[s : s + n] for k, v in self.node_attrs.items()}
        glob["dialogue_id"] = self.dialogue_ids[d]
        nodes = {}
        for m, x in self.features.items():
            mask = self.present[m][s : s + n]
            nodes[m] = {"x": self._rows(m, x[s : s + n], mask), "present_mask": mask}
        edges = {}
        for et, table in self.edges.items():
            f, c = int(table.first[d]), int(table.count[d])
            edges[et] = {"edge_index": table.local[:, f : f + c]}
        return fill_graph(HeteroData(), glob, nodes, edges)

    def __iter__(self) -> Iterator[HeteroData]:
        for i in range(len(self)):
            yield self[i]

    @property
    def edge_types(self) -> list[EdgeType]:
        return list(self.edges)

    def subset(self, positions: Tensor | Sequence[int]) -> GraphSet:
        """The graphs at ``positions`` of this set (no tensor is copied)."""
        pos = torch.as_tensor(positions, dtype=torch.long)
        return GraphSet(
            self.features,
            self.present,
            self.node_attrs,
            self.starts,
            self.sizes,
            self.dialogue_ids,
            self.edges,
            self.index.index_select(0, pos),
            self.standardise,
        )

    def node_attr(self, name: str) -> Tensor:
        """A per-utterance attribute over this set's dialogues, in set order."""
        rows = _ranges(self.starts[self.index], self.sizes[self.index])
        return self.node_attrs[name].index_select(0, rows)

    def dialogue_labels(self, name: str = "y") -> list[Tensor]:
        """One tensor of ``name`` per dialogue of the set (views), as the samplers take them."""
        values = self.node_attrs[name]
        return [
            values[s : s + n]
            for s, n in zip(self.starts[self.index].tolist(), self.sizes[self.index].tolist())
        ]

    def num_edges(self) -> int:
        """Edges over this set's dialogues, every edge type counted."""
        return sum(int(t.count[self.index].sum()) for t in self.edges.values())

    # -- batches ---------------------------------------------------------------------------
    def collate(self, positions: Tensor | Sequence[int]) -> HeteroData:
        """The batch of the graphs at ``positions`` (in that order), as ``Batch.from_data_list``
        of those graphs would make it."""
        from torch_geometric.data import Batch, HeteroData

        d = self.index.index_select(0, torch.as_tensor(positions, dtype=torch.long))
        sizes = self.sizes.index_select(0, d)
        total, num = int(sizes.sum()), int(d.numel())
        offset = _exclusive_cumsum(sizes)
        starts = self.starts.index_select(0, d)
        contiguous = num > 0 and bool((starts[1:] == starts[:-1] + sizes[:-1]).all())
        if contiguous:  # consecutive dialogues (evaluation): views
            lo = int(starts[0])

            def take(t: Tensor) -> Tensor:
                return t[lo : lo + total]
        else:
            rows = _ranges(starts, sizes)

            def take(t: Tensor) -> Tensor:
                return t.index_select(0, rows)

        graph_of = torch.repeat_interleave(torch.arange(num), sizes, output_size=total)
        ptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(sizes, 0)])
        glob: dict[str, Any] = {k: take(v) for k, v in self.node_attrs.items()}
        glob["dialogue_id"] = [self.dialogue_ids[i] for i in d.tolist()]
        nodes = {}
        for m, x in self.features.items():
            mask = take(self.present[m])
            nodes[m] = {
                "x": self._rows(m, take(x), mask),
                "present_mask": mask,
                "batch": graph_of,
                "ptr": ptr,
            }
        memo: dict[int, Tensor] = {}
        edges = {}
        for et, table in self.edges.items():
            if id(table) not in memo:
                count = table.count.index_select(0, d)
                cols = _ranges(table.first.index_select(0, d), count)
                shift = torch.repeat_interleave(offset, count, output_size=int(cols.numel()))
                memo[id(table)] = table.local.index_select(1, cols) + shift
            edges[et] = {"edge_index": memo[id(table)]}
        out = fill_graph(Batch(_base_cls=HeteroData), glob, nodes, edges)
        out.__dict__["_num_graphs"] = num
        return out

    def batches(self, order: Sequence[int] | Tensor, batch_size: int) -> Iterator[HeteroData]:
        """Batches of ``batch_size`` graphs taken from ``order`` (positions in this set)."""
        order = torch.as_tensor(order, dtype=torch.long)
        for lo in range(0, int(order.numel()), batch_size):
            yield self.collate(order[lo : lo + batch_size])


def fill_graph(
    data: HeteroData,
    glob: dict[str, Any],
    nodes: dict[str, dict[str, Any]],
    edges: dict[EdgeType, dict[str, Any]],
) -> HeteroData:
    """Fill a fresh HeteroData (or HeteroDataBatch).

    PyG's attribute assignment takes microseconds per call (it invalidates caches through a
    failing ``getattr``), which dominates filling ~30 attributes per graph. A fresh storage holds
    only its ``_mapping`` dict, a weak reference to its parent and its key, so we fill exactly
    those. That is the layout of torch-geometric 2.x (the range ``setup.cfg`` pins); if it ever
    changes we fall back to the public API.
    """
    from torch_geometric.data.storage import EdgeStorage, NodeStorage

    state = data.__dict__
    if not _fast_layout(state):
        for k, v in glob.items():
            setattr(data, k, v)
        for key, mapping in (*nodes.items(), *edges.items()):
            for k, v in mapping.items():
                setattr(data[key], k, v)
        return data
    state["_global_store"].__dict__["_mapping"].update(glob)
    ref = weakref.ref(data)
    for key, mapping in nodes.items():
        state["_node_store_dict"][key] = _storage(NodeStorage, ref, key, mapping)
    for key, mapping in edges.items():
        state["_edge_store_dict"][key] = _storage(EdgeStorage, ref, key, mapping)
    return data


def _fast_layout(state: dict[str, Any]) -> bool:
    """Whether a fresh HeteroData's ``__dict__`` has the storage layout :func:`fill_graph` fills."""
    from torch_geometric.data.storage import BaseStorage

    glob_store = state.get("_global_store")
    return (
        isinstance(state.get("_node_store_dict"), dict)
        and isinstance(state.get("_edge_store_dict"), dict)
        and isinstance(glob_store, BaseStorage)
        and isinstance(glob_store.__dict__.get("_mapping"), dict)
    )


def _storage(cls: type, parent: weakref.ref, key: Any, mapping: dict[str, Any]) -> Any:
    """A NodeStorage / EdgeStorage exactly as its constructor leaves it, minus the overhead."""
    out = cls.__new__(cls)
    state = out.__dict__
    state["_mapping"] = mapping
    state["_parent"] = parent
    state["_key"] = key
    return out


def batches(graphs: Any, batch_size: int, order: Sequence[int] | None = None) -> Iterator[Any]:
    """Batches of a GraphSet (fast path) or of a plain list of graphs (PyG's collation)."""
    if isinstance(graphs, GraphSet):
        yield from graphs.batches(range(len(graphs)) if order is None else order, batch_size)
        return
    from torch_geometric.data import Batch

    order = list(range(len(graphs))) if order is None else list(order)
    for lo in range(0, len(order), batch_size):
        yield Batch.from_data_list([graphs[i] for i in order[lo : lo + batch_size]])


def labels_of(graphs: Any, name: str = "y") -> list[Tensor]:
    """One label tensor per dialogue, from a GraphSet or a list of graphs."""
    if isinstance(graphs, GraphSet):
        return graphs.dialogue_labels(name)
    return [g[name] for g in graphs]


def count_edges(graphs: Any) -> int:
    """Edges of a GraphSet or a list of graphs, every edge type counted."""
    if isinstance(graphs, GraphSet):
        return graphs.num_edges()
    return sum(int(g[et].edge_index.shape[1]) for g in graphs for et in g.edge_types)
