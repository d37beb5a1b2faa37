"""Audio reading (soundfile, PyAV), the audio encoders and encode_files, on real EmoDB clips."""

from __future__ import annotations

import csv
import json
import logging
import sys
import textwrap
from itertools import combinations
from pathlib import Path

import pytest
import soundfile as sf
import torch

from ercgraph.encoders.audio import (
    AUDIO_ENCODERS,
    AudioEncoder,
    FbankEncoder,
    HFAudioEncoder,
    audio_encoder,
    encode_files,
    parse_spec,
)
from ercgraph.encoders.media import read_audio
from ercgraph.errors import ErcgraphError

from .media_fixtures import sine, write_mp4, write_truncated_wav, write_wav

# spec -> feature dimension (opensmile sizes as published: IS10 1582, eGeMAPS 88, ComParE 6373)
SPECS = {
    "fbank": 160,
    "fbank:64": 128,
    "mfcc": 80,
    "mfcc:13": 26,
    "opensmile:IS09": 384,
    "opensmile:IS10": 1582,
    "opensmile:eGeMAPS": 88,
    "opensmile:ComParE": 6373,
}


@pytest.fixture(scope="module")
def emodb(data_root: Path) -> list[Path]:
    """The 7 EmoDB clips listed in ``emodb_samples/labels.csv`` (one per emotion)."""
    folder = data_root / "emodb_samples"
    labels = folder / "labels.csv"
    if not labels.is_file():
        pytest.fail(f"EmoDB samples missing: {str(labels)!r} not found", pytrace=False)
    with open(labels, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    paths = [folder / row["file"] for row in rows]
    assert len(paths) == 7 and len({row["emotion"] for row in rows}) == 7
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        pytest.fail(f"EmoDB clips missing: {missing}", pytrace=False)
    return paths


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer, 32-wide wav2vec2 with its feature extractor."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    folder = tmp_path_factory.mktemp("models") / "tiny_wav2vec2"
    cfg = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(32, 32),
        conv_kernel=(10, 3),
        conv_stride=(5, 2),
    )
    torch.manual_seed(0)
    Wav2Vec2Model(cfg).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=False,
    ).save_pretrained(folder)
    return folder


def dominant_freq(x: torch.Tensor, sr: int) -> float:
    spec = torch.fft.rfft(x * torch.hann_window(len(x), periodic=False)).abs()
    return float(spec.argmax()) * sr / len(x)


def assert_all_rows_differ(x: torch.Tensor) -> None:
    for i, j in combinations(range(len(x)), 2):
        assert not torch.equal(x[i], x[j]), f"clips {i} and {j} have identical features"


# ---------------------------------------------------------------- reading audio


def test_read_emodb_clips(emodb: list[Path]) -> None:
    for path in emodb:
        x, sr = read_audio(path)
        info = sf.info(str(path))
        assert sr == 16000 == info.samplerate and x.dtype == torch.float32 and x.dim() == 1
        assert len(x) == info.frames and 1.4 < len(x) / sr < 3.3
        assert 0.01 < x.abs().max() <= 1.0
    # a cut reads exactly the samples of [start, end)
    full, _ = read_audio(emodb[0])
    cut, _ = read_audio(emodb[0], start=0.5, end=1.0)
    assert torch.equal(cut, full[8000:16000])
    assert torch.equal(read_audio(emodb[0], start=1.0)[0], full[16000:])
    assert torch.equal(read_audio(emodb[0], end=99.0)[0], full)  # clipped to the file


def test_resampling_8k_sine_to_16k(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "sine8k.wav", sine(440.0, 1.0, 8000), 8000)
    x, sr = read_audio(path)
    assert sr == 16000 and len(x) == 16000
    assert abs(dominant_freq(x, sr) - 440.0) < 2.0
    native, native_sr = read_audio(path, target_sr=None)
    assert native_sr == 8000 and len(native) == 8000
    cut, _ = read_audio(path, start=0.25, end=0.75)
    assert len(cut) == 8000
    # an encoder given 8 kHz audio resamples it itself
    enc = FbankEncoder(n_mels=40)
    assert torch.allclose(enc.encode(native, 8000), enc.encode(x, 16000))


def test_stereo_is_averaged_to_mono(tmp_path: Path) -> None:
    left = sine(300.0, 0.5, 16000)
    stereo = torch.stack([torch.from_numpy(left), torch.zeros(len(left))], dim=1).numpy()
    x, _ = read_audio(write_wav(tmp_path / "stereo.wav", stereo, 16000, subtype="FLOAT"))
    assert torch.allclose(x, torch.from_numpy(left) / 2, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 2])
def test_audio_track_of_a_video(tmp_path: Path, channels: int) -> None:
    path = write_mp4(
        tmp_path / f"clip{channels}.mp4", freq=440.0, seconds=1.0, sr=16000, channels=channels
    )
    x, sr = read_audio(path)
    assert sr == 16000 and x.dtype == torch.float32
    assert 16000 <= len(x) <= 16000 + 2 * 1024  # AAC pads to whole 1024-sample frames
    assert abs(dominant_freq(x, sr) - 440.0) < 3.0
    assert 0.3 < x.abs().max() < 0.7  # the sine's amplitude 0.5, not halved or doubled
    x8, sr8 = read_audio(path, start=0.2, end=0.7, target_sr=8000)
    assert sr8 == 8000 and len(x8) == 4000
    assert abs(dominant_freq(x8, sr8) - 440.0) < 5.0


def test_video_without_audio(tmp_path: Path) -> None:
    path = write_mp4(tmp_path / "silent_film.mp4", freq=None)
    with pytest.raises(ErcgraphError, match=r"silent_film\.mp4.*no audio"):
        read_audio(path)


def test_bad_files_name_the_path(tmp_path: Path) -> None:
    truncated = write_truncated_wav(tmp_path / "truncated.wav", keep=0.5)
    with pytest.raises(ErcgraphError, match=r"truncated\.wav.*truncated"):
        read_audio(truncated)
    header_only = write_truncated_wav(tmp_path / "header_cut.wav", keep=0.001)
    with pytest.raises(ErcgraphError, match=r"header_cut\.wav.*cannot read audio"):
        read_audio(header_only)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF" + bytes(range(256)) * 4)
    with pytest.raises(ErcgraphError, match=r"garbage\.wav.*cannot read audio"):
        read_audio(garbage)
    bad_video = tmp_path / "garbage.mp4"
    bad_video.write_bytes(bytes(1000))
    with pytest.raises(ErcgraphError, match=r"garbage\.mp4.*cannot decode audio"):
        read_audio(bad_video)
    with pytest.raises(ErcgraphError, match=r"nope\.wav.* does not exist"):
        read_audio(tmp_path / "nope.wav")
    good = write_wav(tmp_path / "short.wav", sine(440.0, 0.5, 16000), 16000)
    with pytest.raises(ErcgraphError, match=r"short\.wav.*empty audio signal"):
        read_audio(good, start=2.0)
    with pytest.raises(ErcgraphError, match=r"short\.wav.*must be after start"):
        read_audio(good, start=0.3, end=0.2)


def test_max_seconds_is_checked_from_the_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import av

    from ercgraph.encoders import media

    wav = write_wav(tmp_path / "long.wav", sine(440.0, 3.0, 16000), 16000)
    mp4 = write_mp4(tmp_path / "long.mp4", freq=440.0, seconds=3.0)
    assert media.audio_duration(wav) == 3.0 and 2.9 < media.audio_duration(mp4) < 3.2
    for path in (wav, mp4):
        with pytest.raises(ErcgraphError, match=r"long\.(wav|mp4).*s of audio is longer than "):
            read_audio(path, max_seconds=2.0)
        # a segment is measured by its own length
        assert len(read_audio(path, start=1.0, end=2.5, max_seconds=2.0)[0]) == 24000
        with pytest.raises(ErcgraphError, match=r"1\.8 s of audio from 1\.2 s on is longer"):
            read_audio(path, start=1.2, max_seconds=1.5)
    # nothing is decoded for a file found too long
    monkeypatch.setattr(sf, "read", lambda *a, **k: pytest.fail("decoded"))
    monkeypatch.setattr(av, "AudioResampler", lambda *a, **k: pytest.fail("decoded"))
    for path in (wav, mp4):
        with pytest.raises(ErcgraphError, match="longer than max_seconds=2.0"):
            read_audio(path, max_seconds=2.0)
    monkeypatch.undo()
    # a container whose header gives no length is stopped while it is decoded
    monkeypatch.setattr(media, "audio_duration", lambda path: None)
    with pytest.raises(ErcgraphError, match=r"long\.mp4.*\(at least\) is longer than max_seconds"):
        read_audio(mp4, max_seconds=1.0)
    assert len(read_audio(mp4, max_seconds=2.5)[0]) >= 48000


# ---------------------------------------------------------------- encoders


@pytest.mark.parametrize("spec", list(SPECS))
def test_encoders_on_emodb(spec: str, emodb: list[Path]) -> None:
    enc = audio_encoder(spec)
    assert enc.dim == SPECS[spec]
    x, ok, errors = encode_files(enc, [(p, None, None) for p in emodb], progress=False)
    assert errors == [] and ok.all()
    assert x.shape == (7, SPECS[spec]) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    assert_all_rows_differ(x)
    signal, sr = read_audio(emodb[0])
    assert torch.equal(enc.encode(signal, sr), x[0])  # deterministic


def test_hf_encoder_on_emodb(tiny_wav2vec2: Path, emodb: list[Path]) -> None:
    enc = audio_encoder(f"hf:{tiny_wav2vec2}", device="cpu")
    assert isinstance(enc, HFAudioEncoder) and enc.dim == 32 and enc.layer == "last"
    x, ok, errors = encode_files(enc, [(p, None, None) for p in emodb], progress=False)
    assert errors == [] and ok.all() and x.shape == (7, 32)
    assert torch.isfinite(x).all()
    assert_all_rows_differ(x)
    # a bare existing path means the same encoder
    same = audio_encoder(str(tiny_wav2vec2), device="cpu")
    assert same.settings() == enc.settings()
    signal, sr = read_audio(emodb[1])
    assert torch.allclose(same.encode(signal, sr), x[1], atol=1e-5)


def test_hf_layer_choice(tiny_wav2vec2: Path, emodb: list[Path]) -> None:
    signal, sr = read_audio(emodb[0])
    out = {}
    for layer in (0, "last", "mean", 2, -1):
        enc = audio_encoder(f"hf:{tiny_wav2vec2},layer={layer}", device="cpu")
        out[layer] = enc.encode(signal, sr)
        assert out[layer].shape == (32,) and torch.isfinite(out[layer]).all()
    assert not torch.allclose(out[0], out["last"])
    assert not torch.allclose(out["mean"], out["last"])
    assert not torch.allclose(out["mean"], out[0])
    # without stable layer norm the last hidden state is hidden_states[-1]
    assert torch.allclose(out[2], out["last"], atol=1e-5)
    assert torch.equal(out[-1], out[2])
    assert audio_encoder(f"hf:{tiny_wav2vec2},layer=-1").settings()["layer"] == 2
    with pytest.raises(ErcgraphError, match="layer 3 out of range.*0..2"):
        audio_encoder(f"hf:{tiny_wav2vec2}", layer=3)
    with pytest.raises(ErcgraphError, match="layer must be an int, 'last' or 'mean'"):
        audio_encoder(f"hf:{tiny_wav2vec2}", layer="first")


def test_too_short_signals() -> None:
    short = torch.from_numpy(sine(440.0, 0.01, 16000))  # 160 samples
    with pytest.raises(ErcgraphError, match="fbank: signal too short.*400 samples"):
        audio_encoder("fbank").encode(short, 16000)
    with pytest.raises(ErcgraphError, match="opensmile IS10: .*not finite.*too short"):
        audio_encoder("opensmile:IS10").encode(short, 16000)
    with pytest.raises(ErcgraphError, match="empty audio signal"):
        audio_encoder("mfcc").encode(torch.zeros(0), 16000)


def test_settings_and_repr(tiny_wav2vec2: Path) -> None:
    fb = audio_encoder("fbank:64")
    assert repr(fb) == (
        "FbankEncoder(n_mels=64, frame_length=25.0, frame_shift=10.0, "
        "low_freq=20.0, high_freq=0.0, sample_rate=16000, pooling='mean+std')"
    )
    assert fb.settings()["encoder"] == "fbank"
    assert audio_encoder("mfcc:13").settings()["n_mels"] == 23
    assert audio_encoder("mfcc:13,n_mels=40").settings()["n_mels"] == 40
    # paper names and opensmile member names give the same features, hence the same cache key
    assert (
        audio_encoder("opensmile:eGeMAPS").settings()
        == audio_encoder("opensmile:egemapsv02").settings()
    )
    assert audio_encoder("opensmile:compare").settings()["feature_set"] == "ComParE_2016"
    assert "feature_set='IS10'" in repr(audio_encoder("opensmile"))
    hf = audio_encoder(f"hf:{tiny_wav2vec2},layer=mean")
    assert f"path={str(tiny_wav2vec2.resolve())!r}" in repr(hf) and "layer='mean'" in repr(hf)
    for enc in (fb, hf, audio_encoder("opensmile:IS09")):
        json.dumps(enc.settings())
    assert audio_encoder({"name": "fbank", "n_mels": 32}).dim == 64
    assert audio_encoder(fb) is fb


def test_parse_spec(tiny_wav2vec2: Path) -> None:
    assert parse_spec("fbank") == ("fbank", None, {})
    assert parse_spec("fbank:64") == ("fbank", "64", {})
    assert parse_spec("mfcc:13,n_mels=40,frame_shift=12.5") == (
        "mfcc",
        "13",
        {"n_mels": 40, "frame_shift": 12.5},
    )
    assert parse_spec("hf:/m/wav,lm,layer=mean") == ("hf", "/m/wav,lm", {"layer": "mean"})
    assert parse_spec(f"{tiny_wav2vec2},layer=0") == ("hf", str(tiny_wav2vec2), {"layer": 0})


def test_bad_specs(tmp_path: Path) -> None:
    with pytest.raises(
        ErcgraphError,
        match="unknown audio encoder 'spectrogram'.*Known: fbank, hf, mfcc, opensmile",
    ):
        audio_encoder("spectrogram")
    with pytest.raises(ErcgraphError, match="unknown audio encoder 'spectrogram'.*Known: fbank"):
        audio_encoder("spectrogram:128")
    with pytest.raises(ErcgraphError, match="unknown feature set 'IS99'.*ComParE.*IS10.*eGeMAPS"):
        audio_encoder("opensmile:IS99")
    with pytest.raises(ErcgraphError, match="unknown argument 'bins' for audio encoder 'fbank'"):
        audio_encoder("fbank,bins=3")
    with pytest.raises(ErcgraphError, match="n_ceps \\(13\\) cannot exceed n_mels \\(10\\)"):
        audio_encoder("mfcc:13,n_mels=10")
    with pytest.raises(ErcgraphError, match="n_mels must be a positive integer"):
        audio_encoder("fbank:many")
    missing = tmp_path / "no_such_model"
    for spec in (f"hf:{missing}", str(missing), "./missing_model", "models/wav2vec2"):
        with pytest.raises(ErcgraphError, match="model path .* does not exist"):
            audio_encoder(spec)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ErcgraphError, match="could not load audio encoder"):
        audio_encoder(str(tmp_path / "empty"))


PLUGIN = textwrap.dedent('''
    """A user's audio encoder: signal length and peak."""
    import torch

    from ercgraph.encoders.audio import AudioEncoder


    class PeakEncoder(AudioEncoder):
        name = "peak"
        dim = 2

        def forward(self, signal):
            return torch.stack([torch.tensor(float(signal.numel())), signal.abs().max()])

        def settings(self):
            return {"encoder": self.name}
''')


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The plug-in as an importable module with a unique name; removed afterwards."""
    name = f"ercgraph_audio_plugin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_registry_and_plugins(emodb: list[Path], plugin_module: str) -> None:
    assert {"fbank", "mfcc", "opensmile", "hf"} <= set(AUDIO_ENCODERS.names())
    enc = audio_encoder(f"{plugin_module}:PeakEncoder")
    assert isinstance(enc, AudioEncoder) and repr(enc) == "PeakEncoder()"
    x, ok, _ = encode_files(enc, [(emodb[0], 0.0, 1.0)], progress=False)
    assert ok.all() and x[0, 0] == 16000
    with pytest.raises(ErcgraphError, match="takes no ':' argument"):
        type(enc).from_spec("3")
    with pytest.raises(
        ErcgraphError, match=f"module '{plugin_module}' has no audio encoder named 'Nope'"
    ):
        audio_encoder(f"{plugin_module}:Nope")


def test_encode_files_skips_bad_clips(
    tmp_path: Path, emodb: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    truncated = write_truncated_wav(tmp_path / "cut.wav")
    no_audio = write_mp4(tmp_path / "mute.mp4", freq=None)
    video = write_mp4(tmp_path / "talk.mp4", freq=300.0)
    items = [
        (emodb[0], None, None),
        (tmp_path / "missing.wav", None, None),
        (truncated, None, None),
        (emodb[1], 0.2, 1.2),
        (no_audio, None, None),
        (emodb[2], 1.0, 1.01),  # 10 ms: too short for one 25 ms frame
        (str(video), float("nan"), float("nan")),  # NaN start/end (pandas) = whole clip
    ]
    with caplog.at_level(logging.WARNING, logger="ercgraph.encoders.audio"):
        x, ok, errors = encode_files("fbank:40", items, progress=False)
    assert ok.tolist() == [True, False, False, True, False, False, True]
    assert x.shape == (7, 80)
    assert (x[~ok] == 0).all() and (x[ok].abs().sum(1) > 0).all()
    assert [i for i, _, _ in errors] == [1, 2, 4, 5]
    assert errors[0][1] == str(tmp_path / "missing.wav") and "does not exist" in errors[0][2]
    assert "truncated" in errors[1][2] and "no audio" in errors[2][2]
    assert "too short" in errors[3][2]
    for _, path, _ in errors:
        assert any(path in r.getMessage() for r in caplog.records)
    signal, sr = read_audio(emodb[1], 0.2, 1.2)
    assert torch.equal(x[3], audio_encoder("fbank:40").encode(signal, sr))
