"""The registered ``pickle`` reader and :func:`read_pickle_features`, the two entry points.

:func:`read_pickle_features` returns the Corpus and a
:class:`~ercgraph.data.features.FeatureStore`; the registered ``pickle`` reader
(:func:`read_pickle`) returns the Corpus only and never builds feature matrices.

``data.options``: ``encoding`` (of Python-2 strings, default ``latin1`` as the reference
loaders), ``dev_fraction`` (default 0.1; always checked, used where the layout has no
validation list), ``text_fields``, ``text_combine`` (an error for a layout without features).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ercgraph.config import DataConfig
from ercgraph.data.corpus import Corpus
from ercgraph.data.pickles.common import _file, structure_guard
from ercgraph.data.pickles.detect import _load
from ercgraph.data.pickles.layout import PickleLayout
from ercgraph.data.pickles.multiemo import _read_multiemo
from ercgraph.data.pickles.parse import parse_layout
from ercgraph.data.pickles.store import _layout_features, _store
from ercgraph.data.table import check_options
from ercgraph.errors import ErcgraphError
from ercgraph.registry import READERS

if TYPE_CHECKING:  # FeatureStore imports torch; reading a corpus must not
    from ercgraph.data.features import FeatureStore

PICKLE_OPTIONS = ("encoding", "dev_fraction", "text_fields", "text_combine")


def read_pickle_features(
    data: DataConfig,
    root: Path | None,
    *,
    features: bool = True,
) -> tuple[Corpus, FeatureStore | None]:
    """Read a conversation/feature pickle: the Corpus and its features (see the module docstring).

    Args:
        data: The ``data`` config section: ``path`` is the pickle file, or ``paths`` maps
            ``speakers``/``text``/``audio``/``visual`` to MultiEMO's separate files.
        root: Data root against which relative paths are resolved.
        features: Build the FeatureStore (False: the Corpus only, without importing torch).

    Returns:
        The Corpus and a FeatureStore aligned to its rows (float32, all present), or None when
        the layout holds no features (COSMIC's text/label pickle) or ``features`` is False.

    Raises:
        ErcgraphError: for a disallowed/corrupt pickle, an unknown layout, inconsistent fields,
            feature rows that do not match a dialogue's utterances, or bad options.
    """
    check_options(data, PICKLE_OPTIONS, "pickle")
    if data.paths:
        return _read_multiemo(data, root, features)
    path = _file(data.path, root, "data.path", "the pickle reader wants one .pkl file")
    obj, layout = _load(path, data)
    with structure_guard(path, f"the {layout.name} layout, {layout.describe()}"):
        return _parse_features(obj, path, data, layout, features)


def _parse_features(
    obj: Any, path: Path, data: DataConfig, layout: PickleLayout, features: bool
) -> tuple[Corpus, FeatureStore | None]:
    parsed = parse_layout(obj, path, data, layout)
    if not features:
        return parsed.corpus, None
    if not (layout.text or layout.audio or layout.visual):
        chosen = [k for k in ("text_fields", "text_combine") if k in (data.options or {})]
        if chosen:
            raise ErcgraphError(
                f"config: data.options.{chosen[0]}: the {layout.name} layout "
                f"of {str(path)!r} holds no features"
            )
        return parsed.corpus, None
    feats, manifest = _layout_features(parsed, data, parsed.corpus.fingerprint())
    return parsed.corpus, _store(feats, manifest)


@READERS.register("pickle")
def read_pickle(data: DataConfig, root: Path | None) -> Corpus:
    """Read a conversation pickle's Corpus (layout chosen by its length and content).

    The features, if any, are not built; :func:`read_pickle_features` returns them too.

    Args:
        data: The ``data`` config section; ``path`` is the pickle file (or ``paths``, MultiEMO).
        root: Data root against which a relative path is resolved.

    Raises:
        ErcgraphError: for a disallowed/corrupt pickle, an unknown layout, or inconsistent fields.
    """
    return read_pickle_features(data, root, features=False)[0]
