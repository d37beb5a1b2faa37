"""The data pipeline: corpus → features → normaliser → head targets → graphs.

Everything here is deterministic and cached where it is expensive (features, graph edges), and
shared by every seed and ablation variant of a run. :func:`check_config` resolves every
registered name and range of a config before anything is read or extracted, so a typo costs
nothing. ``ercgraph prepare`` runs this module alone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ercgraph.config import Config, cache_dir, effective_heads, effective_loss
from ercgraph.data.corpus import Corpus
from ercgraph.data.features import FeatureStore
from ercgraph.data.normalise import Standardiser, positional_speakers
from ercgraph.errors import ErcgraphError

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")


@dataclass
class Prepared:
    """Everything the model needs, built once and shared by all seeds (and ablation variants).

    ``store`` holds the features the graphs read: as extracted with ``normalise: standard`` (the
    graphs standardise the rows each batch gathers, bit for bit as standardising the whole
    store would, without a second copy of every feature), standardised per speaker with
    ``normalise: speaker``;
    ``head_states`` what each head learned from the training split.
    """

    corpus: Corpus
    store: FeatureStore
    graphs: dict[str, Any]  # split → GraphSet (or a list of HeteroData: ablation variants)
    edge_types: list[tuple[str, str, str]]
    timings: dict[str, float]
    feature_info: dict[str, Any]
    normaliser: Standardiser | None = None
    head_states: dict[str, dict[str, Any]] = field(default_factory=dict)


# -- validation before any work ------------------------------------------------------------------
def check_config(cfg: Config) -> None:
    """Resolve every registry name, head/loss pairing and the select metric, or raise naming the
    culprit. Runs before any feature is read or extracted."""
    from ercgraph.graphs.build import compose_dropping
    from ercgraph.models.build import head_key, head_specs
    from ercgraph.registry import FUSIONS, HEADS, LOSSES, MODELS, SAMPLERS

    MODELS.get(cfg.model.name)
    fusion = cfg.model.fusion
    if isinstance(fusion, (str, dict)):
        FUSIONS.get(fusion if isinstance(fusion, str) else fusion.get("name", ""))
    SAMPLERS.get(cfg.sampler.name)
    compose_dropping(cfg.graph.builders, cfg.graph.edge_types, cfg.graph.drop_pairs)
    # every model's output carries these fields; heads add the rest
    produced: set[str] = {"utterance", "nodes", "inputs", "present"}
    selectable: list[str] = []
    for name, options in head_specs(effective_heads(cfg)):
        cls = HEADS.get(name)
        produced.update(getattr(cls, "PRODUCES", ()))
        produced.add(head_key(name))
        selectable += list(cls.selectable(**options))
    fusion_name = fusion if isinstance(fusion, str) else (fusion or {}).get("name")
    for term in effective_loss(cfg):
        wants = getattr(LOSSES.get(term.name), "REQUIRES_FUSION", None)
        if wants and fusion_name != wants:
            raise ErcgraphError(
                f"loss term {term.name!r} reads what the {wants!r} fusion reports, but "
                f"model.fusion is {fusion_name!r}; set model.fusion: {wants}"
            )
        for need in getattr(LOSSES.get(term.name), "REQUIRES", ()):
            if need not in produced:
                raise ErcgraphError(
                    f"loss term {term.name!r} reads {need!r}, which no configured head produces "
                    f"(heads: {[n for n, _ in head_specs(effective_heads(cfg))]}); add the head "
                    "that writes it"
                )
    if cfg.train.select_metric not in selectable:
        raise ErcgraphError(
            f"train.select_metric {cfg.train.select_metric!r} is not produced by the configured "
            f"heads; choose one of {selectable}"
        )
    if cfg.metrics.headline is not None and cfg.metrics.headline not in selectable:
        raise ErcgraphError(
            f"metrics.headline {cfg.metrics.headline!r} is not produced by the configured heads; "
            f"choose one of {selectable}"
        )
    device = cfg.train.device
    if not (device in ("auto", "cpu") or device.startswith(("cuda", "mps"))):
        raise ErcgraphError(f"train.device must be auto, cpu or cuda[:N], got {device!r}")
    from ercgraph.train import pick_device

    pick_device(device)  # cuda without CUDA is refused here, not after extraction
    _try_build(cfg)
    check_writable_dir(cache_dir(cfg), "the cache folder (--cache-dir / ERCGRAPH_CACHE)")


def _try_build(cfg: Config) -> None:
    """Build the model body, every loss term and the sampler once with stand-in data (2 classes,
    4-d features of each configured modality), so a bad option value is refused before any
    feature is read or extracted."""
    import torch

    from ercgraph.config import effective_loss
    from ercgraph.losses import build_objective
    from ercgraph.models.build import build_body
    from ercgraph.registry import SAMPLERS

    dims = {m: 4 for m in cfg.features.modalities}
    build_body(cfg.model, dims, [], 2)
    context = {"class_counts": torch.ones(2), "num_classes": 2, "labels": ["a", "b"]}
    build_objective(effective_loss(cfg), context)
    SAMPLERS.create(
        {"name": cfg.sampler.name, **cfg.sampler.options},
        dialogue_labels=[torch.tensor([0, 1])],
        num_classes=2,
        generator=torch.Generator(),
    )


def check_context(cfg: Config, corpus: Corpus) -> None:
    """Refuse a body that declares ``NEEDS_CONTEXT = True`` on a corpus whose dialogues all
    have one utterance (RAVDESS clips), naming the body and the corpus.

    A body declares it when it breaks or means nothing without neighbours (no edge, no other
    utterance of its dialogue); the built-in bodies all degrade to a per-utterance model there
    and train, so none declares it today. Runs once the corpus is read, before any feature is
    read or extracted.
    """
    from ercgraph.registry import MODELS

    if not getattr(MODELS.get(cfg.model.name), "NEEDS_CONTEXT", False):
        return
    if corpus.num_utterances and not corpus.df["dialogue_id"].duplicated().any():
        raise ErcgraphError(
            f"model {cfg.model.name!r} needs dialogues of more than one utterance; corpus "
            f"{corpus.name!r} has only one-utterance dialogues"
        )


def check_writable_dir(path: Path, what: str) -> None:
    """Refuse a folder that is a file, lies under a file, or cannot be written, naming it."""
    import os

    if path.exists() and not path.is_dir():
        raise ErcgraphError(f"{what} {str(path)!r} is a file, not a folder")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ErcgraphError(f"{what} {str(path)!r} lies under the file {str(parent)!r}")
            break
    probe = path if path.exists() else next(p for p in path.parents if p.exists())
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ErcgraphError(f"{what} {str(path)!r} cannot be written ({str(probe)!r} is read-only)")


# -- features ----------------------------------------------------------------------------------
def load_features(
    cfg: Config, corpus: Corpus, provided: FeatureStore | None = None, force: bool = False
) -> tuple[FeatureStore, dict[str, Any]]:
    """The FeatureStore for every configured modality.

    A modality already in ``provided`` (a feature pickle's, or features in memory) is taken from
    there; a modality in ``features.files`` is read from its array file (bring your own
    features); text,
    audio and visual are otherwise extracted (or reused from the cache) with their encoders;
    ``force`` recomputes them (fine-tuning included) whatever the cache holds.
    """
    from ercgraph.encoders.extract import extract_text_features

    store: FeatureStore | None = None
    info: dict[str, Any] = {}
    for modality in cfg.features.modalities:
        if provided is not None and modality in provided.features:
            made = provided.manifest.get(modality, {})
            if made.get("corpus") not in (None, corpus.fingerprint()):
                raise ErcgraphError(
                    f"features for {modality!r} from {made.get('file')} were "
                    "made for another corpus (fingerprint differs)"
                )
            part = FeatureStore(
                {modality: provided.features[modality]},
                {modality: provided.present[modality]},
                {modality: made},
            )
            info[modality] = {"source": made.get("encoder", "reader"), "reused": True}
        elif modality in cfg.features.files:
            from ercgraph.config import data_root
            from ercgraph.data.feature_files import read_feature_file

            t0 = time.perf_counter()
            part = read_feature_file(cfg.features.files[modality], modality, corpus, data_root(cfg))
            info[modality] = {
                "source": "file",
                "file": part.manifest[modality].get("file"),
                "seconds": time.perf_counter() - t0,
            }
        elif modality == "text":
            part, info["text"] = extract_text_features(
                corpus, cfg.features.text, cache_dir(cfg), force=force, mmap=cfg.features.mmap
            )
        elif modality in ("audio", "visual"):
            from ercgraph.encoders.media_extract import extract_media_features

            part, info[modality] = extract_media_features(
                corpus, modality, getattr(cfg.features, modality), cache_dir(cfg), force=force
            )
        else:
            have = sorted(provided.features) if provided is not None else []
            raise ErcgraphError(
                f"features.modalities: no feature source for modality {modality!r}; the reader "
                f"provides {have or 'none'}; text, audio and visual can be extracted, and any "
                "modality can be read from an array file with features.files"
            )
        store = part if store is None else store.merge(part)
    if store is None:
        raise ErcgraphError("features.modalities is empty; name at least one modality")
    store.check_rows(corpus.num_utterances, "features")
    return store, info


def fit_normaliser(cfg: Config, corpus: Corpus, store: FeatureStore) -> Standardiser | None:
    """The standardiser of ``features.normalise``, fitted on the training split only."""
    if cfg.features.normalise == "none":
        return None
    train = torch.tensor((corpus.df["split"] == "train").to_numpy(), dtype=torch.bool)
    return Standardiser.fit(store, train)


# -- heads -------------------------------------------------------------------------------------
def fit_heads(cfg: Config, corpus: Corpus) -> dict[str, dict[str, Any]]:
    """What every configured head learns from the training split (vocabularies, scales)."""
    from ercgraph.models.build import head_key, head_specs
    from ercgraph.registry import HEADS

    return {
        head_key(name): HEADS.get(name).fit(corpus, **options)
        for name, options in head_specs(effective_heads(cfg))
    }


def head_targets(
    cfg: Config, corpus: Corpus, states: dict[str, dict[str, Any]], required: bool = True
) -> dict[str, torch.Tensor]:
    """Every head's per-utterance targets, as graph attributes."""
    from ercgraph.models.build import head_key, head_specs
    from ercgraph.registry import HEADS

    out: dict[str, torch.Tensor] = {}
    for name, options in head_specs(effective_heads(cfg)):
        state = states.get(head_key(name), {})
        out.update(HEADS.get(name).targets(corpus, state, required=required, **options))
    return out


# -- the whole pipeline ------------------------------------------------------------------------
def read_corpus(cfg: Config) -> tuple[Corpus, FeatureStore | None]:
    """The configured corpus, and the features its reader provides (feature pickles). A saved
    fold of a cross-validation (``protocol.fold`` set) is re-split as that fold."""
    from ercgraph.config import data_root
    from ercgraph.data.load import load_corpus
    from ercgraph.protocol import apply_protocol

    if cfg.data.reader == "pickle":
        from ercgraph.data.pickles import read_pickle_features

        corpus, provided = read_pickle_features(cfg.data, data_root(cfg))
    else:
        corpus, provided = load_corpus(cfg), None
    return apply_protocol(cfg, corpus), provided


def prepare(
    cfg: Config,
    corpus: Corpus | None = None,
    splits: tuple[str, ...] = SPLITS,
    normaliser: Standardiser | None = None,
    head_states: dict[str, dict[str, Any]] | None = None,
    features: FeatureStore | None = None,
    force: bool = False,
) -> Prepared:
    """Corpus, features, normaliser, head targets and graphs.

    Args:
        cfg: the run config.
        corpus: an already loaded corpus (``predict``); default: read ``cfg.data``.
        splits: the splits that must be present.
        normaliser: a saved normaliser to apply (``evaluate``/``predict``); default: fit one on
            the training split as ``features.normalise`` says.
        head_states: saved head states (``evaluate``/``predict``); default: fit them on train.
            With saved states, missing target columns are tolerated (new data to predict).
        features: features already in memory for ``corpus`` (rows aligned); a modality listed
            in ``features.modalities`` is taken from here before any encoder runs.
        force: recompute every extracted modality (``ercgraph prepare --force``).
    """
    from ercgraph.graphs.build import build_graph_set

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    provided = features
    if corpus is None:
        corpus, provided = read_corpus(cfg)
    timings["read_s"] = time.perf_counter() - t0
    for split in splits:
        if split not in corpus.splits:
            raise ErcgraphError(
                f"{corpus.source or corpus.name}: the corpus has no {split!r} "
                f"split (found {corpus.splits}); this needs {list(splits)}"
            )
    check_context(cfg, corpus)
    fitted = head_states is None
    # heads first: a missing target column is reported before any feature is extracted
    states = fit_heads(cfg, corpus) if fitted else head_states
    targets = head_targets(cfg, corpus, states, required=fitted)
    t0 = time.perf_counter()
    store, info = load_features(cfg, corpus, provided, force=force)
    timings["features_s"] = time.perf_counter() - t0
    if normaliser is None and fitted:
        normaliser = fit_normaliser(cfg, corpus, store)  # on the real training rows
    if fitted and cfg.augment.enabled:  # training only: evaluate/predict never generate
        from ercgraph.augment import augment

        corpus, store, info["augmentation"] = augment(cfg.augment, corpus, store)
        timings["gan_s"] = info["augmentation"]["gan_s"]
        targets = head_targets(cfg, corpus, states, required=False)
    lazy = None
    if normaliser is not None and cfg.features.normalise == "standard":
        # applied as batches gather their rows: no standardised copy of every feature
        lazy = normaliser.transforms(store)
    elif normaliser is not None:
        if store.mapped:
            log.info("speaker normalisation reads the memory-mapped features into memory")
        speakers = None
        if cfg.features.normalise == "speaker":
            speakers = corpus.df["speaker"].astype(str).tolist()
            looks = positional_speakers(corpus.df["dialogue_id"].astype(str).tolist(), speakers)
            if looks:
                log.warning(
                    "speaker normalisation: speaker names look positional, not personal (%s); "
                    "everyone behind one name is standardised together",
                    looks,
                )
        store = normaliser.apply(store, speakers, cfg.features.speaker_min)
    t0 = time.perf_counter()
    graphs = build_graph_set(
        corpus,
        store,
        cfg.graph.builders,
        cfg.graph.edge_types,
        cache_dir(cfg),
        targets,
        drop_pairs=cfg.graph.drop_pairs,
        standardise=lazy,
    )
    timings["graphs_s"] = time.perf_counter() - t0
    if not len(graphs):
        raise ErcgraphError("no dialogue graphs were built")
    edge_types = sorted(graphs.edge_types)
    first_split = corpus.df.groupby("dialogue_id", sort=False)["split"].first()
    split_of = first_split.loc[graphs.dialogue_ids].to_numpy()
    by_split = {s: graphs.subset(np.flatnonzero(split_of == s)) for s in corpus.splits}
    return Prepared(corpus, store, by_split, edge_types, timings, info, normaliser, states)


def summary(prep: Prepared) -> list[str]:
    """What ``ercgraph prepare`` prints: one line per modality and one for the graphs."""
    lines = []
    n = prep.corpus.num_utterances
    for m, dim in prep.store.dims().items():
        info = prep.feature_info.get(m, {})
        present = int(prep.store.present[m].sum())
        if "done" in info:
            done, failed, reused = info["done"], info["failed"], info["reused"]
        else:
            reused = n if info.get("reused") else 0
            done, failed = n - reused, n - present
        lines.append(
            f"{m}: {n} utterances, dim {dim}; {done} done, {failed} failed, {reused} reused "
            f"({info.get('seconds', 0.0):.1f} s)"
        )
    from ercgraph.graphs.flat import count_edges

    graphs = sum(len(gs) for gs in prep.graphs.values())
    edges = sum(count_edges(gs) for gs in prep.graphs.values())
    per_split = ", ".join(f"{s} {len(v)}" for s, v in prep.graphs.items())
    lines.append(
        f"graphs: {graphs} dialogues ({per_split}), {len(prep.edge_types)} edge types, "
        f"{edges} edges ({prep.timings.get('graphs_s', 0.0):.2f} s)"
    )
    if prep.normaliser is not None:
        lines.append("normaliser: standardised per modality on the training split")
    return lines
