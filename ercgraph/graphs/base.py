"""The graph-builder contract: a flat batch of dialogues in, typed utterance edges out.

:class:`Dialogues` describes one or more conversations as flat tensors (speaker per utterance and
dialogue boundaries). A :class:`GraphBuilder` turns it into a dict of edge indices keyed by
``(src_modality, relation, dst_modality)``. Builders behave like PyG transforms
(``torch_geometric/transforms/base_transform.py``): ``__call__`` works on a copy, an abstract
``forward`` does the work, and ``__repr__`` lists every constructor argument because it is part of
the graph cache key.

Conventions:
    * Node ``i`` of every modality is utterance ``i`` of the flat batch; edge indices are global.
    * An edge ``j -> i`` (``edge_index[:, k] == (j, i)``) means utterance ``i`` receives a
      message from ``j``. A *past* edge comes from an earlier utterance (``j < i``), a *future*
      edge from a later one.
    * Edges never cross dialogues.
"""

from __future__ import annotations

import inspect
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor

from ercgraph.errors import ErcgraphError

if TYPE_CHECKING:
    from ercgraph.data.corpus import Corpus

#: An edge type: ``(src_modality, relation, dst_modality)``.
EdgeType = tuple[str, str, str]
#: What a builder returns: edge type -> ``LongTensor [2, E]`` of global utterance indices.
EdgeDict = dict[EdgeType, Tensor]

_CACHED = ("batch", "pos", "sizes")
_MISSING = object()

#: What a relation can say about the utterance pair ``src -> dst`` it links (see
#: :attr:`GraphBuilder.PAIR_RULES`); each maps ``(src, dst, speaker)`` to a bool mask. Indices
#: are global (flat batch) or local (one dialogue): utterances are in turn order either way.
PAIR_PREDICATES: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "past": lambda src, dst, speaker: src < dst,
    "future": lambda src, dst, speaker: src > dst,
    "same_speaker": lambda src, dst, speaker: (speaker[src] == speaker[dst]) & (src != dst),
    "other_speaker": lambda src, dst, speaker: speaker[src] != speaker[dst],
}


def pair_mask(rule: Sequence[str], src: Tensor, dst: Tensor, speaker: Tensor) -> Tensor:
    """Which pairs ``src[k] -> dst[k]`` match every predicate of ``rule`` (a bool mask)."""
    mask = torch.ones(src.shape, dtype=torch.bool)
    for name in rule:
        if name not in PAIR_PREDICATES:
            raise ErcgraphError(
                f"unknown pair rule {name!r}; expected one of {sorted(PAIR_PREDICATES)}"
            )
        mask &= PAIR_PREDICATES[name](src, dst, speaker)
    return mask


@dataclass(eq=False)
class Dialogues:
    """A flat batch of dialogues: the input of every graph builder.

    The utterances of a dialogue are contiguous and in turn order; dialogue ``d`` holds the
    utterances ``ptr[d] <= i < ptr[d + 1]``.

    Args:
        speaker: ``LongTensor [N]``, the local speaker index of each utterance (0 = the first
            speaker of its dialogue, 1 = the second one to speak, ...).
        ptr: ``LongTensor [D + 1]``, dialogue boundaries (``ptr[0] == 0``, ``ptr[-1] == N``).
        modalities: The node types of the graph (one node per utterance and modality).
        ids: Optional dialogue names (``D`` strings), used in error messages.

    Raises:
        ErcgraphError: if the tensors are not 1-D integer tensors or ``ptr`` is not a valid
            boundary vector for ``N`` utterances.
    """

    speaker: Tensor
    ptr: Tensor
    modalities: tuple[str, ...] = ("text",)
    ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        self.speaker = _as_index(self.speaker, "speaker")
        self.ptr = _as_index(self.ptr, "ptr")
        if isinstance(self.modalities, str):
            self.modalities = (self.modalities,)
        self.modalities = tuple(self.modalities)
        if not self.modalities or not all(isinstance(m, str) and m for m in self.modalities):
            raise ErcgraphError(
                f"Dialogues: modalities must be non-empty names, got {self.modalities!r}"
            )
        if len(set(self.modalities)) != len(self.modalities):
            raise ErcgraphError(f"Dialogues: modalities repeat a name: {self.modalities!r}")
        n = self.speaker.numel()
        if self.ptr.numel() == 0 or int(self.ptr[0]) != 0 or int(self.ptr[-1]) != n:
            raise ErcgraphError(
                f"Dialogues: ptr must start at 0 and end at the number of utterances ({n}), "
                f"got {self.ptr.tolist()[:3]}...{self.ptr.tolist()[-1:]}"
            )
        if bool((self.ptr[1:] < self.ptr[:-1]).any()):
            d = int(torch.nonzero(self.ptr[1:] < self.ptr[:-1])[0])
            raise ErcgraphError(f"Dialogues: ptr must be non-decreasing; ptr[{d + 1}] < ptr[{d}]")
        if self.ids is not None:
            self.ids = tuple(str(i) for i in self.ids)
            if len(self.ids) != self.num_dialogues:
                raise ErcgraphError(
                    f"Dialogues: {len(self.ids)} ids for {self.num_dialogues} dialogues"
                )
        if n and int(self.speaker.min()) < 0:
            i = int(torch.nonzero(self.speaker < 0)[0])
            raise ErcgraphError(f"Dialogues: speaker[{i}] is negative ({int(self.speaker[i])})")

    # -- constructors ----------------------------------------------------------------------
    @classmethod
    def from_corpus(cls, corpus: Corpus, modalities: Sequence[str] = ("text",)) -> Dialogues:
        """The dialogues of a Corpus, in row order (speakers by first appearance per dialogue)."""
        speaker = torch.from_numpy(corpus.local_speakers())
        index = torch.from_numpy(corpus.dialogue_index())
        sizes = torch.bincount(index)
        ptr = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)])
        return cls(speaker, ptr, tuple(modalities), tuple(corpus.dialogue_ids()))

    @classmethod
    def from_sequences(
        cls, speakers: Sequence[Sequence[object]], modalities: Sequence[str] = ("text",)
    ) -> Dialogues:
        """Build from one speaker sequence per dialogue, e.g. ``[["A", "B", "A"], ["C"]]``.

        Speaker names are mapped to local indices by order of first appearance in each dialogue.
        A convenience for small, hand-made examples.
        """
        local: list[int] = []
        for seq in speakers:
            order: dict[object, int] = {}
            local.extend(order.setdefault(s, len(order)) for s in seq)
        sizes = torch.tensor([len(seq) for seq in speakers], dtype=torch.long)
        ptr = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)])
        return cls(torch.tensor(local, dtype=torch.long), ptr, tuple(modalities))

    # -- views -------------------------------------------------------------------------------
    @property
    def num_utterances(self) -> int:
        return self.speaker.numel()

    @property
    def num_dialogues(self) -> int:
        return self.ptr.numel() - 1

    @cached_property
    def sizes(self) -> Tensor:
        """``LongTensor [D]``: number of utterances per dialogue."""
        return self.ptr[1:] - self.ptr[:-1]

    @cached_property
    def batch(self) -> Tensor:
        """``LongTensor [N]``: dialogue index of each utterance."""
        n = self.num_utterances
        return torch.repeat_interleave(torch.arange(self.num_dialogues), self.sizes, output_size=n)

    @cached_property
    def pos(self) -> Tensor:
        """``LongTensor [N]``: position of each utterance inside its dialogue (0-based)."""
        return torch.arange(self.num_utterances) - self.ptr[self.batch]

    def name(self, d: int) -> str:
        """How messages name dialogue ``d``: its id, else its position (``#d``)."""
        return repr(self.ids[d]) if self.ids is not None else f"#{d}"

    def clone(self) -> Dialogues:
        """A deep copy (cached views included), so a builder cannot touch the caller's tensors."""
        out = Dialogues.__new__(Dialogues)
        out.speaker = self.speaker.clone()
        out.ptr = self.ptr.clone()
        out.modalities = self.modalities
        out.ids = self.ids
        for name in _CACHED:
            if name in self.__dict__:
                out.__dict__[name] = self.__dict__[name].clone()
        return out

    def __repr__(self) -> str:
        return (
            f"Dialogues(num_dialogues={self.num_dialogues}, "
            f"num_utterances={self.num_utterances}, modalities={self.modalities!r})"
        )


def _as_index(value: object, name: str) -> Tensor:
    if not isinstance(value, Tensor):
        value = torch.as_tensor(value)
    if (
        value.dim() != 1
        or value.is_floating_point()
        or value.is_complex()
        or value.dtype == torch.bool
    ):
        raise ErcgraphError(
            f"Dialogues: {name} must be a 1-D integer tensor, got dtype {value.dtype} and shape "
            f"{tuple(value.shape)}"
        )
    return value.long()


class GraphBuilder(ABC):
    """Base class of graph builders: :class:`Dialogues` in, typed edges out.

    Subclasses set :attr:`EDGE_TYPES` (every relation name the class can produce), store each
    constructor argument under an attribute of the same name, or that name with a leading
    underscore (so the default ``__repr__`` lists them), and implement :meth:`forward`. The
    ``repr`` is part of the graph cache key: :func:`cache_identity` refuses a builder whose
    ``repr`` does not show every constructor argument with its value. ``forward`` must be
    vectorised over the whole flat batch: no Python loop over utterances, edges or dialogues.

    Calling a builder runs :meth:`forward` on a copy of the input and validates the result:
    keys are ``(src_modality, relation, dst_modality)`` with both modalities in
    ``dialogues.modalities`` and the relation in :attr:`edge_types`; values are
    ``LongTensor [2, E]`` whose indices lie in ``[0, N)`` and never cross dialogues.

    Example (every utterance receives from the first utterance of its dialogue)::

        @BUILDERS.register("from_first")
        class FromFirstBuilder(IntraModalBuilder):
            EDGE_TYPES = ("from_first",)

            def forward_relations(self, dialogues):
                i = torch.arange(dialogues.num_utterances)
                first = dialogues.ptr[:-1][dialogues.batch]
                keep = i != first
                return {"from_first": torch.stack([first[keep], i[keep]])}
    """

    #: Every relation name this class can produce.
    EDGE_TYPES: ClassVar[tuple[str, ...]] = ()
    #: Bump (any int or str) when :meth:`forward` changes what it returns for the same arguments:
    #: it is part of the graph cache key, so old cache entries are not reused.
    VERSION: ClassVar[int | str | None] = None
    #: Relation -> the :data:`PAIR_PREDICATES` every edge of that relation satisfies, all
    #: together (e.g. ``{"past": ("past",)}``): the information the relation carries about a
    #: pair. A pair ablation that drops the relation removes every pair matching its rule from
    #: every relation (see :func:`ercgraph.graphs.build.remove_pairs`); a relation without a rule
    #: is represented by the pairs its edges link.
    PAIR_RULES: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Set to True when :meth:`forward` already returns every edge index sorted by
    #: ``(dst, src)``; graph assembly then skips its own sort check (the contract test in
    #: ``tests/graphs/test_contract.py`` holds such builders to it).
    SORTED_OUTPUT: ClassVar[bool] = False

    @property
    def edge_types(self) -> tuple[str, ...]:
        """The relations this configured instance produces (a subset of :attr:`EDGE_TYPES`)."""
        return tuple(self.EDGE_TYPES)

    def __call__(self, dialogues: Dialogues) -> EdgeDict:
        if not isinstance(dialogues, Dialogues):
            raise ErcgraphError(
                f"{self!r}: expected a Dialogues batch, got {type(dialogues).__name__}"
            )
        out = self.forward(dialogues.clone())
        validate_edges(self, out, dialogues)
        return out

    @abstractmethod
    def forward(self, dialogues: Dialogues) -> EdgeDict:
        """Return ``{(src_modality, relation, dst_modality): LongTensor [2, E]}``."""

    def estimate_edges(self, dialogues: Dialogues, cap: int | None = None) -> Tensor | None:
        """How many edges :meth:`forward` returns for each dialogue, computed without building
        them (closed form over dialogue sizes, vectorised); graph assembly checks it against its
        size limits before anything is allocated.

        Args:
            dialogues: The batch.
            cap: If given, count as if every context window of this builder were at most
                ``cap`` wide (used to suggest a window that fits); builders without a window
                ignore it.

        Returns:
            ``LongTensor [D]``: edges per dialogue summed over every edge type this builder
            returns (an intra-modal relation counts once per modality), or ``None`` when the
            builder cannot tell (the default; such a builder is not size-checked).
        """
        return None

    def __repr__(self) -> str:
        args = []
        for name in init_arguments(type(self)):
            value = _stored(self, name)
            args.append(f"{name}={'?' if value is _MISSING else repr(value)}")
        return f"{type(self).__name__}({', '.join(args)})"


class IntraModalBuilder(GraphBuilder):
    """A builder whose relations link utterances inside each modality.

    Subclasses implement :meth:`forward_relations` (relation -> utterance edges); the base class
    replicates every relation for every modality as ``(m, relation, m)`` and adds an empty edge
    set for a relation of :attr:`edge_types` the subclass left out, so every dialogue carries the
    same edge types.
    """

    @abstractmethod
    def forward_relations(self, dialogues: Dialogues) -> dict[str, Tensor]:
        """Return ``{relation: LongTensor [2, E]}`` over global utterance indices."""

    def forward(self, dialogues: Dialogues) -> EdgeDict:
        rel = self.forward_relations(dialogues)
        if not isinstance(rel, dict):
            raise ErcgraphError(
                f"{self!r}: forward_relations must return a dict relation -> edge_index, got "
                f"{type(rel).__name__}"
            )
        for name in self.edge_types:
            if name not in rel:
                rel[name] = torch.empty(2, 0, dtype=torch.long)
        return {(m, name, m): ei for m in dialogues.modalities for name, ei in rel.items()}


def validate_edges(builder: object, edges: object, dialogues: Dialogues) -> None:
    """Check a builder's output against the contract.

    Raises:
        ErcgraphError: naming the builder, the edge type and the offending key, index or value.
    """
    if not isinstance(edges, dict):
        raise ErcgraphError(
            f"{builder!r}: must return a dict edge type -> edge_index, got {type(edges).__name__}"
        )
    declared = tuple(getattr(builder, "EDGE_TYPES", ()))
    produced = tuple(getattr(builder, "edge_types", declared))
    n = dialogues.num_utterances
    checked: set[int] = set()  # intra-modal builders share one tensor across modalities
    for key, ei in edges.items():
        if not (isinstance(key, tuple) and len(key) == 3 and all(isinstance(k, str) for k in key)):
            raise ErcgraphError(
                f"{builder!r}: edge type {key!r} must be a (src_modality, relation, dst_modality) "
                "tuple of strings"
            )
        src_m, rel, dst_m = key
        for m in (src_m, dst_m):
            if m not in dialogues.modalities:
                raise ErcgraphError(
                    f"{builder!r}: edge type {key!r} names modality {m!r}; expected one of "
                    f"{list(dialogues.modalities)}"
                )
        if rel not in declared:
            raise ErcgraphError(
                f"{builder!r}: edge type {key!r} uses relation {rel!r}, which is not declared in "
                f"{type(builder).__name__}.EDGE_TYPES {list(declared)}"
            )
        if rel not in produced:
            raise ErcgraphError(
                f"{builder!r}: edge type {key!r} uses relation {rel!r}, which this configuration "
                f"does not produce (edge_types={list(produced)})"
            )
        if not isinstance(ei, Tensor) or ei.dim() != 2 or ei.shape[0] != 2:
            shape = tuple(ei.shape) if isinstance(ei, Tensor) else type(ei).__name__
            raise ErcgraphError(
                f"{builder!r}: edge type {key!r}: edge_index must be a LongTensor [2, E], "
                f"got {shape}"
            )
        if ei.dtype != torch.long:
            raise ErcgraphError(
                f"{builder!r}: edge type {key!r}: edge_index must have dtype torch.int64, "
                f"got {ei.dtype}"
            )
        if ei.numel() == 0 or id(ei) in checked:
            continue
        checked.add(id(ei))
        low, high = torch.aminmax(ei)
        if int(low) < 0 or int(high) >= n:
            row, col = (int(v) for v in torch.nonzero((ei < 0) | (ei >= n))[0])
            side = "source" if row == 0 else "target"
            raise ErcgraphError(
                f"{builder!r}: edge type {key!r}: edge {col} has {side} index "
                f"{int(ei[row, col])}, outside [0, {n}) (the number of utterances)"
            )
        batch = dialogues.batch
        src_batch, dst_batch = batch.index_select(0, ei[0]), batch.index_select(0, ei[1])
        if not torch.equal(src_batch, dst_batch):
            col = int(torch.nonzero(src_batch != dst_batch)[0])
            j, i = int(ei[0, col]), int(ei[1, col])
            raise ErcgraphError(
                f"{builder!r}: edge type {key!r}: edge {col} ({j} -> {i}) links dialogue "
                f"{int(batch[j])} to dialogue {int(batch[i])}; edges must stay inside a dialogue"
            )


# -- the cache key ------------------------------------------------------------------------------
def init_arguments(cls: type) -> list[str]:
    """The constructor argument names of a builder class (``*args`` and ``**kwargs`` included)."""
    if cls.__init__ is object.__init__:  # no constructor of its own: no arguments
        return []
    params = inspect.signature(cls.__init__).parameters
    return [name for name in params if name != "self"]


def _stored(builder: object, name: str) -> object:
    value = getattr(builder, name, _MISSING)
    return getattr(builder, f"_{name}", _MISSING) if value is _MISSING else value


def class_path(cls: type) -> str:
    """``module:qualname`` of a class."""
    return f"{cls.__module__}:{cls.__qualname__}"


def cache_identity(builder: GraphBuilder) -> dict[str, object]:
    """What identifies a configured builder in the graph cache key.

    Returns:
        ``{"class": "module:qualname", "version": cls.VERSION, "repr": repr(builder)}``.

    Raises:
        ErcgraphError: naming the builder class and the argument, when a constructor argument is
            not stored as ``self.<name>`` (or ``self._<name>``) or the ``repr`` does not show it
            as ``name=value``: two configurations would then share one cache entry. Also when
            ``VERSION`` is not an int, a str or None.
    """
    cls = type(builder)
    where = f"graph builder {class_path(cls)}"
    text = repr(builder)
    for name in init_arguments(cls):
        value = _stored(builder, name)
        if value is _MISSING:
            raise ErcgraphError(
                f"{where}: constructor argument {name!r} is not stored as self.{name} (or "
                f"self._{name}), so its repr {text} cannot show it and the graph cache could "
                f"mix configurations; store it as self.{name}"
            )
        shown = rf"(?<![\w.]){re.escape(name)}={re.escape(repr(value))}(?=[,)]|$)"
        if not re.search(shown, text):
            raise ErcgraphError(
                f"{where}: its repr {text} does not show constructor argument {name!r} as "
                f"{name}={value!r}; the repr is the graph cache key, so list every argument "
                "(or drop the custom __repr__)"
            )
    version = getattr(cls, "VERSION", None)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int | str)):
        raise ErcgraphError(
            f"{where}: {cls.__name__}.VERSION must be an int, a str or None, got {version!r}"
        )
    return {"class": class_path(cls), "version": version, "repr": text}
