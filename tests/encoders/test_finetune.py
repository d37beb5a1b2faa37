"""Fine-tuning the text encoder on the train split, selected on dev."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import ercgraph.encoders.extract as extract_mod
import ercgraph.encoders.finetune as finetune_mod
from ercgraph.config import FinetuneConfig, LossConfig, TextFeatureConfig
from ercgraph.encoders import TextEncoder, extract_text_features, finetune_text_encoder
from ercgraph.errors import ErcgraphError

from .helpers import make_corpus, sentiment_corpus

FT = FinetuneConfig(
    enabled=True,
    epochs=4,
    lr=1e-2,
    batch_size=8,
    context_turns=1,
    max_length=32,
    weight_decay=0.01,
    seed=0,
    layer_decay=1.0,
    loss=[LossConfig("ce")],
)


class _Forbidden:
    def __init__(self, *args, **kwargs) -> None:
        raise AssertionError("no model may be built when the fine-tuned encoder is reused")


def _train_accuracy(model_dir: Path, corpus, ft: FinetuneConfig) -> float:
    from safetensors.torch import load_file

    from ercgraph.encoders.text import build_inputs

    enc = TextEncoder(
        str(model_dir),
        max_length=ft.max_length,
        truncation_side="left",
        progress=False,
        device="cpu",
    )
    head = torch.nn.Linear(enc.dim, corpus.num_classes)
    head.load_state_dict(load_file(str(model_dir / "classifier_head.safetensors")))
    rows = np.flatnonzero(corpus.df["split"].to_numpy() == "train")
    texts = build_inputs(corpus, ft.context_turns, sep=enc.sep)
    with torch.no_grad():
        pred = head(enc.encode([texts[i] for i in rows])).argmax(-1).numpy()
    return float((pred == corpus.label_ids()[rows]).mean())


@pytest.fixture(scope="module")
def finetuned(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ft") / "model"
    return finetune_text_encoder(sentiment_corpus(), str(tiny_bert), FT, out, progress=False)


def test_finetuning_learns_and_reports(finetuned: Path, tiny_bert: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    report = json.loads((finetuned / "finetune.json").read_text())
    scores = [e["dev_weighted_f1"] for e in report["epochs"]]
    assert len(scores) == FT.epochs
    assert report["best_epoch"] == int(np.argmax(scores)) + 1
    assert report["best_dev_weighted_f1"] == max(scores)
    assert report["settings"]["finetune"]["lr"] == FT.lr
    assert report["selection"] == "dev weighted F1"
    assert max(scores) >= 0.9
    corpus = sentiment_corpus()
    assert _train_accuracy(finetuned, corpus, FT) >= 0.9
    # the untrained encoder with the same seeded head is no better than chance-ish
    model = AutoModel.from_pretrained(str(finetuned))
    AutoTokenizer.from_pretrained(str(finetuned))
    base = AutoModel.from_pretrained(str(tiny_bert))
    assert model.config.hidden_size == 32
    w, w0 = model.state_dict(), base.state_dict()
    assert any(not torch.equal(w[k], w0[k]) for k in w0)
    # nothing left behind by the atomic write
    assert [p.name for p in finetuned.parent.iterdir()] == [finetuned.name]


def test_finetuning_is_reused(
    finetuned: Path,
    tiny_bert: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = (finetuned / "finetune.json").stat().st_mtime_ns
    monkeypatch.setattr(finetune_mod, "TextEncoder", _Forbidden)
    with caplog.at_level("INFO", logger="ercgraph.encoders.finetune"):
        out = finetune_text_encoder(
            sentiment_corpus(), str(tiny_bert), FT, finetuned, progress=False
        )
    assert out == finetuned
    assert (finetuned / "finetune.json").stat().st_mtime_ns == before
    assert "reusing fine-tuned text encoder" in caplog.text
    # a corrupt weights file is not reused: it is fine-tuned again (atomically, in place)
    monkeypatch.setattr(finetune_mod, "TextEncoder", TextEncoder)
    (finetuned / "model.safetensors").write_bytes(b"garbage")
    with caplog.at_level("WARNING", logger="ercgraph.encoders.finetune"):
        finetune_text_encoder(sentiment_corpus(), str(tiny_bert), FT, finetuned, progress=False)
    assert "is corrupt" in caplog.text and "fine-tuning it again" in caplog.text
    from transformers import AutoModel

    AutoModel.from_pretrained(str(finetuned))  # whole again
    # a different setting is a different encoder: retrained in place, atomically
    monkeypatch.setattr(finetune_mod, "TextEncoder", TextEncoder)
    ft2 = dataclasses.replace(FT, epochs=1)
    finetune_text_encoder(sentiment_corpus(), str(tiny_bert), ft2, finetuned, progress=False)
    report = json.loads((finetuned / "finetune.json").read_text())
    assert len(report["epochs"]) == 1 and report["settings"]["finetune"]["epochs"] == 1
    assert [p.name for p in finetuned.parent.iterdir()] == [finetuned.name]


def test_finetuning_is_deterministic_and_ignores_test_labels(
    tiny_bert: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    ft = dataclasses.replace(FT, epochs=1)
    a = finetune_text_encoder(
        sentiment_corpus(), str(tiny_bert), ft, tmp_path / "a", progress=False
    )
    b = finetune_text_encoder(
        sentiment_corpus(flip_test=True), str(tiny_bert), ft, tmp_path / "b", progress=False
    )
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ra = json.loads((a / "finetune.json").read_text())
    rb = json.loads((b / "finetune.json").read_text())
    assert ra["epochs"] == rb["epochs"]
    # the test split is not part of what the fine-tuned encoder depends on
    assert ra["settings"] == rb["settings"]


def test_finetuning_needs_train_labels(tiny_bert: Path, tmp_path: Path) -> None:
    corpus = make_corpus(
        [("dev", "d1", 0, "a", "pos", "good"), ("test", "d2", 0, "b", "neg", "bad")]
    )
    with pytest.raises(ErcgraphError, match="'train' split"):
        finetune_text_encoder(corpus, str(tiny_bert), FT, tmp_path / "x", progress=False)
    with pytest.raises(ErcgraphError, match="epochs"):
        finetune_text_encoder(
            sentiment_corpus(), str(tiny_bert), dataclasses.replace(FT, epochs=0), tmp_path / "x"
        )
    with pytest.raises(ErcgraphError, match="does not exist"):
        finetune_text_encoder(sentiment_corpus(), str(tmp_path / "nope"), FT, tmp_path / "x")


def test_extract_with_finetuning(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = sentiment_corpus()
    ft = dataclasses.replace(FT, epochs=1)
    cfg = TextFeatureConfig(
        encoder=str(tiny_bert), context_turns=0, max_length=128, batch_size=16, finetune=ft
    )
    store, info = extract_text_features(corpus, cfg, tmp_path, progress=False)
    path = Path(info["finetuned_path"])
    assert path.parent == (tmp_path / "finetuned").resolve()
    assert (path / "finetune.json").is_file() and info["finetune_seconds"] > 0
    m = store.manifest["text"]
    assert m["encoder"] == str(path) and m["finetune"] == finetune_mod.finetune_key(
        ft, with_enabled=True
    )
    # extraction uses the fine-tuning's input shape, not features.text.context_turns
    assert m["context_turns"] == ft.context_turns and m["max_length"] == ft.max_length
    assert store.features["text"].shape == (corpus.num_utterances, 32)
    assert info["reused"] is False
    monkeypatch.setattr(extract_mod, "TextEncoder", _Forbidden)
    monkeypatch.setattr(finetune_mod, "TextEncoder", _Forbidden)
    again, info2 = extract_text_features(corpus, cfg, tmp_path, progress=False)
    assert info2["reused"] is True and info2["finetuned_path"] == str(path)
    assert torch.equal(again.features["text"], store.features["text"])


def test_regression_finetuning_learns_the_dimensions_and_selects_on_dev_ccc(
    tiny_bert: Path, tmp_path: Path
) -> None:
    """``finetune.targets``: an unlabelled dimensional corpus (EmoBank-like) fine-tunes with the
    CCC loss; the valence the words carry is learnt, and dev mean CCC picks the epoch."""
    from safetensors.torch import load_file

    from ercgraph.data.corpus import Corpus
    from ercgraph.encoders.text import build_inputs
    from ercgraph.metrics import ccc

    corpus = sentiment_corpus()
    df = corpus.df.copy()
    df["valence"] = np.where(df["label"] == "pos", 4.0, 2.0) + 0.1 * (df["turn"] % 2)
    df["arousal"] = np.nan  # an all-missing column is skipped, not NaN
    df.loc[df["split"] == "train", "arousal"] = 3.0 + 0.5 * (df["turn"] % 3)
    df["label"] = None
    unlabelled = Corpus(df, "toy", ())  # no emotion vocabulary, as EmoBank
    ft = dataclasses.replace(FT, epochs=8, targets=["valence", "arousal"])
    out = finetune_text_encoder(unlabelled, str(tiny_bert), ft, tmp_path / "m", progress=False)
    report = json.loads((out / "finetune.json").read_text())
    scores = [e["dev_ccc"] for e in report["epochs"]]
    assert report["selection"] == "dev mean CCC"
    assert report["targets"] == ["valence", "arousal"]
    train = df["split"] == "train"
    assert report["target_mean"][0] == pytest.approx(df.loc[train, "valence"].mean())
    assert (
        report["best_dev_ccc"] == max(scores)
        and report["best_epoch"] == scores.index(max(scores)) + 1
    )
    assert max(scores) > 0.8
    # the saved head regresses the standardised columns: its valence tracks the truth on train
    enc = TextEncoder(str(out), max_length=ft.max_length, truncation_side="left", progress=False)
    head = torch.nn.Linear(enc.dim, 2)
    head.load_state_dict(load_file(str(out / "classifier_head.safetensors")))
    rows = np.flatnonzero(df["split"].to_numpy() == "train")
    texts = build_inputs(unlabelled, ft.context_turns, sep=enc.sep)
    with torch.no_grad():
        pred = head(enc.encode([texts[i] for i in rows])).numpy()
    truth = df["valence"].to_numpy()[rows]
    assert np.corrcoef(pred[:, 0], truth)[0, 1] > 0.8
    assert ccc(pred[:, 0], (truth - truth.mean()) / truth.std()) > 0.7
    with pytest.raises(ErcgraphError, match=r"no column\(s\) \['dominance'\]"):
        finetune_text_encoder(
            unlabelled,
            str(tiny_bert),
            dataclasses.replace(FT, targets=["valence", "dominance"]),
            tmp_path / "x",
            progress=False,
        )
    # the labelled path refuses the same unlabelled corpus, naming what it needs
    with pytest.raises(ErcgraphError, match="labelled rows in .* set features.text.finetune.t"):
        finetune_text_encoder(unlabelled, str(tiny_bert), FT, tmp_path / "y", progress=False)
    # a column with no training values, or a value that is not a number, is refused by name
    empty = df.assign(dominance=np.nan)
    with pytest.raises(ErcgraphError, match="'dominance' has fewer than 2 values on the 'train'"):
        finetune_text_encoder(
            Corpus(empty, "toy", ()),
            str(tiny_bert),
            dataclasses.replace(FT, targets=["valence", "dominance"]),
            tmp_path / "z",
            progress=False,
        )
    text = df.astype({"valence": object})
    text.loc[3, "valence"] = "3,5"
    with pytest.raises(ErcgraphError, match=r"row 3, column 'valence': expected a number.*'3,5'"):
        finetune_text_encoder(
            Corpus(text, "toy", ()), str(tiny_bert), ft, tmp_path / "w", progress=False
        )


def test_context_recipe_with_loss_terms_learns_and_records(tiny_bert: Path, tmp_path: Path) -> None:
    ft = dataclasses.replace(
        FT,
        epochs=3,
        future_turns=1,
        pool="target",
        schedule="cosine",
        layer_decay=0.8,
        loss=[
            LossConfig("ce", 1.0, {"label_smoothing": 0.1}),
            LossConfig("rdrop", 0.5),
            LossConfig("supcon", 0.1, {"temperature": 0.2}),
        ],
    )
    out = finetune_text_encoder(sentiment_corpus(), str(tiny_bert), ft, tmp_path / "m")
    report = json.loads((out / "finetune.json").read_text())
    assert report["best_dev_weighted_f1"] >= 0.8  # two classes: chance is 0.5
    assert set(report["epochs"][0]["train_terms"]) == {"ce", "rdrop", "supcon"}
    assert report["inputs"]["context_cut"] == 0 and report["inputs"]["inputs"] == 64
    settings = report["settings"]["finetune"]
    assert settings["pool"] == "target" and settings["layer_decay"] == 0.8
    # the default recipe's key leaves the later keys out (encoders cached before stay valid)
    assert "pool" not in finetune_mod.finetune_key(FT)
    # features are extracted as the encoder was trained: future turn and target pooling
    cfg = TextFeatureConfig(encoder=str(tiny_bert), finetune=ft)
    store, info = extract_text_features(sentiment_corpus(), cfg, tmp_path / "c", progress=False)
    m = store.manifest["text"]
    assert m["pool"] == "target" and m["future_turns"] == 1 and m["layout"] == "turn_by_turn"


def test_layer_wise_learning_rates(tiny_bert: Path) -> None:
    enc = TextEncoder(str(tiny_bert), progress=False, device="cpu")
    head = torch.nn.Linear(enc.dim, 2)
    ft = dataclasses.replace(FT, layer_decay=0.5, lr=1.0)
    groups = finetune_mod.param_groups(enc.model, head, ft)
    by_id = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(enc.model.named_parameters())
    assert by_id[id(named["embeddings.word_embeddings.weight"])] == 0.5**3
    assert by_id[id(named["encoder.layer.0.attention.self.query.weight"])] == 0.5**2
    assert by_id[id(named["encoder.layer.1.output.dense.weight"])] == 0.5
    assert by_id[id(head.weight)] == 1.0
    # weight decay only on matrices
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert decay[id(head.bias)] == 0.0 and decay[id(head.weight)] == FT.weight_decay
    assert sum(len(g["params"]) for g in groups) == len(named) + 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pool": "first"}, "pool must be one of"),
        ({"future_turns": -1}, "future_turns must be >= 0"),
        ({"schedule": "step"}, "schedule must be one of"),
        ({"layer_decay": 0.0}, "layer_decay must be > 0"),
        ({"warmup_fraction": 1.0}, "warmup_fraction must be >= 0 and < 1"),
    ],
)
def test_bad_recipe_is_refused_naming_the_key(change: dict, message: str) -> None:
    from ercgraph.config import load_config

    sets = [f"features.text.finetune.{k}={v}" for k, v in {"enabled": True, **change}.items()]
    with pytest.raises(ErcgraphError, match=message):
        load_config(None, sets)
