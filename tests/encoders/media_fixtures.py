"""Helpers for audio tests: synthetic sine waves written as wav files and as mp4 videos.

Everything is generated on the fly (soundfile for wav, PyAV for mp4), so tests need no media files
in the repository. Signals are deterministic.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def sine(freq: float, seconds: float, sr: int, amplitude: float = 0.5) -> np.ndarray:
    """A float32 sine wave of ``round(seconds * sr)`` samples."""
    t = np.arange(round(seconds * sr), dtype=np.float64) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(path: Path, signal: np.ndarray, sr: int, subtype: str = "PCM_16") -> Path:
    """Write ``signal`` (``[samples]`` or ``[samples, channels]``) as a wav file."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), signal, sr, subtype=subtype)
    return path


def write_truncated_wav(path: Path, keep: float = 0.5) -> Path:
    """A valid 1 s, 16 kHz wav whose bytes are cut after ``keep`` of the file (header intact)."""
    write_wav(path, sine(440.0, 1.0, 16000), 16000)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write_mp4(
    path: Path,
    freq: float | None = 440.0,
    seconds: float = 1.0,
    sr: int = 16000,
    channels: int = 1,
    fps: int = 10,
    size: tuple[int, int] = (64, 48),
    audio_codec: str = "aac",
) -> Path:
    """A short mp4 with moving grey frames and, unless ``freq`` is None, a sine audio track.

    Args:
        path: Output file.
        freq: Sine frequency in Hz; ``None`` writes a video without an audio stream.
        seconds: Duration of both streams.
        sr: Audio sample rate.
        channels: 1 (mono) or 2 (the same sine on both channels).
        fps: Video frame rate.
        size: Frame width and height (even numbers, for yuv420p).
        audio_codec: Any audio encoder FFmpeg has (``aac``, ``mp2``, ``libopus``...).
    """
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = None
        if freq is not None:
            audio = container.add_stream(audio_codec, rate=sr)
            audio.layout = "mono" if channels == 1 else "stereo"
        for i in range(round(seconds * fps)):
            img = np.full((height, width, 3), (i * 20) % 256, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if audio is not None:
            wave = sine(freq, seconds, sr)
            block = 1024
            for start in range(0, len(wave), block):
                chunk = np.tile(wave[start : start + block], (channels, 1))
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(chunk),
                    format="fltp",
                    layout="mono" if channels == 1 else "stereo",
                )
                frame.sample_rate = sr
                frame.pts = start
                frame.time_base = Fraction(1, sr)
                container.mux(audio.encode(frame))
            container.mux(audio.encode(None))
    return path
