"""The feature matrices of a parsed pickle, and the FeatureStore that holds them.

**Features.** Modalities are ``text``, ``audio`` and ``visual`` (those the layout has), float32
``[utterances, dim]`` in Corpus row order, all present. Every dialogue's array must have one row
per utterance and the same width as the others; dims are inferred from the arrays. ``text`` is
``roberta1`` (``videoText`` / ``videoText0``) by default; ``data.options.text_fields`` (a list, or
one name) names one or more text fields (``roberta1``..``roberta4`` work for every RoBERTa layout,
as do the layout's own names), combined by ``data.options.text_combine``: ``concat`` (default; dims
add up, 4096 for all four) or ``mean`` (element-wise average; dims must agree). The manifest of a
modality is ``{"encoder": "pickle:<layout>:<field>", "file", "sha256", "dim", "corpus"}`` where
``<field>`` is ``roberta1+roberta2`` for a concatenation and ``mean(roberta1,roberta2)`` for an
average, and ``corpus`` is the Corpus fingerprint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ercgraph.config import DataConfig
from ercgraph.data.pickles.common import file_sha256
from ercgraph.data.pickles.layout import PickleLayout
from ercgraph.data.pickles.parse import ParsedPickle
from ercgraph.errors import ErcgraphError

if TYPE_CHECKING:  # FeatureStore imports torch; reading a corpus must not
    from ercgraph.data.features import FeatureStore

TEXT_COMBINE = ("concat", "mean")


def _text_choice(data: DataConfig, layout: PickleLayout) -> tuple[list[str], str]:
    options = data.options or {}
    names = options.get("text_fields")
    if names is None:
        names = [layout.text[0]]
    elif isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ErcgraphError(
            f"config: data.options.text_fields must be a list of field names, got {names!r}"
        )
    combine = options.get("text_combine", "concat")
    if combine not in TEXT_COMBINE:
        raise ErcgraphError(
            f"config: data.options.text_combine must be one of "
            f"{', '.join(TEXT_COMBINE)}, got {combine!r}"
        )
    return layout.resolve_text(names), combine


def _layout_features(
    parsed: ParsedPickle,
    data: DataConfig,
    corpus_fp: str,
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
    layout, obj, path = parsed.layout, parsed.obj, parsed.path
    sha = file_sha256(path)
    feats: dict[str, np.ndarray] = {}
    manifest: dict[str, dict[str, Any]] = {}

    def add(modality: str, x: np.ndarray, what: str) -> None:
        feats[modality] = x
        manifest[modality] = {
            "encoder": f"pickle:{layout.name}:{what}",
            "file": path.name,
            "sha256": sha,
            "dim": int(x.shape[1]),
            "corpus": corpus_fp,
        }

    if layout.text:
        names, combine = _text_choice(data, layout)
        parts = [parsed.feature_matrix(obj[layout.index(n)], n, path) for n in names]
        if len(parts) == 1:
            add("text", parts[0], names[0])
        elif combine == "concat":
            add("text", np.concatenate(parts, axis=1), "+".join(names))
        else:
            dims = {n: p.shape[1] for n, p in zip(names, parts)}
            if len(set(dims.values())) > 1:
                raise ErcgraphError(
                    f"{path}: data.options.text_combine 'mean' needs text fields "
                    f"of one width, got {dims}"
                )
            add("text", np.mean(parts, axis=0, dtype=np.float32), f"mean({','.join(names)})")
    for modality, name in (("audio", layout.audio), ("visual", layout.visual)):
        if name is not None:
            add(modality, parsed.feature_matrix(obj[layout.index(name)], name, path), name)
    return feats, manifest


def _store(feats: dict[str, np.ndarray], manifest: dict[str, dict[str, Any]]) -> FeatureStore:
    import torch

    from ercgraph.data.features import FeatureStore

    return FeatureStore(
        {m: torch.from_numpy(np.ascontiguousarray(x)) for m, x in feats.items()}, manifest=manifest
    )
