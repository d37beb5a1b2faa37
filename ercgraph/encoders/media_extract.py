"""Audio and visual features for a whole corpus: chunked, resumable, on several processes.

**Media paths.** A relative path in the source column (``features.<modality>.source``) resolves
against the Corpus's ``meta["media_root"]``: the table reader records the table file's folder, or
``data.options.media_root`` when set (a ``{split: folder}`` dict when the split files live in
different folders). A Corpus without one (readers that write absolute paths, a hand-made
DataFrame) resolves against the working directory. A missing file is reported with the folder it
was looked for in.

**The cache** is per chunk of ``chunk_size`` rows:
``cache_dir/media/<modality>/<settings key>/<chunk key>.safetensors``. The settings key hashes the
encoder's ``settings()``; the chunk key hashes, for every row of the chunk, the media file's
resolved absolute path, size and modification time (ns), and the segment times. So two projects
with the same relative paths never share features, a file replaced in place gets new ones, and a
changed file costs one chunk, not the corpus. Chunks are saved atomically as they finish: an
interrupted run continues where it stopped. A failure is never final: rows that failed (no path,
missing, unreadable, too long...) are tried again on every run and saved into their chunk once they
succeed. ``force=True`` encodes every row again. Content that changes while keeping its size and
time stamp (``rsync -t`` of other bytes) is not noticed: use ``force``. Chunks that no corpus uses
any more stay on disk (another corpus may share them); delete ``cache_dir/media`` to reclaim them.

Chunks run in ``workers`` processes (each single-threaded, so two workers use both cores). A media
file that fails is logged with its path and the reason, its row is marked missing in the
FeatureStore's ``present`` mask (never silently zero-filled), and the rest goes on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import stat
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from ercgraph.config import AudioFeatureConfig, VisualFeatureConfig
from ercgraph.data.corpus import Corpus
from ercgraph.data.features import FeatureStore, atomic_write_bytes, manifest_key
from ercgraph.distributed import Session
from ercgraph.errors import ErcgraphError

log = logging.getLogger(__name__)

MediaConfig = AudioFeatureConfig | VisualFeatureConfig

#: Bump when the layout of a cached chunk changes.
CACHE_FORMAT = 1


def check_config(modality: str, cfg: MediaConfig) -> None:
    """Refuse settings that cannot work, naming the ``features.<modality>`` key."""
    key = f"features.{modality}"
    if cfg.workers < 1 or cfg.chunk_size < 1:
        raise ErcgraphError(
            f"{key}.workers and {key}.chunk_size must be >= 1, got {cfg.workers} and "
            f"{cfg.chunk_size}"
        )
    if isinstance(cfg, AudioFeatureConfig):
        if cfg.max_seconds is not None and not cfg.max_seconds > 0:
            raise ErcgraphError(
                f"{key}.max_seconds must be > 0 (seconds) or null for no limit, "
                f"got {cfg.max_seconds}"
            )
        return
    from ercgraph.encoders.visual import FEATURES, POOLINGS

    if cfg.pooling not in POOLINGS:
        raise ErcgraphError(f"{key}.pooling must be one of {list(POOLINGS)}, got {cfg.pooling!r}")
    if cfg.features not in FEATURES:
        raise ErcgraphError(f"{key}.features must be one of {list(FEATURES)}, got {cfg.features!r}")
    if cfg.batch_size < 1:
        raise ErcgraphError(f"{key}.batch_size must be >= 1, got {cfg.batch_size}")
    if not 0 <= cfg.face_margin <= 2:
        raise ErcgraphError(
            f"{key}.face_margin must be in [0, 2] (a share of the face box), got {cfg.face_margin}"
        )
    _device(cfg.device, f"{key}.device")


def _device(value: str, key: str) -> str | None:
    """``None`` for ``auto`` (CUDA when available), else the checked device name."""
    if value == "auto":
        return None
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError):
        raise ErcgraphError(
            f"{key} must be cpu, cuda, cuda:N, mps or auto, got {value!r}"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ErcgraphError(f"{key} is {value!r}, but CUDA is not available here; use cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ErcgraphError(f"{key} is {value!r}, but MPS is not available here; use cpu")
    return str(device)


def build_encoder(modality: str, cfg: MediaConfig) -> Any:
    """The configured encoder (models are loaded here, in the calling process)."""
    if not cfg.encoder:
        hint = (
            "e.g. opensmile:IS10, fbank, mfcc or hf:<local wav2vec2 path>"
            if modality == "audio"
            else "a local transformers vision model path (ViT, CLIP)"
        )
        raise ErcgraphError(f"features.{modality}.encoder is not set; give {hint}")
    check_config(modality, cfg)
    if modality == "audio":
        from ercgraph.encoders.audio import audio_encoder

        return audio_encoder(cfg.encoder)
    from ercgraph.encoders.visual import VisualEncoder

    return VisualEncoder(
        cfg.encoder,
        pooling=cfg.pooling,
        fps=cfg.fps,
        max_frames=cfg.max_frames,
        face=cfg.face,
        face_detector=cfg.face_detector,
        face_margin=cfg.face_margin,
        features=cfg.features,
        batch_size=cfg.batch_size,
        device=_device(cfg.device, "features.visual.device"),
    )


# -- rows: resolved paths and what identifies their content --------------------------------------
@dataclasses.dataclass
class _Rows:
    """Per Corpus row: the item to encode, the path as written, and the cache identity."""

    items: list[tuple[str | None, float | None, float | None]]
    shown: list[str]
    identity: list[list[Any]]
    failed: dict[int, str]  # rows that fail without being read (no path, missing file)


def _time(value: Any) -> float | None:
    if value is None:
        return None
    try:
        t = float(value)
    except (TypeError, ValueError):
        return value  # the encoder reports it
    return None if math.isnan(t) else t


def _has_path(value: Any) -> bool:
    return isinstance(value, (str, Path)) and str(value).strip() != ""


def _resolve(corpus: Corpus, modality: str, cfg: MediaConfig) -> _Rows:
    df = corpus.df
    if cfg.source not in df.columns:
        raise ErcgraphError(
            f"{corpus.source or corpus.name}: {modality} features read column {cfg.source!r} "
            f"(features.{modality}.source), which the corpus lacks; it has {list(df.columns)}"
        )
    n = len(df)
    if cfg.segment:
        for col in ("start", "end"):
            if col not in df.columns:
                raise ErcgraphError(f"features.{modality}.segment needs a {col!r} column")
        starts = [_time(v) for v in df["start"].tolist()]
        ends = [_time(v) for v in df["end"].tolist()]
    else:
        starts = ends = [None] * n
    root = corpus.meta.get("media_root")
    splits = df["split"].tolist()
    cwd = os.getcwd()
    kind = "audio" if modality == "audio" else "video"
    rows = _Rows([], [], [], {})
    for i, value in enumerate(df[cfg.source].tolist()):
        start, end = starts[i], ends[i]
        if not _has_path(value):
            rows.items.append((None, start, end))
            rows.shown.append("")
            rows.identity.append([None, None, None, start, end])
            rows.failed[i] = f"no {cfg.source} for this utterance"
            continue
        text = str(value).strip()
        path = os.path.expanduser(text)
        base = None
        if not os.path.isabs(path):
            base = root.get(splits[i]) if isinstance(root, dict) else root
            base = base or cwd
            path = os.path.join(base, path)
        path = os.path.abspath(path)
        rows.items.append((path, start, end))
        rows.shown.append(text)
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            rows.identity.append([path, None, None, start, end])
            what = "does not exist" if st is None else "is not a file"
            if base is None:
                where = ""
            elif root:
                where = (
                    f" in {base} (relative media paths resolve against the table's folder, or "
                    "data.options.media_root when set)"
                )
            else:
                where = f" in {base} (relative media paths resolve against the working directory)"
            rows.failed[i] = f"{kind} file {text!r} {what}{where}"
        else:
            rows.identity.append([path, st.st_size, st.st_mtime_ns, start, end])
    return rows


def _digest(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


# -- workers -------------------------------------------------------------------------------------
def _encode_chunk(modality: str, cfg: MediaConfig, items: list) -> dict[str, Any]:
    """Worker: encode the items of one chunk (in a child process with one torch thread).

    Returns:
        ``x`` ``[len(items), dim]``, ``ok`` ``[len(items)]``, ``face`` (share of a clip's
        frames with a face; zeros for audio) and ``errors`` as ``(index, path, reason)``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _encode_chunk_items(modality, cfg, items)
    finally:
        torch.set_num_threads(threads)  # the serial path runs in the caller's process


def _encode_chunk_items(modality: str, cfg: MediaConfig, items: list) -> dict[str, Any]:
    encoder = _worker_encoder(modality, cfg)
    if modality == "audio":
        from ercgraph.encoders.audio import encode_files

        x, ok, errors = encode_files(encoder, items, progress=False, max_seconds=cfg.max_seconds)
        face = torch.zeros(len(items))
    else:
        from ercgraph.encoders.visual import encode_clips

        x, ok, face, errors = encode_clips(encoder, items, progress=False)
    return {"x": x.float(), "ok": ok.bool(), "face": face.float(), "errors": list(errors)}


_ENCODERS: dict[str, Any] = {}


def _config_key(modality: str, cfg: MediaConfig) -> str:
    return json.dumps([modality, dataclasses.asdict(cfg)], sort_keys=True)


def _worker_encoder(modality: str, cfg: MediaConfig) -> Any:
    key = _config_key(modality, cfg)
    if key not in _ENCODERS:
        _ENCODERS[key] = build_encoder(modality, cfg)
    return _ENCODERS[key]


# -- chunks on disk ------------------------------------------------------------------------------
@dataclasses.dataclass
class _Chunk:
    path: Path
    x: torch.Tensor
    ok: torch.Tensor
    face: torch.Tensor
    dirty: bool


def _load_chunk(path: Path, rows: int, dim: int) -> _Chunk | None:
    """A saved chunk, or None when it is absent, truncated, corrupt or of another shape."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as fh:
            meta = fh.metadata() or {}
            t = {k: fh.get_tensor(k) for k in ("x", "ok", "face")}
    except Exception:  # absent or unreadable: encode the chunk again
        return None
    if (
        meta.get("format") != str(CACHE_FORMAT)
        or tuple(t["x"].shape) != (rows, dim)
        or t["ok"].shape != (rows,)
        or t["face"].shape != (rows,)
        or not torch.isfinite(t["x"]).all()
    ):
        return None
    return _Chunk(path, t["x"].float(), t["ok"].bool(), t["face"].float(), dirty=False)


def _save_chunk(chunk: _Chunk) -> None:
    from safetensors.torch import save

    blob = save(
        {
            "x": chunk.x.float().contiguous(),
            "ok": chunk.ok.to(torch.uint8).contiguous(),
            "face": chunk.face.float().contiguous(),
        },
        metadata={"format": str(CACHE_FORMAT)},
    )
    atomic_write_bytes(chunk.path, blob)
    chunk.dirty = False


# -- the corpus ----------------------------------------------------------------------------------
def extract_media_features(
    corpus: Corpus,
    modality: str,
    cfg: MediaConfig,
    cache_dir: Path,
    progress: bool = True,
    *,
    force: bool = False,
    sess: Session | None = None,
) -> tuple[FeatureStore, dict[str, Any]]:
    """Features of one media modality for every Corpus row, from the cache when possible.

    Under torchrun (``sess.world > 1``) the chunks left to encode are dealt round-robin to the
    ranks; each rank encodes and saves its own chunks (resumable as in one process), then every
    rank reads the others' chunks back and assembles the same store. A chunk's features do not
    depend on who encoded it, so the store is bit-identical to a one-process extraction. A rank
    that dies loses only its unfinished chunk: a rerun reuses every saved chunk.

    Args:
        corpus: The rows; ``cfg.source`` names the column with each row's media file.
        modality: ``audio`` or ``visual``.
        cfg: The ``features.<modality>`` config.
        cache_dir: Root of the cache (chunks live under ``media/``).
        progress: Show a tqdm progress bar.
        force: Encode every row again, ignoring (and replacing) the cached chunks.
        sess: The torchrun session (:mod:`ercgraph.distributed`); default: one process.

    Returns:
        The store and an info dict: ``done`` (utterances encoded now), ``failed`` (utterances
        without features, masked; they are tried again on the next run), ``reused``
        (utterances from the cache), ``seconds``, ``errors`` (``[row, path, reason]`` of the
        failures, at most 200) and, for visual features with face cropping, ``face_rate`` (the
        share of a clip's sampled frames in which a face was found, averaged over the clips
        with features) and ``clips_without_face`` (clips embedded from whole frames only).

    Raises:
        ErcgraphError: on a bad config, a missing source column, a world larger than the rows,
            or when every file failed.
    """
    from tqdm.auto import tqdm

    sess = sess or Session()
    t0 = time.perf_counter()
    rows = _resolve(corpus, modality, cfg)
    sess.check_world(len(rows.items), f"{modality} media rows")
    encoder = build_encoder(modality, cfg)
    settings = encoder.settings()
    n, size = len(rows.items), cfg.chunk_size
    if n == 0:
        raise ErcgraphError(f"{modality}: the corpus has no rows")
    dim = int(encoder.dim)
    folder = (
        Path(cache_dir)
        / "media"
        / modality
        / manifest_key({"format": CACHE_FORMAT, "modality": modality, "encoder": settings})
    )
    counts = {"done": 0, "failed": 0, "reused": 0}
    errors: list[list[Any]] = []
    chunks: list[_Chunk] = []
    jobs: list[tuple[int, list[int]]] = []  # (chunk, rows of the chunk to encode)
    for c in range(math.ceil(n / size)):
        lo, hi = c * size, min(n, (c + 1) * size)
        path = folder / f"{_digest(rows.identity[lo:hi])}.safetensors"
        chunk = None if force else _load_chunk(path, hi - lo, dim)
        if chunk is None:
            empty = torch.zeros(hi - lo, dtype=torch.bool)
            chunk = _Chunk(path, torch.zeros(hi - lo, dim), empty, torch.zeros(hi - lo), True)
        counts["reused"] += int(chunk.ok.sum())
        todo = []
        for r in range(lo, hi):
            if chunk.ok[r - lo]:
                continue
            if r in rows.failed:  # failed without reading: nothing to try
                errors.append([r, rows.shown[r], rows.failed[r]])
            else:
                todo.append(r)
        chunks.append(chunk)
        if todo:
            jobs.append((c, todo))

    def keep(c: int, todo: list[int], res: dict[str, Any]) -> None:
        chunk, lo = chunks[c], c * size
        if res["x"].shape[1] != dim:
            raise ErcgraphError(
                f"{modality} encoder gave {res['x'].shape[1]} values per row, expected {dim}"
            )
        idx = torch.tensor(todo) - lo
        chunk.x[idx], chunk.ok[idx], chunk.face[idx] = res["x"], res["ok"], res["face"]
        chunk.dirty = chunk.dirty or bool(res["ok"].any())
        if chunk.dirty:
            _save_chunk(chunk)
        counts["done"] += int(res["ok"].sum())
        for i, _, reason in res["errors"]:
            errors.append([todo[int(i)], rows.shown[todo[int(i)]], str(reason)])

    theirs = [c for k, (c, _) in enumerate(jobs) if k % sess.world != sess.rank]
    jobs = jobs[sess.rank :: sess.world]  # this rank's share (all of them in one process)
    planned = len(errors)  # rows that failed without reading: known to every rank alike
    if sess.active:
        log.info("rank %d: %d of the chunks to encode", sess.rank, len(jobs))
    bar = tqdm(total=len(jobs), desc=f"{modality} chunks", disable=None if progress else True)
    batches = [(c, todo, [rows.items[r] for r in todo]) for c, todo in jobs]
    if cfg.workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(cfg.workers, mp_context=get_context("spawn")) as pool:
            futures = [
                (c, todo, pool.submit(_encode_chunk, modality, cfg, b)) for c, todo, b in batches
            ]
            for c, todo, fut in futures:
                keep(c, todo, fut.result())
                bar.update()
    else:
        _ENCODERS[_config_key(modality, cfg)] = encoder
        for c, todo, batch in batches:
            keep(c, todo, _encode_chunk(modality, cfg, batch))
            bar.update()
    bar.close()
    other = set(theirs)
    for c, chunk in enumerate(chunks):
        if chunk.dirty and c not in other:  # a new chunk whose rows all failed: kept
            _save_chunk(chunk)
    if sess.active:
        # every rank's chunks are on disk: read the others' back, merge counts and errors
        parts = sess.gather((counts["done"], errors[planned:]))
        counts["done"] = sum(done for done, _ in parts)
        errors = errors[:planned] + [e for _, errs in parts for e in errs]
        for c in sorted(other):
            lo, hi = c * size, min(n, (c + 1) * size)
            loaded = _load_chunk(chunks[c].path, hi - lo, dim)
            if loaded is None:
                raise ErcgraphError(
                    f"{modality}: chunk {str(chunks[c].path)!r} that another rank encoded is "
                    "missing or unreadable; run the extraction again (saved chunks are reused)"
                )
            chunks[c] = loaded

    x = torch.cat([ch.x for ch in chunks])
    ok = torch.cat([ch.ok for ch in chunks])
    face = torch.cat([ch.face for ch in chunks])
    errors.sort(key=lambda e: e[0])
    counts["failed"] = n - int(ok.sum())
    if not ok.any():
        row, path, reason = errors[0]
        raise ErcgraphError(f"{modality}: every media file failed; first: row {row}: {reason}")
    manifest = {
        modality: {
            "encoder": settings,
            "source": cfg.source,
            "segment": cfg.segment,
            "corpus": corpus.fingerprint(
                ("dialogue_id", "turn", cfg.source) + (("start", "end") if cfg.segment else ())
            ),
            "media": _digest(rows.identity),
        }
    }
    store = FeatureStore({modality: x}, {modality: ok}, manifest)
    for row, path, reason in errors[:20]:
        log.warning("%s: row %d: %s: %s", modality, row, path, reason)
    info: dict[str, Any] = {**counts, "seconds": time.perf_counter() - t0, "errors": errors[:200]}
    if modality == "visual" and cfg.face:
        info["face_rate"] = float(face[ok].mean())
        info["clips_without_face"] = int((face[ok] == 0).sum())
    return store, info
