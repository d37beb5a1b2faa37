"""Graph builders and graph assembly: dialogues in, typed utterance edges and HeteroData out."""

from ercgraph.graphs.base import (
    Dialogues,
    EdgeDict,
    EdgeType,
    GraphBuilder,
    IntraModalBuilder,
    validate_edges,
)
from ercgraph.graphs.build import (
    Composition,
    build_edges,
    build_graphs,
    cache_key,
    cached_edges,
    compose,
    drop_missing,
)
from ercgraph.graphs.modality import ModalityBuilder
from ercgraph.graphs.speaker import SpeakerBuilder
from ercgraph.graphs.temporal import TemporalBuilder
from ercgraph.graphs.utils import check_window, ragged_ranges, window_pairs

__all__ = [
    "Composition",
    "Dialogues",
    "EdgeDict",
    "EdgeType",
    "GraphBuilder",
    "IntraModalBuilder",
    "ModalityBuilder",
    "SpeakerBuilder",
    "TemporalBuilder",
    "build_edges",
    "build_graphs",
    "cache_key",
    "cached_edges",
    "check_window",
    "compose",
    "drop_missing",
    "ragged_ranges",
    "validate_edges",
    "window_pairs",
]
