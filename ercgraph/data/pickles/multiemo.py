"""MultiEMO's separate files: a speakers pickle plus one feature dict per modality.

* MultiEMO (separate files): ``data.paths`` = ``{speakers: Speakers.pkl, text: TextFeatures.pkl,
  audio: AudioFeatures.pkl, visual: VisualFeatures.pkl}`` (any of text/audio/visual). The
  speakers file is read as one of the known layouts (MultiEMO ships the 9/10-item ones); only
  its utterances, speakers, labels and splits are used. Each modality file is a dict keyed by
  the same dialogue keys (MultiEMO: text 768 EmoBERTa, audio 512, visual 1000 VisExtNet).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ercgraph.config import DataConfig
from ercgraph.data.corpus import Corpus
from ercgraph.data.pickles.common import _file, file_sha256, structure_guard
from ercgraph.data.pickles.detect import _load
from ercgraph.data.pickles.parse import parse_layout
from ercgraph.data.pickles.store import _store
from ercgraph.data.safe_pickle import safe_load
from ercgraph.errors import ErcgraphError

if TYPE_CHECKING:  # FeatureStore imports torch; reading a corpus must not
    from ercgraph.data.features import FeatureStore

MULTIEMO_PATHS = ("speakers", "text", "audio", "visual")


def _read_multiemo(
    data: DataConfig,
    root: Path | None,
    features: bool,
) -> tuple[Corpus, FeatureStore | None]:
    paths = data.paths or {}
    if data.path:
        raise ErcgraphError(
            "config: the pickle reader takes data.path (one pickle) or "
            "data.paths (MultiEMO's separate files), not both"
        )
    unknown = [k for k in paths if k not in MULTIEMO_PATHS]
    if unknown:
        raise ErcgraphError(
            f"config: unknown key 'data.paths.{unknown[0]}' for the pickle reader "
            f"(MultiEMO files); allowed: {', '.join(MULTIEMO_PATHS)}"
        )
    if "speakers" not in paths:
        raise ErcgraphError(
            "config: data.paths needs 'speakers' (MultiEMO's Speakers.pkl: "
            "speakers, labels and splits) next to text/audio/visual"
        )
    modalities = [m for m in MULTIEMO_PATHS[1:] if m in paths]
    if not modalities:
        raise ErcgraphError(
            "config: data.paths names no feature file; give at least one of "
            "text, audio, visual next to speakers"
        )
    if "text_fields" in (data.options or {}):
        raise ErcgraphError(
            "config: data.options.text_fields does not apply to MultiEMO's "
            "separate files (data.paths.text is the text)"
        )
    hint = "MultiEMO's separate .pkl files"
    path = _file(paths["speakers"], root, "data.paths.speakers", hint)
    obj, layout = _load(path, data)
    with structure_guard(path, f"the {layout.name} layout, {layout.describe()}"):
        parsed = parse_layout(obj, path, data, layout)
    corpus = parsed.corpus
    corpus.meta["layout"] = f"multiemo({layout.name})"
    if not features:
        return corpus, None
    fingerprint = corpus.fingerprint()
    feats, manifest = {}, {}
    for modality in modalities:
        file = _file(paths[modality], root, f"data.paths.{modality}", hint)
        table = safe_load(file, encoding=(data.options or {}).get("encoding", "latin1"))
        with structure_guard(file, "a dict of [utterances, dim] arrays keyed by dialogue"):
            feats[modality] = parsed.feature_matrix(table, modality, file)
        manifest[modality] = {
            "encoder": f"pickle:multiemo:{modality}",
            "file": file.name,
            "sha256": file_sha256(file),
            "dim": int(feats[modality].shape[1]),
            "corpus": fingerprint,
        }
    return corpus, _store(feats, manifest)
