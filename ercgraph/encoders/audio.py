"""Audio encoders: one fixed-size vector per utterance from a waveform.

Encoders are chosen by a spec string, as on the CLI (``--encoder opensmile:IS10``)::

    fbank            Kaldi log-mel filterbank frames (80 bins), mean and std over frames
    fbank:64         the same with 64 bins
    mfcc / mfcc:13   Kaldi MFCC frames (40 / 13 coefficients), mean and std over frames
    opensmile:IS10   openSMILE functionals: IS09, IS10 (1582-d, the MMGCN audio feature),
                     eGeMAPS (eGeMAPSv02, 88-d), ComParE (ComParE_2016, 6373-d) or any
                     ``opensmile.FeatureSet`` name
    hf:<path>        a transformers audio model (wav2vec2, HuBERT, WavLM...) in a local folder,
                     mean-pooled over time; a bare existing path means the same
    <spec>,key=value options after the spec, e.g. ``hf:/models/wavlm,layer=6``,
                     ``hf:/models/hubert,layer=mean``, ``mfcc:20,n_mels=40``

Encoders live in the open registry :data:`AUDIO_ENCODERS` (plug-ins through the
``ercgraph.audio_encoders`` entry-point group or a dotted path ``pkg.module:MyEncoder``). Each has
a ``name``, a ``dim``, a ``sample_rate`` it works at, ``settings()`` (everything its output
depends on, for the feature cache manifest; its ``repr`` lists them) and
``encode(signal, sr) -> FloatTensor[dim]``, which resamples the signal when ``sr`` differs.
:func:`encode_files` reads and encodes many clips, keeping going past unreadable ones.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

import torch

from ercgraph.encoders.media import read_audio
from ercgraph.errors import ErcgraphError
from ercgraph.registry import Registry, check_kwargs

log = logging.getLogger(__name__)

AUDIO_ENCODERS: Registry = Registry("audio encoder", "ercgraph.audio_encoders")

# the feature sets named in papers, mapped to the opensmile.FeatureSet member that computes them
OPENSMILE_ALIASES = {
    "is09": "IS09",
    "is10": "IS10",
    "egemaps": "eGeMAPSv02",
    "compare": "ComParE_2016",
}
_OPTION = re.compile(r"^\s*([A-Za-z_]\w*)\s*=(.*)$")
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


class AudioEncoder:
    """Base class of the built-in audio encoders.

    Subclasses set ``name``, ``dim`` and ``sample_rate``, implement :meth:`settings` and
    :meth:`forward` (a 1-D float32 signal at ``sample_rate`` in, a ``[dim]`` vector out).
    ``spec_arg`` names the constructor argument that ``name:<arg>`` in a spec fills.
    """

    name: str = "audio"
    spec_arg: str | None = None
    sample_rate: int = 16000
    dim: int

    @classmethod
    def from_spec(cls, arg: Any = None, **options: Any) -> AudioEncoder:
        """Build from the ``<arg>`` of ``name:<arg>`` and ``key=value`` options."""
        return _construct(cls, cls.name, arg, options)

    def settings(self) -> dict[str, Any]:
        """Everything the features depend on (JSON-serialisable; part of the cache key)."""
        raise NotImplementedError

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        """Encode a 1-D float32 signal sampled at ``self.sample_rate`` into ``[dim]``."""
        raise NotImplementedError

    def encode(self, signal: torch.Tensor, sr: int) -> torch.Tensor:
        """Encode a mono signal ``[samples]`` sampled at ``sr`` Hz into a float32 ``[dim]``.

        Raises:
            ErcgraphError: if the signal is empty, not finite, or too short for this encoder.
        """
        x = torch.as_tensor(signal).detach().float().cpu()
        if x.dim() == 2 and 1 in x.shape:
            x = x.reshape(-1)
        if x.dim() != 1:
            raise ErcgraphError(
                f"{self.name}: expected a mono signal [samples], got shape {tuple(x.shape)}"
            )
        if x.numel() == 0:
            raise ErcgraphError(f"{self.name}: empty audio signal")
        if not torch.isfinite(x).all():
            raise ErcgraphError(f"{self.name}: the audio signal holds NaN or infinite samples")
        if int(sr) != self.sample_rate:
            import torchaudio.functional as AF

            x = AF.resample(x, int(sr), self.sample_rate)
        out = self.forward(x).detach().float().cpu().reshape(-1)
        if out.numel() != self.dim:
            raise ErcgraphError(f"{self.name}: produced {out.numel()} values, expected {self.dim}")
        return out

    def __call__(self, signal: torch.Tensor, sr: int) -> torch.Tensor:
        return self.encode(signal, sr)

    def _too_short(self, x: torch.Tensor, need: int) -> ErcgraphError:
        seconds = x.numel() / self.sample_rate
        return ErcgraphError(
            f"{self.name}: signal too short ({x.numel()} samples = {seconds:.3f} s at "
            f"{self.sample_rate} Hz; at least {need} samples needed)"
        )

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items() if k != "encoder")
        return f"{type(self).__name__}({args})"


class _KaldiEncoder(AudioEncoder):
    """Kaldi-compatible frame features (torchaudio.compliance.kaldi) with statistics pooling.

    The waveform is scaled to the 16-bit integer range first, as Kaldi reads wav files, so log
    energies match Kaldi's. Dither is off, so features are deterministic.
    """

    def __init__(
        self,
        n_mels: int,
        frame_length: float = 25.0,
        frame_shift: float = 10.0,
        low_freq: float = 20.0,
        high_freq: float = 0.0,
    ) -> None:
        self.n_mels = _positive_int(n_mels, f"{self.name}: n_mels")
        if not (0 < float(frame_shift) <= float(frame_length)):
            raise ErcgraphError(
                f"{self.name}: need 0 < frame_shift <= frame_length (ms), got "
                f"{frame_shift} and {frame_length}"
            )
        self.frame_length, self.frame_shift = float(frame_length), float(frame_shift)
        self.low_freq, self.high_freq = float(low_freq), float(high_freq)

    @property
    def frame_dim(self) -> int:
        return self.n_mels

    @property
    def dim(self) -> int:  # type: ignore[override]
        return 2 * self.frame_dim

    def _kaldi_args(self) -> dict[str, Any]:
        return {
            "num_mel_bins": self.n_mels,
            "frame_length": self.frame_length,
            "frame_shift": self.frame_shift,
            "low_freq": self.low_freq,
            "high_freq": self.high_freq,
            "sample_frequency": float(self.sample_rate),
            "dither": 0.0,
        }

    def frames(self, signal: torch.Tensor) -> torch.Tensor:
        """Frame features ``[frames, frame_dim]`` of a 1-D signal at ``sample_rate``."""
        raise NotImplementedError

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        need = int(self.sample_rate * self.frame_length / 1000)
        if signal.numel() < need:
            raise self._too_short(signal, need)
        feats = self.frames(signal)
        return torch.cat([feats.mean(0), feats.std(0, unbiased=False)])

    def settings(self) -> dict[str, Any]:
        return {
            "encoder": self.name,
            "n_mels": self.n_mels,
            "frame_length": self.frame_length,
            "frame_shift": self.frame_shift,
            "low_freq": self.low_freq,
            "high_freq": self.high_freq,
            "sample_rate": self.sample_rate,
            "pooling": "mean+std",
        }


@AUDIO_ENCODERS.register("fbank")
class FbankEncoder(_KaldiEncoder):
    """Log-mel filterbank frames, pooled to their mean and standard deviation (``2 * n_mels``).

    Args:
        n_mels: Mel bins per frame (spec ``fbank:<n_mels>``).
        frame_length: Window length in milliseconds.
        frame_shift: Hop in milliseconds.
        low_freq: Lowest mel filter edge in Hz.
        high_freq: Highest edge in Hz; ``<= 0`` counts back from the Nyquist frequency.
    """

    name = "fbank"
    spec_arg = "n_mels"

    def __init__(
        self,
        n_mels: int = 80,
        frame_length: float = 25.0,
        frame_shift: float = 10.0,
        low_freq: float = 20.0,
        high_freq: float = 0.0,
    ) -> None:
        super().__init__(n_mels, frame_length, frame_shift, low_freq, high_freq)

    def frames(self, signal: torch.Tensor) -> torch.Tensor:
        from torchaudio.compliance import kaldi

        return kaldi.fbank(signal.unsqueeze(0) * 32768.0, **self._kaldi_args())


@AUDIO_ENCODERS.register("mfcc")
class MfccEncoder(_KaldiEncoder):
    """MFCC frames, pooled to their mean and standard deviation (``2 * n_ceps``).

    Args:
        n_ceps: Cepstral coefficients per frame (spec ``mfcc:<n_ceps>``).
        n_mels: Mel bins the coefficients are computed from; ``None``: ``max(n_ceps, 23)``
            (Kaldi's 23 bins, or as many bins as coefficients as in Kaldi's hires MFCCs).
        frame_length, frame_shift, low_freq, high_freq: As for :class:`FbankEncoder`.
    """

    name = "mfcc"
    spec_arg = "n_ceps"

    def __init__(
        self,
        n_ceps: int = 40,
        n_mels: int | None = None,
        frame_length: float = 25.0,
        frame_shift: float = 10.0,
        low_freq: float = 20.0,
        high_freq: float = 0.0,
    ) -> None:
        self.n_ceps = _positive_int(n_ceps, "mfcc: n_ceps")
        n_mels = max(self.n_ceps, 23) if n_mels is None else n_mels
        super().__init__(n_mels, frame_length, frame_shift, low_freq, high_freq)
        if self.n_ceps > self.n_mels:
            raise ErcgraphError(
                f"mfcc: n_ceps ({self.n_ceps}) cannot exceed n_mels ({self.n_mels})"
            )

    @property
    def frame_dim(self) -> int:
        return self.n_ceps

    def frames(self, signal: torch.Tensor) -> torch.Tensor:
        from torchaudio.compliance import kaldi

        return kaldi.mfcc(signal.unsqueeze(0) * 32768.0, num_ceps=self.n_ceps, **self._kaldi_args())

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "n_ceps": self.n_ceps}


def opensmile_feature_set(name: str) -> str:
    """The ``opensmile.FeatureSet`` member name for a feature set name (case-insensitive).

    ``IS09``, ``IS10``, ``eGeMAPS`` (→ ``eGeMAPSv02``) and ``ComParE`` (→ ``ComParE_2016``) are
    accepted, as is every member name of ``opensmile.FeatureSet``.

    Raises:
        ErcgraphError: for an unknown name (the message lists the choices).
    """
    import opensmile

    members = list(opensmile.FeatureSet.__members__)
    key = str(name).strip()
    if key.lower() in OPENSMILE_ALIASES:
        return OPENSMILE_ALIASES[key.lower()]
    for member in members:
        if member.lower() == key.lower():
            return member
    choices = sorted({*OPENSMILE_ALIASES.values(), "eGeMAPS", "ComParE", *members})
    raise ErcgraphError(
        f"opensmile: unknown feature set {name!r}; choose one of {', '.join(choices)}"
    )


@AUDIO_ENCODERS.register("opensmile")
class OpenSmileEncoder(AudioEncoder):
    """openSMILE functionals of the whole utterance (one vector per clip).

    Args:
        feature_set: ``IS09`` (384-d), ``IS10`` (1582-d), ``eGeMAPS`` (88-d), ``ComParE``
            (6373-d) or any ``opensmile.FeatureSet`` name (spec ``opensmile:<set>``).
    """

    name = "opensmile"
    spec_arg = "feature_set"

    def __init__(self, feature_set: str = "IS10") -> None:
        import opensmile

        self.feature_set = opensmile_feature_set(feature_set)
        self.smile = opensmile.Smile(
            feature_set=opensmile.FeatureSet[self.feature_set],
            feature_level=opensmile.FeatureLevel.Functionals,
        )
        self.dim = len(self.smile.feature_names)
        self.version = opensmile.__version__

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        import warnings

        with warnings.catch_warnings():
            # a too-short segment warns and fills NaN; that becomes the error below instead
            warnings.filterwarnings("ignore", message="Segment too short")
            frame = self.smile.process_signal(signal.numpy(), self.sample_rate)
        # torch.tensor copies: the array pandas hands out is read-only
        out = torch.tensor(frame.to_numpy(dtype="float32")).reshape(-1)
        bad = int((~torch.isfinite(out)).sum())
        if bad:
            raise ErcgraphError(
                f"opensmile {self.feature_set}: {bad} of {out.numel()} functionals are not finite "
                f"(signal of {signal.numel() / self.sample_rate:.3f} s is probably too short)"
            )
        return out

    def settings(self) -> dict[str, Any]:
        return {
            "encoder": self.name,
            "feature_set": self.feature_set,
            "feature_level": "functionals",
            "sample_rate": self.sample_rate,
            "opensmile_version": self.version,
        }


@AUDIO_ENCODERS.register("hf")
class HFAudioEncoder(AudioEncoder):
    """A transformers audio model (wav2vec2, HuBERT, WavLM...) from a local folder.

    The folder's feature extractor (``preprocessor_config.json``, if any) prepares the waveform
    and sets the sample rate (else 16 kHz, raw samples); the chosen hidden states are averaged
    over time.

    Args:
        path: Local model folder (spec ``hf:<path>``, or the bare path).
        layer: ``None``/``"last"``: the model's ``last_hidden_state``; an int ``i``: entry ``i``
            of ``hidden_states`` (0 = the input of the first transformer layer, negative counts
            from the end); ``"mean"``: the average of all ``hidden_states`` entries (0 included).
        device: ``cpu``, ``cuda``, ...; ``None`` picks CUDA when available.
    """

    name = "hf"
    spec_arg = "path"

    def __init__(
        self, path: str | Path, layer: int | str | None = None, device: str | None = None
    ) -> None:
        from transformers import AutoFeatureExtractor, AutoModel

        from ercgraph.encoders.text import encoder_fingerprint

        folder = Path(str(path)).expanduser()
        if not folder.exists():
            raise ErcgraphError(f"audio encoder: model path {str(path)!r} does not exist")
        self.path = str(folder.resolve())
        try:
            self.feature_extractor = (
                AutoFeatureExtractor.from_pretrained(self.path)
                if (folder / "preprocessor_config.json").is_file()
                else None
            )
            self.model = AutoModel.from_pretrained(self.path)
        except (OSError, ValueError, KeyError) as exc:
            raise ErcgraphError(
                f"could not load audio encoder {self.path!r}: "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from exc
        config = self.model.config
        self.sample_rate = int(getattr(self.feature_extractor, "sampling_rate", None) or 16000)
        self.num_layers = int(getattr(config, "num_hidden_layers", 0))
        self.layer = self._check_layer(layer)
        self.dim = int(config.hidden_size)
        self.min_samples = _receptive_field(config)
        self.fingerprint = _hf_fingerprint(self.path, encoder_fingerprint)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device)
        if self.device.type == "cpu" and self.model.dtype in (torch.float16, torch.bfloat16):
            self.model.float()
        self.model.eval()

    def _check_layer(self, layer: int | str | None) -> int | str:
        if layer is None or (isinstance(layer, str) and layer.strip().lower() == "last"):
            return "last"
        if isinstance(layer, str) and layer.strip().lower() == "mean":
            return "mean"
        try:
            index = int(layer)
        except (TypeError, ValueError):
            raise ErcgraphError(
                f"hf audio encoder: layer must be an int, 'last' or 'mean', got {layer!r}"
            ) from None
        n = self.num_layers + 1  # hidden_states: the embedding output and every layer
        if not -n <= index < n:
            raise ErcgraphError(
                f"hf audio encoder {self.path!r}: layer {index} out of range; "
                f"the model has hidden states 0..{n - 1}"
            )
        return index % n

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        if signal.numel() < self.min_samples:
            raise self._too_short(signal, self.min_samples)
        if self.feature_extractor is not None:
            inputs = dict(
                self.feature_extractor(
                    signal.numpy(), sampling_rate=self.sample_rate, return_tensors="pt"
                )
            )
        else:
            inputs = {"input_values": signal.unsqueeze(0)}
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        if "input_values" in inputs:
            inputs["input_values"] = inputs["input_values"].to(self.model.dtype)
        with torch.inference_mode():
            out = self.model(**inputs, output_hidden_states=self.layer != "last")
        if self.layer == "last":
            hidden = out.last_hidden_state
        elif self.layer == "mean":
            hidden = torch.stack([h.float() for h in out.hidden_states]).mean(0)
        else:
            hidden = out.hidden_states[self.layer]
        return hidden[0].float().mean(0)

    def settings(self) -> dict[str, Any]:
        return {
            "encoder": self.name,
            "path": self.path,
            "fingerprint": self.fingerprint,
            "layer": self.layer,
            "sample_rate": self.sample_rate,
            "pooling": "mean",
        }


def _receptive_field(config: Any) -> int:
    """Samples needed for one output frame of a wav2vec2-style conv front end (1 if unknown)."""
    kernels, strides = getattr(config, "conv_kernel", None), getattr(config, "conv_stride", None)
    if not kernels or not strides:
        return 1
    field, hop = 1, 1
    for k, s in zip(kernels, strides, strict=False):
        field += (int(k) - 1) * hop
        hop *= int(s)
    return field


def _hf_fingerprint(path: str, fingerprint: Any) -> str:
    """The text encoder's folder fingerprint plus the feature extractor's config."""
    import hashlib

    h = hashlib.sha256(fingerprint(path).encode())
    pre = Path(path) / "preprocessor_config.json"
    if pre.is_file():
        h.update(pre.read_bytes())
    return h.hexdigest()[:20]


def _positive_int(value: Any, what: str) -> int:
    try:
        out = int(value)
    except (TypeError, ValueError):
        out = 0
    if out < 1 or (isinstance(value, float) and not value.is_integer()):
        raise ErcgraphError(f"{what} must be a positive integer, got {value!r}")
    return out


def _coerce(text: str) -> Any:
    """``"64"`` → 64, ``"0.5"`` → 0.5, ``"true"`` → True, ``"none"`` → None, else the string."""
    value = text.strip()
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    if re.fullmatch(r"[+-]?\d+", value):
        return int(value)
    try:
        return float(value)
    except ValueError:
        return value


def parse_spec(spec: str) -> tuple[str, str | None, dict[str, Any]]:
    """Split an encoder spec into ``(name, arg, options)``.

    ``"fbank:64"`` → ``("fbank", "64", {})``; ``"hf:/m/wavlm,layer=6"`` →
    ``("hf", "/m/wavlm", {"layer": 6})``; an existing path ``"/m/wavlm"`` →
    ``("hf", "/m/wavlm", {})``. Trailing comma-separated ``key=value`` parts are options (values
    converted to int/float/bool when they look like one); a comma elsewhere stays in the spec.
    """
    parts = str(spec).split(",")
    options: dict[str, Any] = {}
    while len(parts) > 1 and _OPTION.match(parts[-1]):
        key, value = _OPTION.match(parts.pop()).groups()  # type: ignore[union-attr]
        options.setdefault(key, _coerce(value))
    main = ",".join(parts).strip()
    if not main:
        raise ErcgraphError(
            f"empty audio encoder spec {spec!r}; choose one of "
            f"{', '.join(AUDIO_ENCODERS.names())} (or a model path)"
        )
    if main not in AUDIO_ENCODERS and Path(main).expanduser().exists():
        return "hf", main, options
    name, sep, arg = main.partition(":")
    return name.strip(), (arg.strip() if sep else None), options


def _construct(cls: type, name: str, arg: Any, options: dict[str, Any]) -> Any:
    kwargs = dict(options)
    if arg is not None:
        key = getattr(cls, "spec_arg", None)
        if key is None:
            raise ErcgraphError(f"audio encoder {name!r} takes no ':' argument, got {arg!r}")
        if key in kwargs:
            raise ErcgraphError(
                f"audio encoder {name!r}: {key!r} given twice (as ':{arg}' and as an option)"
            )
        kwargs[key] = arg
    check_kwargs(cls, kwargs, f"audio encoder {name!r}")
    return cls(**kwargs)


def audio_encoder(spec: str | dict[str, Any] | Any, **options: Any) -> Any:
    """Build an audio encoder from a spec string (see the module docstring).

    Args:
        spec: ``"fbank"``, ``"mfcc:13"``, ``"opensmile:IS10"``, ``"hf:<path>,layer=6"``, a bare
            model path, a dotted path ``pkg.module:Class``, a dict ``{"name": ..., **kwargs}``,
            or an encoder instance (returned unchanged).
        **options: Extra constructor arguments (they override options in the spec).

    Raises:
        ErcgraphError: for an unknown encoder name (the message lists the registered ones), a
            model path that does not exist, or bad options.
    """
    if isinstance(spec, dict):
        return AUDIO_ENCODERS.create({**spec, **options})
    if not isinstance(spec, str):
        return spec
    name, arg, spec_options = parse_spec(spec)
    spec_options.update(options)
    if name in AUDIO_ENCODERS:
        cls = AUDIO_ENCODERS.get(name)
    elif _is_dotted(name, arg):
        cls, name, arg = AUDIO_ENCODERS.get(f"{name}:{arg}"), f"{name}:{arg}", None
    elif name.startswith(("/", ".", "~", "\\")) or "/" in name or "\\" in name:
        raise ErcgraphError(f"audio encoder: model path {name!r} does not exist")
    else:
        cls = AUDIO_ENCODERS.get(name)  # raises, listing the registered encoders
    if hasattr(cls, "from_spec"):
        return cls.from_spec(arg, **spec_options)
    return _construct(cls, name, arg, spec_options)


def _is_dotted(module: str, attr: str | None) -> bool:
    """True for ``pkg.module:Class`` (or ``module:Class`` naming an importable module)."""
    if not attr or not _DOTTED.fullmatch(module) or not attr.isidentifier():
        return False
    if "." in module:
        return True
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def encode_files(
    encoder: Any,
    items: list[tuple[str | Path, float | None, float | None]],
    progress: bool = True,
    max_seconds: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, str, str]]]:
    """Read and encode many clips, skipping the ones that cannot be read or encoded.

    Args:
        encoder: An audio encoder (or a spec for :func:`audio_encoder`).
        items: ``(path, start, end)`` per clip; ``start``/``end`` in seconds, ``None`` (or NaN)
            for the whole file.
        progress: Show a tqdm progress bar (hidden anyway when stderr is not a terminal).
        max_seconds: Longest clip (or segment) read; a longer one is skipped as failed, told
            from the file's header before it is decoded (see :func:`read_audio`).

    Returns:
        ``x`` float32 ``[len(items), dim]`` (rows of failed clips are zero), ``ok`` bool
        ``[len(items)]`` (False for failed clips, to use as a FeatureStore ``present`` mask) and
        ``errors``: ``(index, path, reason)`` per failed clip, each also logged as a warning.
    """
    import av
    import soundfile as sf
    from tqdm.auto import tqdm

    encoder = audio_encoder(encoder)
    x = torch.zeros((len(items), int(encoder.dim)), dtype=torch.float32)
    ok = torch.zeros(len(items), dtype=torch.bool)
    errors: list[tuple[int, str, str]] = []
    sr = getattr(encoder, "sample_rate", 16000)
    desc = f"audio features ({getattr(encoder, 'name', type(encoder).__name__)})"
    with tqdm(items, desc=desc, unit="utt", disable=None if progress else True) as bar:
        for i, (path, start, end) in enumerate(bar):
            try:
                signal, rate = read_audio(
                    path,
                    None if _missing(start) else float(start),
                    None if _missing(end) else float(end),
                    target_sr=sr,
                    max_seconds=max_seconds,
                )
                x[i] = encoder.encode(signal, rate)
                ok[i] = True
            except (ErcgraphError, OSError, av.FFmpegError, sf.SoundFileError) as exc:
                reason = str(exc).strip() or type(exc).__name__
                log.warning("audio features: skipped %s: %s", path, reason)
                errors.append((i, str(path), reason))
    return x, ok, errors
