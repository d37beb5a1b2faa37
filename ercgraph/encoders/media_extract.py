"""Audio and visual features for a whole corpus: chunked, resumable, on several processes.

The corpus rows are cut into chunks; each finished chunk is saved atomically under
``cache_dir/partial/<key>/`` so an interrupted run continues where it stopped. Chunks run in
``workers`` processes (each single-threaded, so two workers use both cores). A media file that
fails is logged with its path and the reason, its row is marked missing in the FeatureStore's
``present`` mask (never silently zero-filled), and the rest goes on. When every chunk is done the
FeatureStore is saved under ``cache_dir/features/<key>.safetensors`` and the partial folder is
removed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from ercgraph.config import AudioFeatureConfig, VisualFeatureConfig
from ercgraph.data.corpus import Corpus
from ercgraph.data.features import FeatureStore, atomic_write_bytes, cached, manifest_key
from ercgraph.errors import ErcgraphError

log = logging.getLogger(__name__)

MediaConfig = AudioFeatureConfig | VisualFeatureConfig


def build_encoder(modality: str, cfg: MediaConfig) -> Any:
    """The configured encoder (models are loaded here, in the calling process)."""
    if not cfg.encoder:
        hint = (
            "e.g. opensmile:IS10, fbank, mfcc or hf:<local wav2vec2 path>"
            if modality == "audio"
            else "a local transformers vision model path (ViT, CLIP)"
        )
        raise ErcgraphError(f"features.{modality}.encoder is not set; give {hint}")
    if modality == "audio":
        from ercgraph.encoders.audio import audio_encoder

        return audio_encoder(cfg.encoder)
    from ercgraph.encoders.visual import VisualEncoder

    return VisualEncoder(
        cfg.encoder, fps=cfg.fps, max_frames=cfg.max_frames, face=cfg.face, device="cpu"
    )


def _items(corpus: Corpus, modality: str, cfg: MediaConfig) -> list[tuple[Any, Any, Any]]:
    df = corpus.df
    if cfg.source not in df.columns:
        raise ErcgraphError(
            f"{corpus.source or corpus.name}: {modality} features read column {cfg.source!r} "
            f"(features.{modality}.source), which the corpus lacks; it has {list(df.columns)}"
        )
    paths = df[cfg.source].tolist()
    if cfg.segment:
        for col in ("start", "end"):
            if col not in df.columns:
                raise ErcgraphError(f"features.{modality}.segment needs a {col!r} column")
        return list(zip(paths, df["start"].tolist(), df["end"].tolist()))
    return [(p, None, None) for p in paths]


def _encode_chunk(modality: str, cfg: MediaConfig, items: list) -> dict[str, Any]:
    """Worker: encode one chunk (runs in a child process with one torch thread).

    Rows without a media path (e.g. a MELD clip that is not there) fail without being read.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _encode_chunk_items(modality, cfg, items)
    finally:
        torch.set_num_threads(threads)  # the serial path runs in the caller's process


def _encode_chunk_items(modality: str, cfg: MediaConfig, items: list) -> dict[str, Any]:
    encoder = _worker_encoder(modality, cfg)
    valid = [
        i for i, (path, _, _) in enumerate(items) if isinstance(path, (str, Path)) and str(path)
    ]
    errors = [
        (i, "", f"no {cfg.source} for this utterance")
        for i in range(len(items))
        if i not in set(valid)
    ]
    dim = getattr(encoder, "dim", None) or 0
    x, ok = torch.zeros(len(items), dim), torch.zeros(len(items), dtype=torch.bool)
    if valid:
        chosen = [items[i] for i in valid]
        if modality == "audio":
            from ercgraph.encoders.audio import encode_files

            xv, okv, errs = encode_files(encoder, chosen, progress=False)
        else:
            from ercgraph.encoders.visual import encode_clips

            xv, okv, _, errs = encode_clips(encoder, chosen, progress=False)
        if xv.shape[1] != x.shape[1]:
            x = torch.zeros(len(items), xv.shape[1])
        idx = torch.tensor(valid)
        x[idx], ok[idx] = xv.float(), okv.bool()
        errors += [(valid[int(i)], str(p), str(r)) for i, p, r in errs]
    return {"x": x, "ok": ok, "errors": sorted(errors)}


_ENCODERS: dict[str, Any] = {}


def _worker_encoder(modality: str, cfg: MediaConfig) -> Any:
    key = json.dumps([modality, dataclasses.asdict(cfg)], sort_keys=True)
    if key not in _ENCODERS:
        _ENCODERS[key] = build_encoder(modality, cfg)
    return _ENCODERS[key]


def extract_media_features(
    corpus: Corpus, modality: str, cfg: MediaConfig, cache_dir: Path, progress: bool = True
) -> tuple[FeatureStore, dict[str, Any]]:
    """Features of one media modality for every Corpus row, from the cache when possible.

    Returns:
        The store and an info dict: ``done`` (utterances encoded now), ``failed`` (utterances
        without features, now masked), ``reused`` (utterances whose features came from an
        earlier, possibly interrupted, run), ``seconds`` and ``errors`` (``[row, path, reason]``
        of failures encoded now, at most 200).
    """
    from safetensors.torch import load, save
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    items = _items(corpus, modality, cfg)
    encoder = build_encoder(modality, cfg)
    settings = encoder.settings()
    manifest = {
        modality: {
            "encoder": settings,
            "source": cfg.source,
            "segment": cfg.segment,
            "corpus": corpus.fingerprint(
                ("dialogue_id", "turn", cfg.source) + (("start", "end") if cfg.segment else ())
            ),
        }
    }
    key = manifest_key(manifest)
    # finished chunks are only valid for the same chunking of the same rows
    partial = Path(cache_dir) / "partial" / f"{key}-c{cfg.chunk_size}"
    counts = {"done": 0, "failed": 0, "reused": 0}
    errors: list[list[Any]] = []

    def compute() -> FeatureStore:
        partial.mkdir(parents=True, exist_ok=True)
        n_chunks = max(1, math.ceil(len(items) / cfg.chunk_size))
        chunks: dict[int, dict[str, Any]] = {}
        todo = []
        for c in range(n_chunks):
            f = partial / f"chunk_{c:05d}.safetensors"
            part = items[c * cfg.chunk_size : (c + 1) * cfg.chunk_size]
            try:
                t = load(f.read_bytes())
                meta = json.loads(f.with_suffix(".json").read_text())
                if t["x"].shape[0] == len(part):
                    chunks[c] = {"x": t["x"], "ok": t["ok"].bool(), "errors": meta["errors"]}
                    counts["reused"] += int(t["ok"].sum())
                    counts["failed"] += len(part) - int(t["ok"].sum())
                    continue
            except Exception:  # absent, truncated or corrupt: encode the chunk again
                pass
            todo.append((c, part))

        def keep(c: int, res: dict[str, Any]) -> None:
            f = partial / f"chunk_{c:05d}.safetensors"
            atomic_write_bytes(
                f.with_suffix(".json"), json.dumps({"errors": res["errors"]}).encode()
            )
            atomic_write_bytes(
                f,
                save(
                    {
                        "x": res["x"].float().contiguous(),
                        "ok": res["ok"].to(torch.uint8).contiguous(),
                    }
                ),
            )
            chunks[c] = res
            n_ok = int(res["ok"].sum())
            counts["done"] += n_ok
            counts["failed"] += len(res["ok"]) - n_ok

        bar = tqdm(total=len(todo), desc=f"{modality} chunks", disable=None if progress else True)
        if cfg.workers > 1 and len(todo) > 1:
            with ProcessPoolExecutor(cfg.workers, mp_context=get_context("spawn")) as pool:
                futures = {c: pool.submit(_encode_chunk, modality, cfg, part) for c, part in todo}
                for c, fut in futures.items():
                    keep(c, fut.result())
                    bar.update()
        else:
            _ENCODERS[json.dumps([modality, dataclasses.asdict(cfg)], sort_keys=True)] = encoder
            for c, part in todo:
                keep(c, _encode_chunk(modality, cfg, part))
                bar.update()
        bar.close()
        xs, oks = [], []
        for c in range(n_chunks):
            res = chunks[c]
            xs.append(res["x"].float())
            oks.append(res["ok"].bool())
            for i, path, reason in res["errors"]:
                errors.append([c * cfg.chunk_size + int(i), path, reason])
        dims = {x.shape[1] for x, ok in zip(xs, oks) if ok.any()}
        width = max(dims, default=0)
        xs = [x if x.shape[1] == width else torch.zeros(x.shape[0], width) for x in xs]
        if len(dims) > 1:
            raise ErcgraphError(f"{modality} encoder gave different dims across chunks: {dims}")
        x, ok = torch.cat(xs), torch.cat(oks)
        if not ok.any():
            raise ErcgraphError(
                f"{modality}: every media file failed; first: {errors[0][1]}: {errors[0][2]}"
                if errors
                else "no items"
            )
        return FeatureStore({modality: x}, {modality: ok})

    store, reused = cached(Path(cache_dir) / "features" / f"{key}.safetensors", manifest, compute)
    if reused:
        failed = int((~store.present[modality]).sum())
        counts = {"done": 0, "failed": failed, "reused": corpus.num_utterances - failed}
    shutil.rmtree(partial, ignore_errors=True)
    for row, path, reason in errors[:20]:
        log.warning("%s: row %d: %s: %s", modality, row, path, reason)
    return store, {**counts, "seconds": time.perf_counter() - t0, "errors": errors[:200]}
