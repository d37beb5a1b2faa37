"""Short synthetic media files for the visual encoder tests, written with PyAV.

Each video frame has a flat background whose red channel encodes the frame's index (so a test can
tell which frames were sampled) and a coloured square that moves from frame to frame; ``variant``
changes the colours, so two variants give different clips.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

INDEX_STEP = 12  # red level per frame index: 20 frames fit in 0..228 with room for codec error


def make_frame(index: int, size: tuple[int, int] = (64, 64), variant: int = 0) -> np.ndarray:
    """The RGB frame number ``index`` of a clip (``size`` is height, width)."""
    h, w = size
    img = np.empty((h, w, 3), np.uint8)
    img[...] = (INDEX_STEP * index % 256, 40 + 90 * (variant % 3), 200 - 60 * (variant % 2))
    side = max(8, min(h, w) // 4)
    x = (4 * index) % (w - side)
    y = h // 2 - side // 2
    img[y : y + side, x : x + side] = ((255, 255, 0), (0, 255, 255), (255, 0, 255))[variant % 3]
    return img


def frame_index(frame: np.ndarray) -> int:
    """The index encoded in a decoded frame (read from its top-left corner)."""
    return int(round(float(frame[:6, :6, 0].mean()) / INDEX_STEP))


def write_video(
    path: Path,
    seconds: float = 2.0,
    fps: int = 10,
    size: tuple[int, int] = (64, 64),
    variant: int = 0,
    gop: int = 5,
) -> Path:
    """An MPEG-4 part 2 video in an mp4 container, keyframes every ``gop`` frames."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.bit_rate = 2_000_000  # near-lossless for flat colours
        stream.time_base = Fraction(1, fps)
        for i in range(int(round(seconds * fps))):
            frame = av.VideoFrame.from_ndarray(make_frame(i, size, variant), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def write_audio_only(path: Path, seconds: float = 0.5, rate: int = 16000) -> Path:
    """An mp4 holding one AAC audio stream (a 440 Hz tone) and no video stream."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=rate, layout="mono")
        n = int(seconds * rate)
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)
        chunk = 1024
        for start in range(0, n, chunk):
            samples = tone[start : start + chunk]
            frame = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def write_garbage(path: Path, size: int = 4096, seed: int = 0) -> Path:
    """Random bytes under a video file name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).bytes(size))
    return path


def write_corrupt_video(path: Path, source: Path, seed: int = 0) -> Path:
    """A copy of ``source`` whose first half of coded video data is overwritten with noise.

    The container still opens (its index is intact), but decoding the frames fails.
    """
    data = bytearray(source.read_bytes())
    start = data.find(b"mdat") + 4
    assert start > 4, f"{source} has no mdat box"
    stop = start + (len(data) - start) // 2
    data[start:stop] = np.random.default_rng(seed).bytes(stop - start)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path
