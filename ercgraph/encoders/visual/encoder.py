"""The visual encoder: :class:`VisualEncoder` (one clip → one vector) and :func:`encode_clips`.

It chains the stages: :func:`~ercgraph.encoders.visual.frames.sample_frames`, a
:class:`~ercgraph.encoders.visual.faces.FaceCropper`, an
:class:`~ercgraph.encoders.visual.embedding.ImageEncoder` and
:func:`~ercgraph.encoders.visual.pooling.pool_frames`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ercgraph.encoders.visual.common import _file_digest
from ercgraph.encoders.visual.embedding import FEATURES, ImageEncoder, _model_folder
from ercgraph.encoders.visual.faces import FaceCropper, _import_cv2
from ercgraph.encoders.visual.frames import sample_frames
from ercgraph.encoders.visual.pooling import POOLINGS, pool_frames
from ercgraph.errors import ErcgraphError

log = logging.getLogger(__name__)


class VisualEncoder:
    """Frames of a clip → face crops → a transformers vision model → one vector per utterance.

    The model is read from a local folder holding its ``config.json``, weights and
    ``preprocessor_config.json`` (the image processor resizes and normalises the crops); how a
    crop becomes a vector (``features``) is described in :class:`ImageEncoder`, which the
    encoder holds as ``embedder`` (``model``, ``processor``, ``model_type``, ``features``,
    ``dim`` and ``device`` are its).

    Args:
        name_or_path: Local model folder.
        pooling: ``mean`` or ``attention`` over the frames of a clip (see :func:`pool_frames`).
        fps: Frames sampled per second of video (``None``: every frame); see
            :func:`sample_frames`.
        max_frames: Most frames per clip.
        face: Crop the largest face of each frame (whole frame where none is found).
        face_detector: ``haar``, a Haar cascade ``.xml`` or a YuNet ``.onnx``; see
            :class:`FaceCropper`.
        face_margin: Margin around a face box, as a share of its size.
        features: ``auto``, ``projection``, ``pooler``, ``cls`` or ``mean`` (see
            :class:`ImageEncoder`).
        batch_size: Crops per forward pass.
        device: ``cpu``, ``cuda``, ...; ``None`` picks CUDA when available.

    Raises:
        ErcgraphError: if the folder does not exist or cannot be loaded, an option is invalid,
            or the face detector is unavailable.
    """

    def __init__(
        self,
        name_or_path: str | Path,
        pooling: str = "mean",
        fps: float | None = 2.0,
        max_frames: int = 32,
        face: bool = True,
        face_detector: str | Path = "haar",
        face_margin: float = 0.2,
        features: str = "auto",
        batch_size: int = 32,
        device: str | None = None,
    ) -> None:
        if pooling not in POOLINGS:
            raise ErcgraphError(
                f"visual encoder: pooling must be one of {list(POOLINGS)}, got {pooling!r}"
            )
        if features not in FEATURES:
            raise ErcgraphError(
                f"visual encoder: features must be one of {list(FEATURES)}, got {features!r}"
            )
        if fps is not None and not (isinstance(fps, (int, float)) and 0 < fps < math.inf):
            raise ErcgraphError(f"visual encoder: fps must be a number > 0 or None, got {fps!r}")
        if int(max_frames) < 1 or int(batch_size) < 1:
            raise ErcgraphError(
                f"visual encoder: max_frames and batch_size must be >= 1, got "
                f"{max_frames} and {batch_size}"
            )
        self.name_or_path = str(_model_folder(name_or_path))
        self.pooling = pooling
        self.fps = None if fps is None else float(fps)
        self.max_frames = int(max_frames)
        # fail now, not after the first clip, when the detector is missing
        self.cropper = FaceCropper(face_detector, margin=face_margin).load() if face else None
        self.embedder = ImageEncoder(self.name_or_path, features, batch_size, device)

    # the embedding stage's state, read through
    @property
    def model(self) -> Any:
        return self.embedder.model

    @property
    def processor(self) -> Any:
        return self.embedder.processor

    @property
    def model_type(self) -> str:
        return self.embedder.model_type

    @property
    def features(self) -> str:
        return self.embedder.features

    @property
    def dim(self) -> int:
        return self.embedder.dim

    @property
    def batch_size(self) -> int:
        return self.embedder.batch_size

    @property
    def device(self) -> torch.device:
        return self.embedder.device

    def embed_images(self, images: list[np.ndarray]) -> torch.Tensor:
        """Embed RGB ``uint8`` images ``[h, w, 3]`` into a float32 tensor ``[n, dim]`` (CPU)."""
        return self.embedder.embed_images(images)

    def encode_clip(
        self, path: str | Path, start: float | None = None, end: float | None = None
    ) -> tuple[torch.Tensor, dict[str, int]]:
        """One vector for the utterance shown in ``[start, end)`` of a video file.

        Returns:
            A float32 tensor ``[dim]`` and ``{"frames": frames used, "faces": frames in which
            a face was found}`` (``faces`` is 0 when face cropping is off).

        Raises:
            ErcgraphError: naming the file, if no frame can be read from it (see
                :func:`sample_frames`).
        """
        frames = sample_frames(path, self.fps, start, end, self.max_frames)
        if self.cropper is not None:
            crops, found = self.cropper(frames)
        else:
            crops, found = frames, [False] * len(frames)
        vec = pool_frames(self.embed_images(crops), self.pooling)
        return vec, {"frames": len(frames), "faces": int(sum(found))}

    def fingerprint(self) -> str:
        """Content hash of the model folder (weights, config) and its image processor config."""
        return self.embedder.fingerprint()

    def settings(self) -> dict[str, Any]:
        """Everything that decides the vectors, as JSON-ready values (for a cache manifest).

        The batch size and device are left out: they do not change the result beyond float
        rounding.
        """
        face: dict[str, Any] = {"face": self.cropper is not None}
        if self.cropper is not None:
            cv2 = _import_cv2()
            detector = self.cropper.detector
            face.update(
                {
                    "face_detector": detector,
                    "face_detector_digest": None
                    if detector == "haar"
                    else _file_digest(Path(detector)),
                    "face_margin": self.cropper.margin,
                    "face_score_threshold": (
                        self.cropper.score_threshold if self.cropper.kind == "yunet" else None
                    ),
                    "opencv": cv2.__version__,
                }
            )
        return {
            "encoder": self.name_or_path,
            "encoder_fingerprint": self.fingerprint(),
            "model_type": self.model_type,
            "features": self.features,
            "dim": self.dim,
            "pooling": self.pooling,
            "fps": self.fps,
            "max_frames": self.max_frames,
            **face,
        }

    def __repr__(self) -> str:
        face = (
            f"face=True, face_detector={self.cropper.detector!r}, face_margin={self.cropper.margin}"
            if self.cropper is not None
            else "face=False"
        )
        return (
            f"VisualEncoder({self.name_or_path!r}, pooling={self.pooling!r}, fps={self.fps}, "
            f"max_frames={self.max_frames}, {face}, features={self.features!r}, "
            f"batch_size={self.batch_size}, device={str(self.device)!r})"
        )


def encode_clips(
    encoder: VisualEncoder,
    items: list[tuple[Any, Any, Any]],
    progress: bool = True,
    desc: str = "visual features",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[tuple[int, str, str]]]:
    """Encode many clips, skipping those that cannot be read.

    Args:
        encoder: The visual encoder.
        items: ``(path, start, end)`` per utterance; a missing path (None, NaN or empty) or time
            (None or NaN) is allowed.
        progress: Show a tqdm progress bar (hidden anyway when stderr is not a terminal).
        desc: Label of the progress bar.

    Returns:
        ``x`` float32 ``[n, dim]`` (zeros where a clip failed), ``ok`` bool ``[n]``,
        ``face_rate`` float32 ``[n]`` (share of a clip's frames with a face; 0 where it failed)
        and the failures as ``(index, path, reason)``, each also logged as a warning. Only
        :class:`ErcgraphError` (an unreadable clip or bad times) is caught; anything else is a
        bug and propagates.
    """
    from tqdm.auto import tqdm

    n = len(items)
    x = torch.zeros((n, encoder.dim), dtype=torch.float32)
    ok = torch.zeros(n, dtype=torch.bool)
    face_rate = torch.zeros(n, dtype=torch.float32)
    errors: list[tuple[int, str, str]] = []
    for i, item in enumerate(
        tqdm(items, desc=desc, unit="clip", disable=None if progress else True)
    ):
        path, start, end = item
        if path is None or (isinstance(path, float) and math.isnan(path)) or str(path) == "":
            reason = "no video path"
        else:
            try:
                vec, info = encoder.encode_clip(path, start, end)
            except ErcgraphError as exc:
                reason = str(exc)
            else:
                x[i], ok[i] = vec, True
                face_rate[i] = info["faces"] / info["frames"]
                continue
        log.warning("visual features: clip %d (%s) skipped: %s", i, path, reason)
        errors.append((i, str(path), reason))
    return x, ok, face_rate, errors
