"""Frame sampling: decode a clip with PyAV at a fixed rate inside a time window.

PyAV (``av``, the ``media`` extra) is imported only when frames are decoded.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ercgraph.encoders.visual.common import _first_line
from ercgraph.errors import ErcgraphError

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
