"""Visual encoder: frames from video clips, faces cropped, embedded and pooled per utterance.

The pipeline of one utterance (:meth:`VisualEncoder.encode_clip`), one module per stage:

1. :func:`sample_frames` (:mod:`~ercgraph.encoders.visual.frames`) decodes the clip with PyAV
   and takes the frame on screen at the times ``start, start + 1/fps, start + 2/fps, ...``
   before ``end`` (seconds from the start of the video stream), at most ``max_frames`` of them;
   a long window gets a lower rate so that the frames still span all of it.
2. :class:`FaceCropper` (:mod:`~ercgraph.encoders.visual.faces`) finds the largest face of each
   frame with an OpenCV detector (by default the frontal-face Haar cascade bundled with OpenCV
   4, loaded once, on first use) and crops it with a margin. A frame without a face is kept
   whole and flagged, so the share of frames with a face is known per utterance.
3. :class:`ImageEncoder` (:mod:`~ercgraph.encoders.visual.embedding`): any transformers vision
   model from a local folder embeds the crops (ViT-style models: pooler output, CLS token or
   token mean; CLIP: the projected image embedding, as ``CLIPModel.get_image_features``), and
   :func:`pool_frames` (:mod:`~ercgraph.encoders.visual.pooling`) pools the frame vectors into
   one vector: their mean, or a parameter-free attention.

:class:`VisualEncoder` and :func:`encode_clips` (:mod:`~ercgraph.encoders.visual.encoder`) chain
the stages; :func:`encode_clips` runs them over many clips; a clip that cannot be read is
logged, marked as missing and skipped, and the rest goes on.

PyAV (``av``) and OpenCV (``opencv-python-headless``) are optional dependencies (the ``media``
extra); they are imported only when frames are decoded or faces detected.
"""

from ercgraph.encoders.visual.embedding import FEATURES, ImageEncoder
from ercgraph.encoders.visual.encoder import VisualEncoder, encode_clips
from ercgraph.encoders.visual.faces import (
    HAAR_FILE,
    MIN_FACE_FRACTION,
    FaceCropper,
    crop_faces,
)
from ercgraph.encoders.visual.frames import sample_frames
from ercgraph.encoders.visual.pooling import ATTENTION_TEMPERATURE, POOLINGS, pool_frames

__all__ = [
    "ATTENTION_TEMPERATURE",
    "FEATURES",
    "HAAR_FILE",
    "MIN_FACE_FRACTION",
    "POOLINGS",
    "FaceCropper",
    "ImageEncoder",
    "VisualEncoder",
    "crop_faces",
    "encode_clips",
    "pool_frames",
    "sample_frames",
]
