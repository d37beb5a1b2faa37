"""Audio features for a whole corpus from raw MELD-layout clips: summary, masking, resume."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.cli_helpers import cli
from tests.encoders.media_fixtures import write_mp4

REPO = Path(__file__).parents[2]


@pytest.fixture()
def raw_meld(tmp_path, data_root):
    """Two dialogues per split of the real CSVs, with synthetic clips in the MELD.Raw layout;
    one clip is missing and one is garbage."""
    root = tmp_path / "data"
    (root / "meld").mkdir(parents=True)
    folders = {
        "train": "train_splits",
        "dev": "dev_splits_complete",
        "test": "output_repeated_splits_test",
    }
    rows = []
    for split, folder in folders.items():
        df = pd.read_csv(data_root / "meld" / f"{split}_sent_emo.csv")
        df = df[df["Dialogue_ID"].isin(sorted(df["Dialogue_ID"].unique())[:2])]
        df.to_csv(root / "meld" / f"{split}_sent_emo.csv", index=False)
        (root / "MELD.Raw" / folder).mkdir(parents=True)
        for i, (d, u) in enumerate(zip(df["Dialogue_ID"], df["Utterance_ID"])):
            rows.append((split, d, u))
            path = root / "MELD.Raw" / folder / f"dia{d}_utt{u}.mp4"
            write_mp4(path, freq=200.0 + 40 * i, seconds=0.4)
    # one missing clip and one corrupt clip in train
    _, d, u = rows[0]
    (root / "MELD.Raw" / "train_splits" / f"dia{d}_utt{u}.mp4").unlink()
    _, d, u = rows[1]
    (root / "MELD.Raw" / "train_splits" / f"dia{d}_utt{u}.mp4").write_bytes(b"not a video")
    return root, len(rows)


def args(root, cache, *extra):
    return [
        "extract",
        "-c",
        str(REPO / "configs/meld_text.yaml"),
        "--data-root",
        str(root),
        "--cache-dir",
        str(cache),
        "--modality",
        "audio",
        "--encoder",
        "fbank:16",
        "--set",
        "data.options={clips: MELD.Raw}",
        "--set",
        "features.audio.source=video_path",
        "--set",
        "features.audio.chunk_size=4",
        *extra,
    ]


def test_extract_audio_reports_failures_and_masks_them(raw_meld, tmp_path, capsys):
    root, n = raw_meld
    assert cli(*args(root, tmp_path / "c", "--set", "features.audio.workers=2")) == 0
    out = capsys.readouterr()
    assert f"audio: {n} utterances, dim 32; {n - 2} done, 2 failed, 0 reused" in out.out
    assert "not a video" not in out.err  # reasons come from the decoder, paths are named
    assert out.err.count("failed: row") == 2 and "dia" in out.err
    assert cli(*args(root, tmp_path / "c")) == 0
    assert f"0 done, 2 failed, {n - 2} reused" in capsys.readouterr().out


def test_interrupted_extraction_resumes_from_finished_chunks(
    raw_meld, tmp_path, monkeypatch, capsys
):
    import ercgraph.encoders.media_extract as mx

    root, n = raw_meld
    real, calls = mx._encode_chunk, {"n": 0}

    def dies_after_two(*a, **k):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(mx, "_encode_chunk", dies_after_two)
    # Ctrl-C in the middle: the CLI aborts with status 130
    assert cli(*args(root, tmp_path / "c", "--set", "features.audio.workers=1")) == 130
    monkeypatch.setattr(mx, "_encode_chunk", real)
    capsys.readouterr()
    assert cli(*args(root, tmp_path / "c", "--set", "features.audio.workers=1")) == 0
    # the first two chunks (8 rows, holding both bad clips) come from the interrupted run
    assert f"{n - 8} done, 2 failed, 6 reused" in capsys.readouterr().out


def test_train_text_and_audio_with_missing_clips_masked(raw_meld, tmp_path):
    root, _ = raw_meld
    out = tmp_path / "run"
    code = cli(
        "train",
        "-c",
        str(REPO / "configs/meld_text.yaml"),
        "--data-root",
        str(root),
        "--cache-dir",
        str(tmp_path / "c"),
        "--out",
        str(out),
        "--set",
        "data.options={clips: MELD.Raw}",
        "--set",
        "features.modalities=[text, audio]",
        "--set",
        "features.audio={encoder: 'fbank:16', source: video_path}",
        "--set",
        "graph.builders=[temporal, speaker, modality]",
        "--set",
        "train.epochs=1",
        "--set",
        "model.hidden=16",
    )
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert "text|cross_modal|audio" in m["edge_types"]
    info = json.loads((out / "features.json").read_text())
    assert info["audio"]["failed"] == 2


def test_unset_encoder_and_missing_column_are_clear(raw_meld, tmp_path, capsys):
    root, _ = raw_meld
    code = cli(
        "extract",
        "-c",
        str(REPO / "configs/meld_text.yaml"),
        "--data-root",
        str(root),
        "--cache-dir",
        str(tmp_path / "c"),
        "--modality",
        "visual",
    )
    err = capsys.readouterr().err
    assert code == 2 and "features.visual" in err
    code = cli(*args(root, tmp_path / "c", "--set", "features.audio.source=clip"))
    err = capsys.readouterr().err
    assert code == 2 and "'clip'" in err and "features.audio.source" in err
    assert torch.get_num_threads() >= 1


def test_three_modalities_from_raw_clips(raw_meld, tmp_path):
    """Text + audio (fbank from the clip's audio track) + visual (tiny ViT on sampled frames,
    Haar face crop with whole-frame fallback) trained end to end."""
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    vit = tmp_path / "vit"
    ViTModel(
        ViTConfig(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=37,
        )
    ).save_pretrained(vit)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(vit)
    root, _ = raw_meld
    out = tmp_path / "run"
    code = cli(
        "train",
        "-c",
        str(REPO / "configs/meld_text.yaml"),
        "--data-root",
        str(root),
        "--cache-dir",
        str(tmp_path / "c"),
        "--out",
        str(out),
        "--set",
        "data.options={clips: MELD.Raw}",
        "--set",
        "features.modalities=[text, audio, visual]",
        "--set",
        "features.audio={encoder: 'fbank:16', source: video_path}",
        "--set",
        f"features.visual={{encoder: '{vit}', fps: 4, max_frames: 2}}",
        "--set",
        "graph.builders=[temporal, speaker, modality]",
        "--set",
        "train.epochs=1",
        "--set",
        "model.hidden=16",
    )
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert {"text|cross_modal|visual", "audio|cross_modal|visual"} <= set(m["edge_types"])
    info = json.loads((out / "features.json").read_text())
    assert info["visual"]["failed"] == 2 and info["audio"]["failed"] == 2


def test_force_encodes_everything_again(raw_meld, tmp_path, capsys):
    root, n = raw_meld
    assert cli(*args(root, tmp_path / "c", "--set", "features.audio.workers=1")) == 0
    capsys.readouterr()
    assert cli(*args(root, tmp_path / "c", "--set", "features.audio.workers=1", "--force")) == 0
    assert f"{n - 2} done, 2 failed, 0 reused" in capsys.readouterr().out
    # text too: the cached features are not reused
    base = ["extract", "-c", str(REPO / "configs/meld_text.yaml"), "--data-root", str(root)]
    base += ["--cache-dir", str(tmp_path / "c")]
    assert cli(*base) == 0 and cli(*base) == 0
    assert f"0 done, 0 failed, {n} reused" in capsys.readouterr().out
    assert cli(*base, "--force") == 0
    assert f"{n} done, 0 failed, 0 reused" in capsys.readouterr().out
