"""Reading audio from sound files and from video containers.

:func:`read_audio` is the one entry point: wav/flac/ogg (and the other formats libsndfile knows)
are read with soundfile, anything else (``.mp4``, ``.avi``, ``.mkv``, ``.webm``...) is decoded with
PyAV, which reads the first audio stream of the container. Either way the result is a mono float32
signal (channels are averaged), optionally cut to ``[start, end)`` seconds and resampled with
``torchaudio.functional.resample``. Every failure caused by the file (missing, unreadable,
truncated, no audio stream, nothing left after the cut, longer than ``max_seconds``) is an
:class:`ErcgraphError` that names the path and the reason.

:func:`audio_duration` reads a file's length from its header without decoding it; ``read_audio``
uses it to refuse audio longer than ``max_seconds`` before decoding (and, for a container whose
header gives no length, stops decoding once the limit is passed).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from ercgraph.errors import ErcgraphError

# suffixes read with soundfile; everything else goes through PyAV (FFmpeg)
SOUNDFILE_SUFFIXES = frozenset(
    {
        ".wav",
        ".wave",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".aif",
        ".aiff",
        ".aifc",
        ".au",
        ".snd",
        ".w64",
        ".rf64",
        ".caf",
        ".sph",
        ".nist",
    }
)
# libsndfile logs "data : <declared> (should be <actual>)" for a wav cut short
_WAV_SHORT = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def audio_duration(path: str | Path) -> float | None:
    """Seconds of audio in a file, from its header (nothing is decoded).

    Sound files report their frame count (soundfile); containers the duration of their first
    audio stream, else of the container (PyAV). ``None`` when the header does not say.

    Raises:
        ErcgraphError: if the file cannot be opened or has no audio stream.
    """
    path = Path(path)
    if path.suffix.lower() in SOUNDFILE_SUFFIXES:
        import soundfile as sf

        try:
            info = sf.info(str(path))
        except sf.SoundFileError as exc:
            raise ErcgraphError(f"{str(path)!r}: cannot read audio ({_reason(exc)})") from exc
        return info.frames / info.samplerate if info.samplerate and info.frames >= 0 else None
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ErcgraphError(f"{str(path)!r}: no audio stream in this file")
            stream = container.streams.audio[0]
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
            if container.duration:
                return container.duration / av.time_base
    except av.FFmpegError as exc:
        raise ErcgraphError(f"{str(path)!r}: cannot decode audio ({_reason(exc)})") from exc
    return None


def _too_long(path: Path, seconds: float, max_seconds: float, what: str = "") -> ErcgraphError:
    return ErcgraphError(
        f"{str(path)!r}: {seconds:.1f} s of audio{what} is longer than max_seconds={max_seconds} "
        f"(features.audio.max_seconds; raise it, or set it to null, to read this file)"
    )


def read_audio(
    path: str | Path,
    start: float | None = None,
    end: float | None = None,
    target_sr: int | None = 16000,
    max_seconds: float | None = None,
) -> tuple[torch.Tensor, int]:
    """Read a mono float32 signal from a sound file or from the audio track of a video.

    Args:
        path: A sound file (wav, flac, ogg... read with soundfile) or a video container (mp4,
            avi, mkv... decoded with PyAV).
        start: Start of the segment in seconds (``None``: beginning of the file).
        end: End of the segment in seconds, exclusive (``None``: end of the file). An ``end``
            past the end of the file is clipped to it.
        target_sr: Sample rate of the result; ``None`` keeps the file's rate.
        max_seconds: Longest audio read (the segment when ``start``/``end`` are given, else
            the whole file), checked against the header before decoding; ``None``: no limit.

    Returns:
        The signal ``[samples]`` (float32, channels averaged) and its sample rate.

    Raises:
        ErcgraphError: if the file does not exist, cannot be decoded, is a truncated wav, has no
            audio stream, if ``start``/``end`` are invalid, if the (cut) signal is empty, or
            if it is longer than ``max_seconds``.
    """
    path = Path(path)
    if start is not None and start < 0:
        raise ErcgraphError(f"{str(path)!r}: start must be >= 0 seconds, got {start}")
    if start is not None and end is not None and end <= start:
        raise ErcgraphError(f"{str(path)!r}: end ({end}) must be after start ({start})")
    if target_sr is not None and target_sr <= 0:
        raise ErcgraphError(f"target_sr must be a positive sample rate, got {target_sr}")
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise ErcgraphError(f"audio file {str(path)!r} {what}")
    if max_seconds is not None:
        total = audio_duration(path)
        if total is not None:
            stop = total if end is None else min(end, total)
            length = stop - (start or 0.0)
            if length > max_seconds:
                if end is not None:
                    cut = f" in [{start or 0.0:g}, {end:g}) s"
                else:
                    cut = "" if start is None else f" from {start:g} s on"
                raise _too_long(path, length, max_seconds, cut)
    if path.suffix.lower() in SOUNDFILE_SUFFIXES:
        signal, sr = _read_soundfile(path, start, end)
    else:
        signal, sr = _read_container(path, start, end, max_seconds)
    if signal.size == 0:
        cut = f" between {start} and {end} s" if (start is not None or end is not None) else ""
        raise ErcgraphError(f"{str(path)!r}: empty audio signal{cut}")
    if not np.isfinite(signal).all():
        raise ErcgraphError(f"{str(path)!r}: the audio signal holds NaN or infinite samples")
    x = torch.from_numpy(np.ascontiguousarray(signal, dtype=np.float32))
    if target_sr is not None and target_sr != sr:
        import torchaudio.functional as AF

        x = AF.resample(x, int(sr), int(target_sr))
        sr = int(target_sr)
    return x, int(sr)


def _frames(sr: int, start: float | None, end: float | None) -> tuple[int, int | None]:
    first = 0 if start is None else int(round(start * sr))
    last = None if end is None else int(round(end * sr))
    return first, last


def _read_soundfile(path: Path, start: float | None, end: float | None) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        info = sf.info(str(path))
        short = _WAV_SHORT.search(info.extra_info or "")
        if short and int(short.group(2)) < int(short.group(1)):
            raise ErcgraphError(
                f"{str(path)!r}: truncated audio file (the header declares "
                f"{short.group(1)} bytes of audio, the file holds {short.group(2)})"
            )
        first, last = _frames(info.samplerate, start, end)
        if last is not None:
            last = min(last, info.frames)
        if first >= info.frames or (last is not None and last <= first):
            return np.zeros(0, dtype=np.float32), int(info.samplerate)
        data, sr = sf.read(str(path), start=first, stop=last, dtype="float32", always_2d=True)
    except sf.SoundFileError as exc:
        raise ErcgraphError(f"{str(path)!r}: cannot read audio ({_reason(exc)})") from exc
    return data.mean(axis=1), int(sr)


def _read_container(
    path: Path, start: float | None, end: float | None, max_seconds: float | None = None
) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ErcgraphError(f"{str(path)!r}: no audio stream in this file")
            stream = container.streams.audio[0]
            # planar float keeps each channel's samples apart, so channels are averaged here
            # exactly as for sound files (FFmpeg's own downmix would weight them differently)
            resampler = av.AudioResampler(format="fltp")
            chunks: list[np.ndarray] = []
            sr, total, stop, limit = None, 0, None, None
            for frame in container.decode(stream):
                if sr is None:
                    sr = frame.sample_rate
                    stop = None if end is None else int(round(end * sr))
                    if max_seconds is not None:
                        # for a header without a length, or a wrong one; 1 s of slack for the
                        # codec's padding
                        limit = int(((start or 0.0) + max_seconds + 1.0) * sr)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().mean(axis=0))
                    total += len(chunks[-1])
                if stop is not None and total >= stop:
                    break  # the segment is complete; the rest of the file is not needed
                if limit is not None and total > limit:
                    raise _too_long(path, total / sr - (start or 0.0), max_seconds, " (at least)")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().mean(axis=0))
            sr = sr or stream.rate or stream.codec_context.sample_rate
    except av.FFmpegError as exc:
        raise ErcgraphError(f"{str(path)!r}: cannot decode audio ({_reason(exc)})") from exc
    if not sr:
        raise ErcgraphError(f"{str(path)!r}: the audio stream has no sample rate")
    signal = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    first, last = _frames(sr, start, end)
    return signal[first:last], int(sr)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
