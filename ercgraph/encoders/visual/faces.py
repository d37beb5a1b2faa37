"""Face detection and cropping: :class:`FaceCropper` (OpenCV Haar cascade or YuNet).

OpenCV (``opencv-python-headless``, the ``media`` extra) is imported only when faces are
detected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ercgraph.encoders.visual.common import _first_line
from ercgraph.errors import ErcgraphError

HAAR_FILE = "haarcascade_frontalface_default.xml"
# Smallest face searched for, as a share of the frame's short side (and at least 24 px, the
# Haar cascade's own window): skips the many tiny windows that dominate the detector's cost.
MIN_FACE_FRACTION = 1 / 20


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise ErcgraphError(
            "face detection needs the package 'opencv-python-headless': "
            "pip install 'ercgraph[media]'"
        ) from exc
    return cv2


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
