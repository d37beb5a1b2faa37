"""Text features for a Corpus: (optionally fine-tune,) encode, cache.

:func:`extract_text_features` is the one call the training recipe makes. Features are cached in
``cache_dir/features/<key>.safetensors`` where the key hashes a manifest of everything they
depend on: the encoder (resolved name or path and a content fingerprint of its files), pooling,
normalisation, token limit, context turns, the corpus content and the fine-tuning settings. A
matching, intact cache file is reused; anything else is recomputed.

With fine-tuning enabled the encoder is first fine-tuned into
``cache_dir/finetuned/<key>/`` (reused when its settings match), and features are extracted with
the fine-tuned encoder using the fine-tuning's ``context_turns`` and ``max_length`` (so the
encoder sees inputs shaped as in training). ``features.text.context_turns`` and ``max_length``
must then keep their defaults: a config that sets them while fine-tuning is refused, naming the
``features.text.finetune.*`` keys to set instead. The fine-tuned folder is a plain transformers
model, so its features are not L2-normalised, while those of the default MiniLM are (it is a
sentence-transformers model ending in a Normalize module; see
:class:`~ercgraph.encoders.text.TextEncoder`).

Every utterance gets a vector: an empty text is encoded too (to the special tokens alone), so the
``present`` mask of the ``text`` modality is True everywhere.

``force=True`` recomputes everything: the features, and the fine-tuned encoder when fine-tuning is
enabled.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ercgraph.config import TextFeatureConfig
from ercgraph.data.features import FeatureStore, cached, manifest_key
from ercgraph.encoders.context import build_encoder_inputs, check_window, turn_by_turn
from ercgraph.encoders.finetune import finetune_key, finetune_settings, finetune_text_encoder
from ercgraph.encoders.text import (
    POOLINGS,
    TextEncoder,
    encoder_fingerprint,
    resolve_model,
    sentence_transformers_normalizes,
)
from ercgraph.errors import ErcgraphError

if TYPE_CHECKING:
    from ercgraph.data.corpus import Corpus

log = logging.getLogger(__name__)


def text_manifest(
    corpus: Corpus,
    encoder: str,
    cfg: TextFeatureConfig,
    context_turns: int,
    max_length: int,
    future_turns: int = 0,
    pool: str = "all",
) -> dict[str, dict[str, Any]]:
    """The manifest of text features made by ``encoder`` (an already resolved name or path).

    The future window and pooling span enter only when they differ from their defaults, so the
    features cached before they existed keep their keys.
    """
    manifest = {
        "encoder": encoder,
        "encoder_fingerprint": encoder_fingerprint(encoder),
        "pooling": cfg.pooling,
        "normalize": sentence_transformers_normalizes(encoder),
        "max_length": int(max_length),
        "context_turns": int(context_turns),
        "corpus": corpus.fingerprint(),
        "finetune": finetune_key(cfg.finetune, with_enabled=True) if cfg.finetune.enabled else None,
    }
    if turn_by_turn(future_turns, pool):
        manifest.update(future_turns=int(future_turns), pool=pool, layout="turn_by_turn")
    return {"text": manifest}


def extract_text_features(
    corpus: Corpus,
    cfg: TextFeatureConfig,
    cache_dir: Path,
    *,
    device: str | None = None,
    progress: bool = True,
    force: bool = False,
    mmap: bool = False,
) -> tuple[FeatureStore, dict[str, Any]]:
    """Text features of every Corpus row, from the cache when possible.

    Args:
        corpus: Needs a ``text`` column (labels too when fine-tuning).
        cfg: The ``features.text`` config.
        cache_dir: Root of the cache (``features/`` and ``finetuned/`` live under it).
        device: ``cpu``, ``cuda``, ...; ``None`` picks CUDA when available.
        progress: Show tqdm progress bars.
        force: Ignore the cache: fine-tune again (when enabled) and encode every row again.
        mmap: Memory-map the cached features (see :mod:`ercgraph.data.features`).

    Returns:
        The store (modality ``text``) and an info dict: ``reused`` (bool), ``seconds`` (float),
        ``finetuned_path`` (str or None) and ``finetune_seconds`` (float or None).

    Raises:
        ErcgraphError: on a bad config (``context_turns``/``max_length`` set while
            fine-tuning included), a missing ``text`` column or an unusable model.
    """
    t0 = time.perf_counter()
    if cfg.pooling not in POOLINGS:
        raise ErcgraphError(
            f"features.text.pooling must be one of {list(POOLINGS)}, got {cfg.pooling!r}"
        )
    if "text" not in corpus.df.columns:
        raise ErcgraphError(f"{corpus.source or corpus.name}: text features need a 'text' column")
    cache_dir = Path(cache_dir)
    encoder = resolve_model(cfg.encoder)
    context_turns, max_length = cfg.context_turns, cfg.max_length
    future_turns, pool = cfg.future_turns, cfg.pool
    finetuned_path, finetune_seconds = None, None
    ft = cfg.finetune
    if ft.enabled:
        _check_finetune_overrides(cfg)
        t_ft = time.perf_counter()
        key = manifest_key(finetune_settings(corpus, encoder, ft, ft.max_length))
        if force:
            shutil.rmtree(cache_dir / "finetuned" / key, ignore_errors=True)
        finetuned = finetune_text_encoder(
            corpus,
            encoder,
            ft,
            cache_dir / "finetuned" / key,
            ft.max_length,
            device=device,
            progress=progress,
        )
        finetune_seconds = time.perf_counter() - t_ft
        encoder = finetuned_path = str(finetuned.resolve())
        context_turns, max_length = ft.context_turns, ft.max_length
        future_turns, pool = ft.future_turns, ft.pool
    check_window(context_turns, future_turns, pool, "features.text")
    if pool == "target" and cfg.pooling != "mean":
        raise ErcgraphError(
            f"config: features.text.pool 'target' averages the target's tokens; it needs "
            f"features.text.pooling 'mean', got {cfg.pooling!r}"
        )

    manifest = text_manifest(corpus, encoder, cfg, context_turns, max_length, future_turns, pool)
    path = cache_dir / "features" / f"{manifest_key(manifest)}.safetensors"

    def compute() -> FeatureStore:
        enc = TextEncoder(
            encoder,
            pooling=cfg.pooling,
            max_length=max_length,
            batch_size=cfg.batch_size,
            truncation_side="left" if context_turns > 0 else "right",
            normalize=manifest["text"]["normalize"],
            device=device,
            progress=progress,
        )
        log.info("encoding %d utterances with %r", corpus.num_utterances, enc)
        inputs = build_encoder_inputs(corpus, enc, context_turns, future_turns, pool)
        x = enc.encode_ids(inputs.ids, inputs.spans)
        return FeatureStore({"text": x}, {"text": torch.ones(len(x), dtype=torch.bool)})

    if force:
        store, reused = compute(), False
        store.manifest = manifest
        store.save(path)
        if mmap:
            store = FeatureStore.load(path, manifest, mmap=True)
    else:
        store, reused = cached(path, manifest, compute, mmap=mmap)
    info = {
        "reused": reused,
        "seconds": time.perf_counter() - t0,
        "finetuned_path": finetuned_path,
        "finetune_seconds": finetune_seconds,
    }
    return store, info


def _check_finetune_overrides(cfg: TextFeatureConfig) -> None:
    """With fine-tuning, features are extracted as the encoder was trained (the fine-tuning's
    ``context_turns`` and ``max_length``): other values set beside it would be ignored."""
    defaults = TextFeatureConfig()
    for name in ("context_turns", "max_length", "future_turns", "pool"):
        value = getattr(cfg, name)
        if value != getattr(defaults, name):
            raise ErcgraphError(
                f"config: features.text.{name} is {value}, but with "
                f"features.text.finetune.enabled the features are extracted as the encoder was "
                f"fine-tuned, with features.text.finetune.{name} "
                f"({getattr(cfg.finetune, name)}); set features.text.finetune.{name} instead "
                f"and leave features.text.{name} at its default ({getattr(defaults, name)})"
            )
