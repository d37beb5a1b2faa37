"""Layout detection: :data:`LAYOUTS` by tuple length, then the content among same-length ones.

The top-level object of a pickle is a list/tuple whose length tells the layout apart; where two
layouts share a length, the content decides (each lineage module says how). A length that is
not in :data:`LAYOUTS`, or items of the wrong kind (a dict expected, say), is an error listing
the known layouts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ercgraph.config import DataConfig
from ercgraph.data.pickles.common import structure_guard
from ercgraph.data.pickles.cosmic import COSMIC_MELD_ROBERTA, COSMIC_MELD_TEXT, COSMIC_TEXT
from ercgraph.data.pickles.dialoguegcn import DIALOGUEGCN
from ercgraph.data.pickles.layout import PickleLayout
from ercgraph.data.pickles.mmgcn import MMGCN_MELD
from ercgraph.data.pickles.sdt import GRAPHSMILE_MELD, SDT_IEMOCAP, SDT_MELD
from ercgraph.data.safe_pickle import safe_load
from ercgraph.errors import ErcgraphError

#: Tuple length → layout (with its same-length alternatives).
LAYOUTS: dict[int, PickleLayout] = {
    6: COSMIC_TEXT,
    7: COSMIC_MELD_TEXT,
    9: DIALOGUEGCN,
    10: MMGCN_MELD,
    11: COSMIC_MELD_ROBERTA,
    12: SDT_IEMOCAP,
    13: SDT_MELD,
    14: GRAPHSMILE_MELD,
}


def known_layouts() -> str:
    """Every known layout, for messages."""
    return "; ".join(layout.describe() for _, layout in sorted(LAYOUTS.items()))


def detect_layout(obj: Any, path: Path) -> PickleLayout:
    """The layout of an unpickled object: by its length, then by content among same-length ones.

    Raises:
        ErcgraphError: for a non-sequence, an unknown length, or items of the wrong kind (a dict
            keyed by dialogue / a list of keys expected), listing the known layouts.
    """
    if not isinstance(obj, (list, tuple)):
        raise ErcgraphError(
            f"{path}: unknown pickle layout: the top level is a {type(obj).__name__}, expected a "
            f"list/tuple; known layouts: {known_layouts()}"
        )
    if len(obj) not in LAYOUTS:
        raise ErcgraphError(
            f"{path}: unknown pickle layout: a {type(obj).__name__} of {len(obj)} items; known "
            f"layouts: {known_layouts()}"
        )
    layout = LAYOUTS[len(obj)]
    layout = next((alt for alt in layout.alternatives if alt.matches(obj)), layout)
    for name in layout.table_fields:
        item = obj[layout.index(name)]
        if not isinstance(item, dict):
            raise ErcgraphError(
                f"{path}: unknown pickle layout: a {type(obj).__name__} of {len(obj)} items, but "
                f"item {layout.index(name)} is a {type(item).__name__} where the {layout.name} "
                f"layout has {name!r}, a dict keyed by dialogue; known layouts: "
                f"{known_layouts()}"
            )
    for name in layout.key_fields:
        item = obj[layout.index(name)]
        if not isinstance(item, (list, tuple, set, frozenset, np.ndarray)):
            raise ErcgraphError(
                f"{path}: unknown pickle layout: a {type(obj).__name__} of {len(obj)} items, but "
                f"item {layout.index(name)} is a {type(item).__name__} where the {layout.name} "
                f"layout has {name!r}, a list of dialogue keys; known layouts: "
                f"{known_layouts()}"
            )
    return layout


def _load(path: Path, data: DataConfig) -> tuple[Any, PickleLayout]:
    obj = safe_load(path, encoding=(data.options or {}).get("encoding", "latin1"))
    with structure_guard(path, f"a list/tuple in one of the known layouts: {known_layouts()}"):
        return obj, detect_layout(obj, path)
