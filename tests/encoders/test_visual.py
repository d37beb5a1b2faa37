"""Frame sampling, face cropping, VisualEncoder and encode_clips on synthetic videos.

Models are tiny, randomly initialised ViT and CLIP models saved into temporary folders; nothing is
downloaded. The installed OpenCV may lack the Haar cascade (OpenCV 5 dropped it), and a cascade
would not fire on synthetic frames anyway, so detectors are replaced by fakes that return known
boxes; the cropping, fallback and bookkeeping around them are real.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from ercgraph.encoders import visual
from ercgraph.encoders.visual import (
    FaceCropper,
    VisualEncoder,
    crop_faces,
    encode_clips,
    faces,
    pool_frames,
    sample_frames,
)
from ercgraph.errors import ErcgraphError

from .video_fixtures import (
    frame_index,
    make_frame,
    write_audio_only,
    write_corrupt_video,
    write_garbage,
    write_video,
)

pytest.importorskip("av", reason="PyAV is an optional dependency (ercgraph[media])")
cv2 = pytest.importorskip("cv2", reason="OpenCV is an optional dependency (ercgraph[media])")

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    text = root / "notes.mp4"
    text.write_text("this is not a video\n" * 20, encoding="utf-8")
    a = write_video(root / "a.mp4", variant=0)
    return {
        "a": a,
        "corrupt": write_corrupt_video(root / "corrupt.mp4", a),
        "b": write_video(root / "b.mp4", variant=1, size=(96, 96)),
        "audio": write_audio_only(root / "audio_only.mp4"),
        "garbage": write_garbage(root / "garbage.mp4"),
        "text": text,
    }


def _save_processor(processor: object, folder: Path) -> Path:
    processor.save_pretrained(folder)  # type: ignore[attr-defined]
    return folder


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder = tmp_path_factory.mktemp("models") / "vit"
    torch.manual_seed(0)
    ViTModel(ViTConfig(image_size=32, patch_size=8, **TINY)).save_pretrained(folder)
    return _save_processor(ViTImageProcessor(size={"height": 32, "width": 32}), folder)


def _clip_processor() -> object:
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


@pytest.fixture(scope="module")
def tiny_clip_vision(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    folder = tmp_path_factory.mktemp("models") / "clip_vision"
    torch.manual_seed(1)
    CLIPVisionModel(CLIPVisionConfig(image_size=32, patch_size=8, **TINY)).save_pretrained(folder)
    return _save_processor(_clip_processor(), folder)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full CLIP (text and vision towers) whose projection (16) differs from its width (32)."""
    from transformers import CLIPConfig, CLIPModel

    folder = tmp_path_factory.mktemp("models") / "clip"
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=64,
            max_position_embeddings=16,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            **{**TINY, "num_hidden_layers": 1},
        ),
        vision_config=dict(image_size=32, patch_size=8, **TINY),
        projection_dim=16,
    )
    torch.manual_seed(2)
    CLIPModel(cfg).save_pretrained(folder)
    return _save_processor(_clip_processor(), folder)


class FakeCascade:
    """Stands in for cv2.CascadeClassifier; returns ``FakeCascade.found`` for every frame."""

    found: list[list[int]] = []
    loaded: list[str] = []
    calls = 0

    def __init__(self, xml: str) -> None:
        FakeCascade.loaded.append(xml)

    def empty(self) -> bool:
        return False

    def detectMultiScale(self, gray: np.ndarray, **kwargs: object) -> np.ndarray:  # noqa: N802
        assert gray.ndim == 2 and gray.dtype == np.uint8
        FakeCascade.calls += 1
        return np.array(FakeCascade.found, dtype=np.int32).reshape(-1, 4)


@pytest.fixture
def fake_haar(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> type[FakeCascade]:
    """OpenCV's bundled cascade replaced by FakeCascade (the XML file is a stub)."""
    folder = tmp_path / "cascades"
    folder.mkdir()
    (folder / visual.HAAR_FILE).write_text("<opencv_storage/>", encoding="utf-8")
    monkeypatch.setattr(cv2.data, "haarcascades", str(folder) + "/")
    monkeypatch.setattr(cv2, "CascadeClassifier", FakeCascade, raising=False)
    monkeypatch.setattr(faces, "_CASCADES", {})
    monkeypatch.setattr(FakeCascade, "found", [])
    monkeypatch.setattr(FakeCascade, "loaded", [])
    monkeypatch.setattr(FakeCascade, "calls", 0)
    return FakeCascade


def indices(path: Path, **kwargs: object) -> list[int]:
    return [frame_index(f) for f in sample_frames(path, **kwargs)]


# --- frame sampling --------------------------------------------------------------------------


def test_fixture_video_encodes_frame_indices(media: dict[str, Path]) -> None:
    frames = sample_frames(media["a"], fps=None)
    assert [frame_index(f) for f in frames] == list(range(20))
    assert all(f.shape == (64, 64, 3) and f.dtype == np.uint8 for f in frames)
    assert np.abs(frames[3].astype(int) - make_frame(3).astype(int)).mean() < 4
    assert sample_frames(media["b"], fps=1)[0].shape == (96, 96, 3)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"fps": 2}, [0, 5, 10, 15]),
        ({"fps": 5}, list(range(0, 20, 2))),
        ({"fps": 1}, [0, 10]),
        ({"fps": 100}, list(range(20))),  # faster than the video: each frame once
        ({"fps": 10, "max_frames": 4}, [0, 5, 10, 15]),  # spread over the clip, not its first 4
        ({"fps": None, "max_frames": 32}, list(range(20))),
        ({"fps": 2, "max_frames": 3}, [0, 6, 13]),  # at 0, 0.67, 1.33 s
    ],
)
def test_sampling_rate(media: dict[str, Path], kwargs: dict, expected: list[int]) -> None:
    assert indices(media["a"], **kwargs) == expected


@pytest.mark.parametrize(
    ("start", "end", "fps", "expected"),
    [
        (0.5, 1.5, 2, [5, 10]),  # end is exclusive
        (0.5, 1.51, 2, [5, 10, 15]),
        (1.0, None, 2, [10, 15]),  # after a seek to the keyframe before 1.0 s
        (0.55, 1.55, 4, [5, 8, 10, 13]),  # the frame on screen at 0.55, 0.8, 1.05, 1.3 s
        (0.57, 0.58, 2, [5]),  # a window inside one frame still gets that frame
        (1.93, None, 2, [19]),
        (0.0, 0.05, 30, [0]),
        (float("nan"), float("nan"), 1, [0, 10]),  # NaN times from a DataFrame mean "not given"
    ],
)
def test_window(
    media: dict[str, Path], start: float, end: float | None, fps: float, expected: list[int]
) -> None:
    assert indices(media["a"], start=start, end=end, fps=fps) == expected


def test_sampling_errors_name_the_file(media: dict[str, Path], tmp_path: Path) -> None:
    cases = {
        tmp_path / "missing.mp4": "does not exist",
        tmp_path: "is not a file",
        media["audio"]: "has no video stream",
        media["garbage"]: "cannot be opened as a video",
        media["text"]: "cannot be opened as a video",
        media["corrupt"]: "cannot decode the video stream",
    }
    for path, message in cases.items():
        with pytest.raises(ErcgraphError, match=message) as err:
            sample_frames(path)
        assert str(path) in str(err.value)
    with pytest.raises(ErcgraphError, match=r"a\.mp4.*no video frame in the window \[2\.5, end\)"):
        sample_frames(media["a"], start=2.5)
    with pytest.raises(ErcgraphError, match="no video frame"):
        sample_frames(media["a"], start=2.0, end=3.0)
    with pytest.raises(ErcgraphError, match="end .* must be after its start"):
        sample_frames(media["a"], start=1.0, end=1.0)
    with pytest.raises(ErcgraphError, match="start must be a finite time"):
        sample_frames(media["a"], start=-1)
    with pytest.raises(ErcgraphError, match="end must be a number"):
        sample_frames(media["a"], end="soon")
    with pytest.raises(ErcgraphError, match="fps must be"):
        sample_frames(media["a"], fps=0)
    with pytest.raises(ErcgraphError, match="max_frames"):
        sample_frames(media["a"], max_frames=0)


# --- faces -----------------------------------------------------------------------------------


def test_no_face_keeps_whole_frame(fake_haar: type[FakeCascade], media: dict[str, Path]) -> None:
    frames = sample_frames(media["b"], fps=2)
    crops, found = crop_faces(frames)
    assert found == [False] * 4
    assert all(c is f for c, f in zip(crops, frames))
    assert fake_haar.calls == 4


def test_largest_face_is_cropped_with_margin(
    fake_haar: type[FakeCascade], media: dict[str, Path]
) -> None:
    fake_haar.found = [[10, 20, 30, 30], [60, 60, 26, 26]]  # the first is larger
    frames = sample_frames(media["b"], fps=2)
    cropper = FaceCropper(margin=0.2)
    crops, found = cropper(frames)
    assert found == [True] * 4
    for crop, frame in zip(crops, frames):
        assert crop.shape == (42, 42, 3)  # 30 px + 6 px each side
        assert np.array_equal(crop, frame[14:56, 4:46])
    # a box at the border is clipped to the frame; a box smaller than the minimum is ignored
    fake_haar.found = [[80, 0, 30, 30]]
    crop, ok = cropper.crop(frames[0])
    assert ok and crop.shape == (36, 22, 3)  # rows 0..36, columns 74..96
    fake_haar.found = [[5, 5, 10, 10]]
    assert cropper.crop(frames[0]) == (frames[0], False)
    # the cascade file was loaded once, from OpenCV's data folder
    assert fake_haar.loaded == [str(Path(cv2.data.haarcascades) / visual.HAAR_FILE)]


def test_missing_haar_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(faces, "_CASCADES", {})
    monkeypatch.delattr(cv2, "CascadeClassifier", raising=False)
    with pytest.raises(ErcgraphError, match="no Haar cascade detector.*opencv-python-headless<5"):
        FaceCropper().load()
    monkeypatch.setattr(cv2, "CascadeClassifier", FakeCascade, raising=False)
    monkeypatch.setattr(cv2.data, "haarcascades", str(tmp_path) + "/")
    with pytest.raises(ErcgraphError, match="haarcascade_frontalface_default.xml.* does not exist"):
        FaceCropper().load()
    with pytest.raises(ErcgraphError, match="detector must be"):
        FaceCropper("dlib")
    with pytest.raises(ErcgraphError, match="margin"):
        FaceCropper(margin=-1)


def test_yunet_detector(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, media: dict[str, Path]
) -> None:
    with pytest.raises(ErcgraphError, match="YuNet model .*missing.onnx.* does not exist"):
        FaceCropper(tmp_path / "missing.onnx").load()
    bogus = write_garbage(tmp_path / "bogus.onnx", size=64)
    with pytest.raises(ErcgraphError, match="cannot load YuNet model .*bogus.onnx"):
        FaceCropper(bogus).load()

    class FakeYuNet:
        sizes: list[tuple[int, int]] = []

        @staticmethod
        def create(model: str, config: str, size: tuple[int, int], score: float) -> FakeYuNet:
            assert model == str(bogus.resolve()) and score == 0.6
            return FakeYuNet()

        def setInputSize(self, size: tuple[int, int]) -> None:  # noqa: N802
            FakeYuNet.sizes.append(size)

        def detect(self, bgr: np.ndarray) -> tuple[int, np.ndarray]:
            row = [-4.0, 50.0, 40.0, 40.0] + [0.0] * 10 + [0.9]  # x, y, w, h, landmarks, score
            return 1, np.array([row], dtype=np.float32)

    monkeypatch.setattr(cv2, "FaceDetectorYN", FakeYuNet)
    frame = sample_frames(media["b"], fps=1)[0]
    crop, found = FaceCropper(bogus, margin=0.0).crop(frame)
    assert found and crop.shape == (40, 36, 3)  # columns clipped at 0, rows 50..90
    assert FakeYuNet.sizes == [(96, 96)]


# --- pooling ---------------------------------------------------------------------------------


def test_pool_frames() -> None:
    same = torch.tensor([[1.0, 2.0, 3.0]]).repeat(4, 1)
    for pooling in ("mean", "attention"):
        assert torch.allclose(pool_frames(same, pooling), same[0])
    # one outlier frame, whose large norm pulls the mean towards it
    x = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.9, 0.0], [-1.0, 3.0]])
    mean, att = pool_frames(x, "mean"), pool_frames(x, "attention")
    assert torch.allclose(mean, x.mean(0))
    inliers = x[:3].mean(0)
    assert (att - inliers).norm() < 0.5 * (mean - inliers).norm()
    with pytest.raises(ErcgraphError, match="pooling"):
        pool_frames(x, "max")
    with pytest.raises(ErcgraphError, match="cannot pool"):
        pool_frames(torch.empty(0, 2))


# --- the encoder -----------------------------------------------------------------------------


def test_vit_encoder(tiny_vit: Path, media: dict[str, Path]) -> None:
    enc = VisualEncoder(tiny_vit, fps=2, face=False, batch_size=3, device="cpu")
    assert enc.dim == 32 and enc.features == "pooler"  # ViTModel saved with its pooler
    a, info_a = enc.encode_clip(media["a"])
    b, info_b = enc.encode_clip(media["b"])
    assert a.shape == (32,) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert info_a == {"frames": 4, "faces": 0} and info_b == {"frames": 4, "faces": 0}
    assert not torch.allclose(a, b, atol=1e-3)
    assert torch.equal(enc.encode_clip(media["a"])[0], a)  # deterministic
    part, info = enc.encode_clip(media["a"], start=0.5, end=1.5)
    assert info["frames"] == 2 and not torch.allclose(part, a, atol=1e-4)
    # the vector is the mean of the frames' pooler outputs, whatever the batch size
    frames = sample_frames(media["a"], fps=2)
    assert torch.allclose(enc.embed_images(frames).mean(0), a, atol=1e-5)
    assert torch.allclose(
        VisualEncoder(tiny_vit, face=False, batch_size=32).encode_clip(media["a"])[0], a, atol=1e-5
    )


def test_features_and_pooling_options(tiny_vit: Path, media: dict[str, Path]) -> None:
    out = {}
    for features in ("pooler", "cls", "mean"):
        enc = VisualEncoder(tiny_vit, face=False, features=features)
        assert enc.features == features and enc.dim == 32
        out[features] = enc.encode_clip(media["a"])[0]
    assert not torch.allclose(out["pooler"], out["cls"])
    assert not torch.allclose(out["cls"], out["mean"])
    att = VisualEncoder(tiny_vit, face=False, pooling="attention").encode_clip(media["a"])[0]
    assert torch.isfinite(att).all() and not torch.allclose(att, out["pooler"], atol=1e-6)
    with pytest.raises(ErcgraphError, match="no image projection"):
        VisualEncoder(tiny_vit, face=False, features="projection")
    for bad in (
        {"pooling": "max"},
        {"features": "avg"},
        {"fps": 0},
        {"max_frames": 0},
        {"batch_size": 0},
    ):
        with pytest.raises(ErcgraphError, match="visual encoder: "):
            VisualEncoder(tiny_vit, face=False, **bad)


def test_vit_without_pooler_weights_uses_cls(tmp_path: Path, media: dict[str, Path]) -> None:
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder = tmp_path / "vit_no_pooler"
    ViTModel(
        ViTConfig(image_size=32, patch_size=8, **TINY), add_pooling_layer=False
    ).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    enc = VisualEncoder(folder, face=False)
    assert enc.features == "cls"  # not a randomly initialised pooler
    assert "features='cls'" in repr(enc)
    vec, _ = enc.encode_clip(media["a"])
    frames = sample_frames(media["a"], fps=2)
    pixels = enc.processor(images=frames, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        cls = enc.model(pixel_values=pixels).last_hidden_state[:, 0].mean(0)
    assert torch.allclose(vec, cls, atol=1e-5)


def test_clip_vision_tower(tiny_clip_vision: Path, media: dict[str, Path]) -> None:
    enc = VisualEncoder(tiny_clip_vision, face=False)
    assert enc.model_type == "clip_vision_model" and enc.features == "pooler" and enc.dim == 32
    a, _ = enc.encode_clip(media["a"])
    b, _ = enc.encode_clip(media["b"])
    assert torch.isfinite(a).all() and not torch.allclose(a, b, atol=1e-3)


def test_full_clip_gives_image_features(tiny_clip: Path, media: dict[str, Path]) -> None:
    from transformers import CLIPModel

    enc = VisualEncoder(tiny_clip, face=False, fps=1)
    assert enc.model_type == "clip" and enc.features == "projection" and enc.dim == 16
    assert not hasattr(enc.model, "text_model")  # the text tower is not loaded
    vec, info = enc.encode_clip(media["b"])
    frames = sample_frames(media["b"], fps=1)
    pixels = enc.processor(images=frames, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        ref = CLIPModel.from_pretrained(tiny_clip).get_image_features(pixel_values=pixels)
    ref = ref if torch.is_tensor(ref) else ref.pooler_output
    assert info == {"frames": 2, "faces": 0}
    assert torch.allclose(vec, ref.mean(0), atol=1e-5)
    cls = VisualEncoder(tiny_clip, face=False, features="cls")  # the vision tower's tokens
    assert cls.dim == 32 and not hasattr(cls.model, "text_model")
    with pytest.raises(ErcgraphError, match="returns no pooler_output"):
        VisualEncoder(tiny_clip, face=False, features="pooler")


def test_face_crops_feed_the_model(
    tiny_vit: Path, fake_haar: type[FakeCascade], media: dict[str, Path]
) -> None:
    whole = VisualEncoder(tiny_vit, fps=2)
    vec_whole, info = whole.encode_clip(media["b"])
    assert info == {"frames": 4, "faces": 0}  # fallback: no face, whole frames
    assert torch.allclose(
        vec_whole, VisualEncoder(tiny_vit, face=False).encode_clip(media["b"])[0], atol=1e-6
    )
    fake_haar.found = [[10, 20, 30, 30]]
    vec_face, info = whole.encode_clip(media["b"])
    assert info == {"frames": 4, "faces": 4}
    crops = [f[14:56, 4:46] for f in sample_frames(media["b"], fps=2)]
    assert torch.allclose(vec_face, whole.embed_images(crops).mean(0), atol=1e-5)
    assert not torch.allclose(vec_face, vec_whole, atol=1e-4)
    assert len(fake_haar.loaded) == 1  # loaded once for all frames and clips


def test_bad_model_paths(tmp_path: Path, tiny_vit: Path) -> None:
    missing = tmp_path / "no_such_model"
    with pytest.raises(ErcgraphError, match=f"model path '{missing}' does not exist"):
        VisualEncoder(missing, face=False)
    not_dir = write_garbage(tmp_path / "weights.bin")
    with pytest.raises(ErcgraphError, match="is not a folder"):
        VisualEncoder(not_dir, face=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ErcgraphError, match="could not load visual encoder .*empty"):
        VisualEncoder(tmp_path / "empty", face=False)
    no_proc = tmp_path / "no_processor"
    no_proc.mkdir()
    (no_proc / "config.json").write_bytes((tiny_vit / "config.json").read_bytes())
    with pytest.raises(ErcgraphError, match="image processor .*no_processor"):
        VisualEncoder(no_proc, face=False)


def test_face_detector_checked_at_construction(
    tiny_vit: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faces, "_CASCADES", {})
    monkeypatch.delattr(cv2, "CascadeClassifier", raising=False)
    with pytest.raises(ErcgraphError, match="no Haar cascade detector"):
        VisualEncoder(tiny_vit)
    VisualEncoder(tiny_vit, face=False)  # fine without a detector


def test_settings_and_repr(tiny_vit: Path, tiny_clip: Path, fake_haar: type[FakeCascade]) -> None:
    enc = VisualEncoder(tiny_vit, fps=2, max_frames=8, face_margin=0.3, batch_size=4, device="cpu")
    s = enc.settings()
    json.dumps(s)
    assert s["encoder"] == str(tiny_vit.resolve()) and s["dim"] == 32
    assert s["features"] == "pooler" and s["pooling"] == "mean"
    assert (s["fps"], s["max_frames"], s["face"], s["face_detector"], s["face_margin"]) == (
        2.0,
        8,
        True,
        "haar",
        0.3,
    )
    assert s["opencv"] == cv2.__version__ and "batch_size" not in s
    other = VisualEncoder(tiny_vit, fps=1, max_frames=8, face_margin=0.3)
    assert other.settings() != s
    assert other.settings()["encoder_fingerprint"] == s["encoder_fingerprint"]
    assert (
        VisualEncoder(tiny_clip, face=False).settings()["encoder_fingerprint"]
        != s["encoder_fingerprint"]
    )
    assert VisualEncoder(tiny_vit, face=False).settings()["face"] is False
    assert repr(enc) == (
        f"VisualEncoder({str(tiny_vit.resolve())!r}, pooling='mean', fps=2.0, "
        f"max_frames=8, face=True, face_detector='haar', face_margin=0.3, "
        f"features='pooler', batch_size=4, device='cpu')"
    )


def test_encode_clips_skips_bad_clips(
    tiny_vit: Path,
    media: dict[str, Path],
    tmp_path: Path,
    fake_haar: type[FakeCascade],
    caplog: pytest.LogCaptureFixture,
) -> None:
    enc = VisualEncoder(tiny_vit, fps=2)
    missing = tmp_path / "gone.mp4"
    items = [
        (media["a"], None, None),
        (missing, None, None),
        (media["garbage"], 0.0, 1.0),
        (str(media["b"]), 0.5, float("nan")),
        (None, None, None),
        (media["audio"], None, None),
        (media["a"], 3.0, 4.0),
    ]
    with caplog.at_level(logging.WARNING, logger="ercgraph.encoders.visual"):
        x, ok, face_rate, errors = encode_clips(enc, items, progress=False)
    assert x.shape == (7, 32) and ok.tolist() == [True, False, False, True, False, False, False]
    assert torch.allclose(x[0], enc.encode_clip(media["a"])[0])
    assert torch.allclose(x[3], enc.encode_clip(media["b"], start=0.5)[0])
    assert (x[~ok] == 0).all() and torch.isfinite(x).all()
    assert face_rate.tolist() == [0.0] * 7
    assert [e[0] for e in errors] == [1, 2, 4, 5, 6]
    assert errors[0][1] == str(missing) and "does not exist" in errors[0][2]
    assert "cannot be opened" in errors[1][2] and errors[2][2] == "no video path"
    assert "no video stream" in errors[3][2] and "no video frame" in errors[4][2]
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(logged) == 5 and str(missing) in logged[0] and str(media["garbage"]) in logged[1]
    # with a face found in every frame of the good clips
    fake_haar.found = [[10, 20, 30, 30]]
    _, ok2, face_rate, _ = encode_clips(enc, items[:4], progress=False)
    assert ok2.tolist() == [True, False, False, True]
    assert face_rate.tolist() == [1.0, 0.0, 0.0, 1.0]
    empty = encode_clips(enc, [], progress=False)
    assert empty[0].shape == (0, 32) and empty[3] == []


# --- settings from the config (features.visual) ------------------------------------------------


def _extract(media: dict[str, Path], cache: Path, **settings: object):
    import pandas as pd

    from ercgraph.config import VisualFeatureConfig
    from ercgraph.data.corpus import Corpus
    from ercgraph.encoders.media_extract import extract_media_features

    df = pd.DataFrame(
        {
            "split": "train",
            "dialogue_id": "d1",
            "turn": [0, 1],
            "speaker": ["a", "b"],
            "label": ["x", "y"],
            "video_path": [str(media["a"]), str(media["b"])],
        }
    )
    cfg = VisualFeatureConfig(**{"fps": 2.0, "workers": 1, **settings})  # type: ignore[arg-type]
    return extract_media_features(Corpus(df, "clips", ("x", "y")), "visual", cfg, cache, False)


def test_visual_config_reaches_the_encoder(tiny_vit: Path, fake_haar: type[FakeCascade]) -> None:
    from ercgraph.config import VisualFeatureConfig
    from ercgraph.encoders.media_extract import build_encoder

    cfg = VisualFeatureConfig(
        encoder=str(tiny_vit),
        pooling="attention",
        face_margin=0.5,
        features="cls",
        batch_size=3,
        device="cpu",
    )
    enc = build_encoder("visual", cfg)
    assert (enc.pooling, enc.cropper.margin, enc.features, enc.batch_size) == (
        "attention",
        0.5,
        "cls",
        3,
    )
    assert str(enc.device) == "cpu" and enc.cropper.detector == "haar"
    assert VisualFeatureConfig().device == "cpu"  # the default stays on the CPU


def test_visual_settings_change_the_features(
    tiny_vit: Path,
    fake_haar: type[FakeCascade],
    media: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_haar.found = [[10, 20, 30, 30]]
    enc = str(tiny_vit)
    base, info = _extract(media, tmp_path / "c", encoder=enc)
    assert info["face_rate"] == 1.0 and info["clips_without_face"] == 0
    x = base.features["visual"]
    for setting in ({"pooling": "attention"}, {"face_margin": 0.6}, {"features": "mean"}):
        other, _ = _extract(media, tmp_path / "c", encoder=enc, **setting)
        assert not torch.allclose(other.features["visual"], x, atol=1e-4), setting
    # another detector file is loaded and used (here the fake finds nothing in it)
    xml = tmp_path / "other.xml"
    xml.write_text("<opencv_storage/>", encoding="utf-8")
    monkeypatch.setattr(
        FakeCascade,
        "detectMultiScale",
        lambda self, gray, **kw: (
            np.zeros((0, 4), np.int32)
            if self is faces._CASCADES.get(str(xml.resolve()))
            else np.array(FakeCascade.found, np.int32)
        ),
    )
    other, info = _extract(media, tmp_path / "c", encoder=enc, face_detector=str(xml))
    assert FakeCascade.loaded[-1] == str(xml.resolve())
    assert info["face_rate"] == 0.0 and info["clips_without_face"] == 2
    assert not torch.allclose(other.features["visual"], x, atol=1e-4)
    # the batch size changes the number of forward passes, not the features
    passes: list[int] = []
    real = visual.ImageEncoder._forward
    monkeypatch.setattr(
        visual.ImageEncoder, "_forward", lambda self, px: passes.append(len(px)) or real(self, px)
    )
    one, _ = _extract(media, tmp_path / "c1", encoder=enc, batch_size=1)
    assert passes == [1] + [1] * 8  # a probe image at load time, then one frame per pass
    assert torch.allclose(one.features["visual"], x, atol=1e-5)
    passes.clear()
    _extract(media, tmp_path / "c2", encoder=enc, batch_size=32)
    assert passes == [1, 4, 4]  # four frames per clip in one pass


def test_bad_visual_settings_name_their_key(tiny_vit: Path, tmp_path: Path) -> None:
    from ercgraph.config import VisualFeatureConfig
    from ercgraph.encoders.media_extract import build_encoder

    bad = [
        ({"pooling": "max"}, "features.visual.pooling must be one of ['mean', 'attention']"),
        ({"features": "avg"}, "features.visual.features must be one of"),
        ({"batch_size": 0}, "features.visual.batch_size must be >= 1"),
        ({"face_margin": 3.0}, "features.visual.face_margin must be in [0, 2]"),
        ({"device": "gpu"}, "features.visual.device must be cpu, cuda, cuda:N, mps or auto"),
        ({"face_detector": str(tmp_path / "gone.xml")}, "gone.xml' does not exist"),
    ]
    if not torch.cuda.is_available():
        bad.append(({"device": "cuda"}, "features.visual.device is 'cuda', but CUDA is not"))
    for settings, fragment in bad:
        cfg = VisualFeatureConfig(encoder=str(tiny_vit), **settings)  # type: ignore[arg-type]
        with pytest.raises(ErcgraphError) as exc:
            build_encoder("visual", cfg)
        assert fragment in str(exc.value), (settings, str(exc.value))
