"""The corpus presets run from the CLI: on the real data where it is here (RAVDESS, MELD
three-class, a DailyDialog slice), on tiny fixtures in the documented layout where it is not
(EmoryNLP, EmoDB)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from tests.cli_helpers import cli

REPO = Path(__file__).resolve().parents[1]


def _train(config: str, root: Path, tmp: Path, *sets: str) -> dict:
    out = tmp / "run"
    args = ["train", "-c", str(REPO / "configs" / config), "--data-root", str(root)]
    args += ["--cache-dir", str(tmp / "cache"), "--out", str(out)]
    for s in ("train.epochs=1", "model.hidden=16", *sets):
        args += ["--set", s]
    assert cli(*args) == 0
    return json.loads((out / "metrics.json").read_text())


def test_ravdess_preset_runs_six_actor_folds_on_the_real_features(tmp_path, data_root):
    m = _train("ravdess.yaml", data_root, tmp_path)
    assert m["folds"] == 6 and m["folds_done"] == list(range(6))
    assert m["labels"] == [
        "angry",
        "calm",
        "disgust",
        "fearful",
        "happy",
        "neutral",
        "sad",
        "surprised",
    ]
    folds = json.loads((tmp_path / "run" / "folds.json").read_text())["folds"]
    assert folds[0]["test"]["groups"] == ["1", "2", "3", "4"]
    assert folds[0]["dev"]["groups"] == ["5", "6", "7", "8"]
    assert all(f["test"]["utterances"] == 240 for f in folds)  # 60 clips per actor
    model = json.loads((tmp_path / "run" / "fold_0" / "model.json").read_text())
    assert model["in_dims"] == {"audio": 259, "visual": 35}
    assert m["headline"] == "accuracy" and "unweighted_accuracy" in m["test"]


def test_meld_three_class_preset_reads_sentiment_as_the_label(tmp_path, meld_slice):
    m = _train("meld_3class.yaml", meld_slice, tmp_path)
    assert m["labels"] == ["neutral", "positive", "negative"]


def test_emorynlp_preset_on_a_fixture_in_its_layout(tmp_path):
    root = tmp_path / "data"
    (root / "emorynlp").mkdir(parents=True)
    emotions = ["Joyful", "Mad", "Neutral", "Peaceful", "Powerful", "Sad", "Scared"]
    for split, n_scenes in (("train", 4), ("dev", 2), ("test", 2)):
        rows = []
        for scene in range(n_scenes):
            for u in range(4):
                rows.append(
                    {
                        "Utterance": f"line {u} of scene {scene} in {split}",
                        "Speaker": str(["['Monica Geller']", "['Joey Tribbiani']"][u % 2]),
                        "Emotion": emotions[(scene * 4 + u) % 7],
                        "Scene_ID": scene + 1,
                        "Utterance_ID": u + 1,
                        "Season": 1,
                        "Episode": {"train": 1, "dev": 2, "test": 3}[split],
                    }
                )
        pd.DataFrame(rows).to_csv(root / "emorynlp" / f"emorynlp_{split}_final.csv", index=False)
    m = _train("emorynlp.yaml", root, tmp_path)
    assert m["labels"] == emotions
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "| split | weighted_f1 |" in summary


def test_dailydialog_preset_reads_the_shared_table_and_leads_with_micro_f1(tmp_path, data_root):
    # a slice of the real table: the first dialogues of each split, in the shared layout
    df = pd.read_csv(data_root / "dailydialog" / "dailydialog.csv")
    keep = [
        d for s in ("train", "dev", "test") for d in df.loc[df.split == s, "dialogue"].unique()[:12]
    ]
    root = tmp_path / "data"
    (root / "dailydialog").mkdir(parents=True)
    df[df["dialogue"].isin(keep)].to_csv(root / "dailydialog" / "dailydialog.csv", index=False)
    m = _train("dailydialog.yaml", root, tmp_path)
    assert m["labels"] == [
        "no_emotion",
        "anger",
        "disgust",
        "fear",
        "happiness",
        "sadness",
        "surprise",
    ]
    assert m["headline"] == "micro_f1" and m["select_metric"] == "micro_f1"
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "| split | micro_f1 |" in summary
    # micro F1 without no_emotion is not the accuracy (no_emotion is most of the test split)
    assert m["test"]["micro_f1"]["mean"] != m["test"]["accuracy"]["mean"]
    # the probe beside the run scores the same headline metric
    assert "micro_f1" in m["baselines"]["probe"]["test"]


def test_emodb_preset_leaves_one_speaker_out_on_a_fixture_in_its_layout(tmp_path):
    import soundfile as sf

    root = tmp_path / "data"
    (root / "emodb" / "wav").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for speaker in ("03", "08", "09"):
        for i, emotion in enumerate(["anger", "neutral", "anger", "neutral"]):
            name = f"{speaker}a0{i}{'WN'[i % 2]}a.wav"
            freq = 300.0 if emotion == "anger" else 120.0
            t = np.arange(8000) / 16000
            wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.normal(size=t.size)
            sf.write(root / "emodb" / "wav" / name, wave.astype(np.float32), 16000)
            rows.append({"file": f"wav/{name}", "emotion": emotion, "speaker": speaker})
    pd.DataFrame(rows).to_csv(root / "emodb" / "labels.csv", index=False)
    m = _train("emodb_loso.yaml", root, tmp_path, "features.audio.encoder=fbank:16")
    assert m["folds"] == 3 and m["group"] == "speaker"
    folds = json.loads((tmp_path / "run" / "folds.json").read_text())["folds"]
    assert [f["test"]["groups"] for f in folds] == [["03"], ["08"], ["09"]]
    assert m["headline"] == "unweighted_accuracy"
