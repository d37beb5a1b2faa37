"""Visual encoder: frames from video clips, faces cropped, embedded and pooled per utterance.

The pipeline of one utterance (:meth:`VisualEncoder.encode_clip`):

1. :func:`sample_frames` decodes the clip with PyAV and takes the frame on screen at the times
   ``start, start + 1/fps, start + 2/fps, ...`` before ``end`` (seconds from the start of the
   video stream), at most ``max_frames`` of them; a long window gets a lower rate so that the
   frames still span all of it.
2. :class:`FaceCropper` finds the largest face of each frame with an OpenCV detector (by default
   the frontal-face Haar cascade bundled with OpenCV 4, loaded once, on first use) and crops it
   with a margin. A frame without a face is kept whole and flagged, so the share of frames with a
   face is known per utterance.
3. Any transformers vision model from a local folder embeds the crops (ViT-style models: pooler
   output, CLS token or token mean; CLIP: the projected image embedding, as
   ``CLIPModel.get_image_features``), and the frame vectors are pooled into one vector: their
   mean, or a parameter-free attention (see :func:`pool_frames`).

:func:`encode_clips` runs this over many clips; a clip that cannot be read is logged, marked as
missing and skipped, and the rest goes on.

PyAV (``av``) and OpenCV (``opencv-python-headless``) are optional dependencies (the ``media``
extra); they are imported only when frames are decoded or faces detected.
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ercgraph.errors import ErcgraphError

log = logging.getLogger(__name__)

POOLINGS = ("mean", "attention")
FEATURES = ("auto", "projection", "pooler", "cls", "mean")
HAAR_FILE = "haarcascade_frontalface_default.xml"
# Temperature of the attention pooling: cosine similarities lie in [-1, 1], so 0.1 lets a frame
# that agrees with the clip (cos 0.9) outweigh an outlier (cos 0.5) by e^4, about 55 to 1.
ATTENTION_TEMPERATURE = 0.1
# Smallest face searched for, as a share of the frame's short side (and at least 24 px, the
# Haar cascade's own window): skips the many tiny windows that dominate the detector's cost.
MIN_FACE_FRACTION = 1 / 20
# Tolerance (seconds) when frame times are compared with target times and window bounds:
# timestamps are rounded to the stream's time base, and the targets are sums of float steps.
_EPS = 1e-4


def _import_av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise ErcgraphError(
            "reading video needs the package 'av' (PyAV): pip install 'ercgraph[media]'"
        ) from exc
    return av


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise ErcgraphError(
            "face detection needs the package 'opencv-python-headless': "
            "pip install 'ercgraph[media]'"
        ) from exc
    return cv2


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _optional_time(value: Any, name: str, path: Any) -> float | None:
    """``None`` for a missing time (None or NaN), else a finite float >= 0."""
    if value is None:
        return None
    try:
        t = float(value)
    except (TypeError, ValueError) as exc:
        raise ErcgraphError(
            f"{str(path)!r}: {name} must be a number of seconds, got {value!r}"
        ) from exc
    if math.isnan(t):
        return None
    if not math.isfinite(t) or t < 0:
        raise ErcgraphError(f"{str(path)!r}: {name} must be a finite time >= 0 s, got {value!r}")
    return t


def sample_frames(
    path: str | Path,
    fps: float | None = 2.0,
    start: float | None = None,
    end: float | None = None,
    max_frames: int = 32,
) -> list[np.ndarray]:
    """Decode frames of a video clip at a fixed rate inside a time window.

    The frame taken for a target time ``t`` is the one on screen at ``t`` (the last frame that
    starts at or before ``t``, or the first one when ``t`` precedes every frame). Targets are
    ``start, start + 1/fps, ...`` while ``< end``, so consecutive windows never share a frame
    unless a window is shorter than a frame; a frame is never returned twice. When the window's
    length ``d`` is known (``end`` given, or the stream's duration) and ``d * fps > max_frames``,
    the step grows to ``d / max_frames`` so that the frames still span the whole window.
    Times are seconds from the start of the first video stream.

    Args:
        path: A video file readable by FFmpeg (mp4, avi, mkv, ...).
        fps: Frames per second to sample; ``None`` takes every frame (still capped).
        start: Window start in seconds (``None`` or NaN: the beginning).
        end: Window end in seconds, exclusive (``None`` or NaN: the end of the clip).
        max_frames: Most frames returned.

    Returns:
        RGB frames, each a ``uint8`` array ``[height, width, 3]``, in time order.

    Raises:
        ErcgraphError: naming the path, if the file does not exist, cannot be opened, has no
            video stream, cannot be decoded, or has no frame in the window; or if an argument
            is out of range.
    """
    if fps is not None and not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ErcgraphError(f"sample_frames: fps must be a number > 0 or None, got {fps!r}")
    if int(max_frames) < 1:
        raise ErcgraphError(f"sample_frames: max_frames must be >= 1, got {max_frames!r}")
    max_frames = int(max_frames)
    t0 = _optional_time(start, "start", path) or 0.0
    t1 = _optional_time(end, "end", path)
    if t1 is not None and t1 <= t0:
        raise ErcgraphError(
            f"{str(path)!r}: the window end ({t1} s) must be after its start ({t0} s)"
        )
    p = Path(path)
    if not p.exists():
        raise ErcgraphError(f"{str(path)!r}: video file does not exist")
    if not p.is_file():
        raise ErcgraphError(f"{str(path)!r}: is not a file (expected a video file)")
    av = _import_av()
    try:
        container = av.open(str(p))
    except (av.FFmpegError, OSError) as exc:
        raise ErcgraphError(
            f"{str(path)!r}: cannot be opened as a video ({_first_line(exc)})"
        ) from exc
    with container:
        if not container.streams.video:
            raise ErcgraphError(f"{str(path)!r}: has no video stream (expected a video file)")
        stream = container.streams.video[0]
        frames = _decode_window(av, container, stream, path, fps, t0, t1, max_frames)
    if not frames:
        window = f"[{t0:g}, {t1:g})" if t1 is not None else f"[{t0:g}, end)"
        raise ErcgraphError(f"{str(path)!r}: no video frame in the window {window} s")
    return frames


def _decode_window(
    av: Any,
    container: Any,
    stream: Any,
    path: Any,
    fps: float | None,
    t0: float,
    t1: float | None,
    max_frames: int,
) -> list[np.ndarray]:
    """The sampling loop of :func:`sample_frames` on an open container.

    A target time is resolved when the first frame starting after it arrives: the target shows
    the frame held before that one (or that one, if the target precedes every frame). The next
    target is then the first one at or after the new frame's start, since the held frame covers
    every target in between; an already taken frame is not taken again.
    """
    time_base = float(stream.time_base) if stream.time_base else 0.0
    rate = stream.average_rate or stream.guessed_rate
    default_dur = 1.0 / float(rate) if rate else 0.0
    offset = (stream.start_time or 0) * time_base
    length = None
    if t1 is not None:
        length = t1 - t0
    elif stream.duration and time_base:
        length = stream.duration * time_base - t0
    elif container.duration:
        length = container.duration / av.time_base - t0
    step = 0.0 if fps is None else 1.0 / fps
    if length is not None and length > 0 and (step == 0 or length / step > max_frames):
        step = length / max_frames

    out: list[np.ndarray] = []
    taken: float | None = None  # start time of the last frame taken

    def take(frame: Any, start_time: float) -> None:
        nonlocal taken
        if taken is None or start_time != taken:
            out.append(frame.to_ndarray(format="rgb24"))
            taken = start_time

    def open_window(target: float) -> bool:
        return len(out) < max_frames and (t1 is None or target < t1 - _EPS)

    target = t0
    held, held_t, held_dur = None, 0.0, default_dur
    try:
        if t0 > 0 and time_base:
            # lands on the keyframe at or before t0; the frames before it are only held
            container.seek(int((t0 + offset) / time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            if frame.pts is not None and time_base:
                t = frame.pts * time_base - offset
            else:
                t = held_t + held_dur if held is not None else 0.0
            if open_window(target) and t > target + _EPS:
                if held is not None:
                    take(held, held_t)
                else:
                    take(frame, t)
                target = t if step == 0 else target + step * math.ceil((t - _EPS - target) / step)
            if not open_window(target) or (t1 is not None and t >= t1 - _EPS):
                break
            held, held_t = frame, t
            held_dur = frame.duration * time_base if frame.duration else default_dur
        else:
            # the stream ended: the last frame shows the pending target if it is still on screen
            if (
                held is not None
                and open_window(target)
                and (held_dur == 0 or target < held_t + held_dur - _EPS)
            ):
                take(held, held_t)
    except av.FFmpegError as exc:
        raise ErcgraphError(
            f"{str(path)!r}: cannot decode the video stream ({_first_line(exc)})"
        ) from exc
    return out


# One loaded Haar cascade per XML file, shared by every FaceCropper (loading parses the XML).
_CASCADES: dict[str, Any] = {}


def _load_cascade(xml: str) -> Any:
    """The ``cv2.CascadeClassifier`` of an XML file, loaded on first use and then reused."""
    if xml in _CASCADES:
        return _CASCADES[xml]
    cv2 = _import_cv2()
    if not hasattr(cv2, "CascadeClassifier"):
        raise ErcgraphError(
            f"face detection: OpenCV {cv2.__version__} has no Haar cascade detector "
            "(cv2.CascadeClassifier and the bundled cascades left OpenCV in 5.0); install "
            "'opencv-python-headless<5', pass a YuNet face model (.onnx) as face_detector, or "
            "turn face cropping off"
        )
    if not Path(xml).is_file():
        raise ErcgraphError(f"face detection: Haar cascade file {xml!r} does not exist")
    cascade = cv2.CascadeClassifier(xml)
    if cascade.empty():
        raise ErcgraphError(f"face detection: {xml!r} is not a valid Haar cascade XML file")
    _CASCADES[xml] = cascade
    return cascade


class FaceCropper:
    """Crop the largest face of each frame, or keep the whole frame when none is found.

    Args:
        detector: ``haar`` (OpenCV's bundled ``haarcascade_frontalface_default.xml``, shipped by
            the OpenCV 4 wheels), a path to another Haar cascade ``.xml``, or a path to a YuNet
            face detection model ``.onnx`` (``cv2.FaceDetectorYN``, available in OpenCV >= 4.5.4
            including 5.x, whose wheels ship no model file).
        margin: Added on each side of a face box, as a share of the box's width and height.
        score_threshold: Lowest YuNet confidence kept (unused by Haar cascades).

    The detector is loaded on first use (a Haar cascade once per process; a YuNet model once
    per cropper). Boxes are clipped to the frame. Faces narrower or shorter than 24 px or than
    ``MIN_FACE_FRACTION`` of the frame's short side are ignored.
    """

    def __init__(
        self, detector: str | Path = "haar", margin: float = 0.2, score_threshold: float = 0.6
    ) -> None:
        if not (isinstance(margin, (int, float)) and 0 <= margin <= 2):
            raise ErcgraphError(f"face detection: margin must be in [0, 2], got {margin!r}")
        name = str(detector)
        if name == "haar":
            self.kind = "haar"
        elif name.lower().endswith(".xml"):
            self.kind = "haar"
            name = str(Path(name).expanduser().resolve())
        elif name.lower().endswith(".onnx"):
            self.kind = "yunet"
            name = str(Path(name).expanduser().resolve())
        else:
            raise ErcgraphError(
                f"face detection: detector must be 'haar', a Haar cascade .xml "
                f"or a YuNet .onnx file, got {name!r}"
            )
        self.detector = name
        self.margin = float(margin)
        self.score_threshold = float(score_threshold)
        self._yunet: Any = None

    def load(self) -> FaceCropper:
        """Load the detector now (it is otherwise loaded on first use); returns ``self``.

        Raises:
            ErcgraphError: if the detector is unavailable or its file is missing or invalid.
        """
        if self.kind == "haar":
            self._cascade()
        elif self._yunet is None:
            cv2 = _import_cv2()
            if not Path(self.detector).is_file():
                raise ErcgraphError(f"face detection: YuNet model {self.detector!r} does not exist")
            try:
                self._yunet = cv2.FaceDetectorYN.create(
                    self.detector, "", (320, 320), self.score_threshold
                )
            except cv2.error as exc:
                raise ErcgraphError(
                    f"face detection: cannot load YuNet model {self.detector!r} "
                    f"({_first_line(exc)})"
                ) from exc
        return self

    def _cascade(self) -> Any:
        if self.detector == "haar":
            cv2 = _import_cv2()
            return _load_cascade(str(Path(cv2.data.haarcascades) / HAAR_FILE))
        return _load_cascade(self.detector)

    def boxes(self, frame: np.ndarray) -> np.ndarray:
        """All face boxes of an RGB frame as an int array ``[n, 4]`` of ``x, y, w, h``."""
        cv2 = _import_cv2()
        h, w = frame.shape[:2]
        min_side = max(24, int(min(h, w) * MIN_FACE_FRACTION))
        if self.kind == "haar":
            gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
            found = self._cascade().detectMultiScale(
                gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
            )
        else:
            self.load()
            self._yunet.setInputSize((w, h))
            bgr = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR)
            _, faces = self._yunet.detect(bgr)
            found = () if faces is None else np.asarray(faces)[:, :4]
        found = np.asarray(found, dtype=np.float64).reshape(-1, 4)
        keep = (found[:, 2] >= min_side) & (found[:, 3] >= min_side)
        return np.round(found[keep]).astype(np.int64)

    def crop(self, frame: np.ndarray) -> tuple[np.ndarray, bool]:
        """The largest face of an RGB frame with its margin, or the whole frame.

        Returns:
            The crop (a view into ``frame``) and whether a face was found.
        """
        boxes = self.boxes(frame)
        if len(boxes) == 0:
            return frame, False
        x, y, bw, bh = boxes[int(np.argmax(boxes[:, 2] * boxes[:, 3]))]
        h, w = frame.shape[:2]
        dx, dy = self.margin * bw, self.margin * bh
        x0, y0 = max(0, int(round(x - dx))), max(0, int(round(y - dy)))
        x1, y1 = min(w, int(round(x + bw + dx))), min(h, int(round(y + bh + dy)))
        if x1 - x0 < 2 or y1 - y0 < 2:  # a box outside the frame
            return frame, False
        return frame[y0:y1, x0:x1], True

    def __call__(self, frames: list[np.ndarray]) -> tuple[list[np.ndarray], list[bool]]:
        """Crop every frame; returns the crops and a per-frame ``face_found`` flag."""
        pairs = [self.crop(f) for f in frames]
        return [c for c, _ in pairs], [bool(found) for _, found in pairs]

    def __repr__(self) -> str:
        return (
            f"FaceCropper({self.detector!r}, margin={self.margin}, "
            f"score_threshold={self.score_threshold})"
        )


def crop_faces(
    frames: list[np.ndarray], detector: str | Path = "haar", margin: float = 0.2
) -> tuple[list[np.ndarray], list[bool]]:
    """Crop the largest face of each RGB frame (see :class:`FaceCropper`).

    Returns:
        The crops (whole frames where no face was found) and a per-frame ``face_found`` flag.
    """
    return FaceCropper(detector, margin=margin)(frames)


def pool_frames(x: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """Pool frame vectors ``[n, dim]`` into one utterance vector ``[dim]``.

    ``mean`` averages the frames. ``attention`` is a parameter-free attention whose query ``q``
    is the mean of the L2-normalised frame vectors (each frame one vote, whatever its norm):
    frame ``i`` weighs ``softmax_i(cos(x_i, q) / ATTENTION_TEMPERATURE)`` and the result is the
    weighted mean of the (unnormalised) ``x_i``. Frames that agree with the rest of the clip
    dominate and outliers (a cut to another shot, a blurred or face-less frame) count less.
    Identical frames give their common vector either way.

    Raises:
        ErcgraphError: for an unknown pooling or an empty input.
    """
    if pooling not in POOLINGS:
        raise ErcgraphError(
            f"visual encoder: pooling must be one of {list(POOLINGS)}, got {pooling!r}"
        )
    if x.dim() != 2 or x.shape[0] == 0:
        raise ErcgraphError(
            f"visual encoder: cannot pool frame vectors of shape "
            f"{tuple(x.shape)} (expected [frames >= 1, dim])"
        )
    mean = x.mean(0)
    if pooling == "mean":
        return mean
    unit = torch.nn.functional.normalize(x, dim=1, eps=1e-8)
    sim = unit @ torch.nn.functional.normalize(unit.mean(0), dim=0, eps=1e-8)
    weight = torch.softmax(sim / ATTENTION_TEMPERATURE, dim=0)
    return weight @ x


def _file_digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:20] if path.is_file() else None


class VisualEncoder:
    """Frames of a clip → face crops → a transformers vision model → one vector per utterance.

    The model is read from a local folder holding its ``config.json``, weights and
    ``preprocessor_config.json`` (the image processor resizes and normalises the crops). How a
    crop becomes a vector (``features``):

    - ``projection``: the image embedding of a CLIP-style model (``model_type`` ``clip``, loaded
      as ``CLIPVisionModelWithProjection`` without its text tower; or any model with
      ``get_image_features``), the vector CLIP compares with text;
    - ``pooler``: the model's ``pooler_output`` (ViT: tanh dense layer on the CLS token; CLIP
      vision tower: the layer-normed CLS token; CNNs: global average pool);
    - ``cls``: the first output token; ``mean``: the mean of all output tokens (of the spatial
      map for CNNs);
    - ``auto`` (default): ``projection`` where the model has one, else ``pooler`` when the model
      returns it and its weights were in the checkpoint, else ``cls`` (``mean`` for CNNs).
      ``features`` then holds the choice made, and ``repr`` shows it.

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
        features: ``auto``, ``projection``, ``pooler``, ``cls`` or ``mean`` (see above).
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
        path = Path(name_or_path).expanduser()
        if not path.exists():
            raise ErcgraphError(f"visual encoder: model path {str(name_or_path)!r} does not exist")
        if not path.is_dir():
            raise ErcgraphError(
                f"visual encoder: model path {str(name_or_path)!r} is not a "
                f"folder (expected a saved transformers model)"
            )
        self.name_or_path = str(path.resolve())
        self.pooling = pooling
        self.fps = None if fps is None else float(fps)
        self.max_frames = int(max_frames)
        self.batch_size = int(batch_size)
        # fail now, not after the first clip, when the detector is missing
        self.cropper = FaceCropper(face_detector, margin=face_margin).load() if face else None
        no_pooler = self._load(features)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device)
        if self.device.type == "cpu" and self.model.dtype in (torch.float16, torch.bfloat16):
            self.model.float()
        self.model.eval()
        # a probe image settles `auto`, checks the model and processor work together, and
        # gives the output size
        probe = [np.full((64, 64, 3), 128, np.uint8)]
        self.features = self._settle_features(features, no_pooler, probe)
        self.dim = int(self.embed_images(probe).shape[1])
        self._fingerprint: str | None = None

    def _load(self, features: str) -> bool:
        """Load config, image processor and model; check ``features`` fits the model.

        Returns:
            True when the checkpoint lacks the weights of the model's pooler.
        """
        from transformers import AutoConfig, AutoImageProcessor, AutoModel
        from transformers.utils import logging as hf_logging

        where = self.name_or_path
        try:
            config = AutoConfig.from_pretrained(where)
        except (OSError, ValueError, KeyError) as exc:
            raise ErcgraphError(
                f"could not load visual encoder {where!r}: {_first_line(exc)}"
            ) from exc
        self.model_type = str(config.model_type)
        try:
            self.processor = AutoImageProcessor.from_pretrained(where)
        except (OSError, ValueError, KeyError, ImportError) as exc:
            raise ErcgraphError(
                f"could not load the image processor of visual encoder "
                f"{where!r} (expected a preprocessor_config.json): "
                f"{_first_line(exc)}"
            ) from exc
        verbosity = hf_logging.get_verbosity()
        try:
            if self.model_type == "clip":
                from transformers import CLIPVisionModelWithProjection

                # the vision tower's config does not carry the projection size of the pair
                vision = config.vision_config
                vision.projection_dim = config.projection_dim
                hf_logging.set_verbosity_error()  # the skipped text tower is expected
                model, info = CLIPVisionModelWithProjection.from_pretrained(
                    where, config=vision, output_loading_info=True
                )
                self._head = "projection"
            else:
                model, info = AutoModel.from_pretrained(where, output_loading_info=True)
                self._head = "image_features" if hasattr(model, "get_image_features") else "forward"
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ErcgraphError(
                f"could not load visual encoder {where!r}: {_first_line(exc)}"
            ) from exc
        finally:
            hf_logging.set_verbosity(verbosity)
        self.model = model
        missing = sorted(info.get("missing_keys", ()))
        no_pooler = any(k.startswith("pooler.") for k in missing)
        others = [k for k in missing if not k.startswith("pooler.")]
        if others or (no_pooler and features == "pooler"):
            log.warning(
                "visual encoder %s: %d weights are not in the checkpoint and were "
                "randomly initialised (%s)",
                where,
                len(missing),
                ", ".join(missing[:5]),
            )
        if self._head == "image_features" and features not in ("auto", "projection"):
            raise ErcgraphError(
                f"visual encoder {where!r}: a {self.model_type} model only gives "
                f"its image embedding; use features 'auto' or 'projection', "
                f"not {features!r}"
            )
        if self._head == "forward" and features == "projection":
            raise ErcgraphError(
                f"visual encoder {where!r}: a {self.model_type} model has no "
                f"image projection; use 'auto', 'pooler', 'cls' or 'mean'"
            )
        return no_pooler

    def _settle_features(self, features: str, no_pooler: bool, probe: list[np.ndarray]) -> str:
        """What ``auto`` means for this model (other choices are kept as given)."""
        if features != "auto":
            return features
        if self._head != "forward":
            return "projection"
        with torch.inference_mode():
            out = self.model(pixel_values=self._pixels(probe))
        if getattr(out, "pooler_output", None) is not None and not no_pooler:
            return "pooler"
        return "mean" if out.last_hidden_state.dim() == 4 else "cls"

    def _pixels(self, images: list[np.ndarray]) -> torch.Tensor:
        """The processed batch ``[B, 3, H, W]`` of RGB images, on the model's device."""
        batch = self.processor(
            images=images, return_tensors="pt", input_data_format="channels_last"
        )
        return batch["pixel_values"].to(self.device, dtype=self.model.dtype)

    def _forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Vectors ``[B, D]`` of a batch of processed images."""
        if self._head == "image_features":
            out = self.model.get_image_features(pixel_values=pixel_values)
            return out if torch.is_tensor(out) else out.pooler_output
        out = self.model(pixel_values=pixel_values)
        if self.features == "projection":
            return out.image_embeds
        if self.features == "pooler":
            pooled = getattr(out, "pooler_output", None)
            if pooled is None:
                raise ErcgraphError(
                    f"visual encoder {self.name_or_path!r}: the model returns "
                    f"no pooler_output; use features 'cls' or 'mean'"
                )
            return pooled.flatten(1)
        hidden = out.last_hidden_state
        if hidden.dim() == 4:  # a CNN's feature map [B, C, H, W]
            if self.features == "cls":
                raise ErcgraphError(
                    f"visual encoder {self.name_or_path!r}: a convolutional "
                    f"model has no CLS token; use features 'pooler' or 'mean'"
                )
            return hidden.mean((2, 3))
        return hidden[:, 0] if self.features == "cls" else hidden.mean(1)

    def embed_images(self, images: list[np.ndarray]) -> torch.Tensor:
        """Embed RGB ``uint8`` images ``[h, w, 3]`` into a float32 tensor ``[n, dim]`` (CPU)."""
        chunks = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                pixels = self._pixels(images[i : i + self.batch_size])
                chunks.append(self._forward(pixels).float().cpu())
        if not chunks:
            return torch.empty((0, getattr(self, "dim", 0)), dtype=torch.float32)
        return torch.cat(chunks)

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
        if self._fingerprint is None:
            from ercgraph.encoders.text import encoder_fingerprint

            h = hashlib.sha256(encoder_fingerprint(self.name_or_path).encode())
            h.update(
                str(_file_digest(Path(self.name_or_path) / "preprocessor_config.json")).encode()
            )
            self._fingerprint = h.hexdigest()[:20]
        return self._fingerprint

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
