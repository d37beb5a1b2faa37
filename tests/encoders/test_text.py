"""TextEncoder, model resolution and context inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ercgraph.encoders.text import (
    TextEncoder,
    build_inputs,
    default_text_model_path,
    encoder_fingerprint,
    resolve_model,
)
from ercgraph.errors import ErcgraphError

from .helpers import make_corpus

LONG = " ".join(["the movie was really good"] * 8)


def test_default_model_path_exists() -> None:
    path = default_text_model_path()
    assert (path / "config.json").is_file()
    assert any(path.glob("*.safetensors")) or any(path.glob("*.bin"))
    assert resolve_model("default") == str(path)


def test_default_minilm_encodes_offline() -> None:
    enc = TextEncoder("default", batch_size=2, progress=False, device="cpu")
    x = enc.encode(
        [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The stock market crashed today.",
        ]
    )
    assert x.shape == (3, 384) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    # the shipped sentence-transformers model ends in a Normalize module
    assert torch.allclose(x.norm(dim=1), torch.ones(3), atol=1e-4)
    cos = x @ x.T
    assert cos[0, 1] > 0.5 > cos[0, 2]
    assert cos[0, 1] > cos[1, 2]


def test_resolve_model(tiny_bert: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_model(str(tiny_bert)) == str(tiny_bert.resolve())
    monkeypatch.chdir(tiny_bert.parent)
    assert resolve_model(tiny_bert.name) == str(tiny_bert.resolve())
    assert (
        resolve_model("sentence-transformers/all-MiniLM-L6-v2")
        == "sentence-transformers/all-MiniLM-L6-v2"
    )
    for bad in ("/no/such/model", "./missing_model", "~/no/such/model", "a/b/c"):
        with pytest.raises(ErcgraphError, match="model path .* does not exist"):
            resolve_model(bad)


def test_nonexistent_or_broken_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ErcgraphError, match="does not exist"):
        TextEncoder(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ErcgraphError, match="could not load text encoder"):
        TextEncoder(str(tmp_path / "empty"))
    with pytest.raises(ErcgraphError, match="not available|could not load"):
        TextEncoder("nobody-has/this-model-xyz")


def test_bad_options(tiny_bert: Path) -> None:
    with pytest.raises(ErcgraphError, match="pooling"):
        TextEncoder(str(tiny_bert), pooling="max")
    with pytest.raises(ErcgraphError, match="truncation_side"):
        TextEncoder(str(tiny_bert), truncation_side="middle")


def test_mean_pooling_ignores_padding(tiny_bert: Path) -> None:
    enc = TextEncoder(str(tiny_bert), batch_size=8, progress=False, device="cpu")
    alone = enc.encode(["hi good movie"])
    padded = enc.encode([LONG, "hi good movie", "ok"])
    assert torch.allclose(alone[0], padded[1], atol=1e-5)
    # and the vector is not the same as with the padding counted in
    ids = enc.tokenize(["hi good movie"])[0]
    batch = enc.collate([ids + [enc.pad_id] * 10])
    batch["attention_mask"][:] = 1
    with torch.inference_mode():
        wrong = enc.forward_batch(batch)[0]
    assert not torch.allclose(alone[0], wrong, atol=1e-3)


def test_encode_keeps_input_order(tiny_bert: Path) -> None:
    texts = ["ok", LONG, "hi", "bad awful sad", "", "great"]
    enc = TextEncoder(str(tiny_bert), batch_size=2, progress=False, device="cpu")
    batched = enc.encode(texts)
    single = torch.cat([enc.encode([t]) for t in texts])
    assert batched.shape == (len(texts), 32)
    assert torch.allclose(batched, single, atol=1e-5)
    assert torch.isfinite(batched).all()  # the empty text is encoded too
    assert enc.encode([]).shape == (0, 32)


def test_cls_pooling_and_normalize(tiny_bert: Path) -> None:
    enc = TextEncoder(str(tiny_bert), pooling="cls", normalize=True, progress=False, device="cpu")
    x = enc.encode(["hi", "good movie"])
    assert torch.allclose(x.norm(dim=1), torch.ones(2), atol=1e-5)
    mean = TextEncoder(str(tiny_bert), progress=False, device="cpu")
    assert not mean.normalize  # a plain transformers folder: no Normalize module
    assert not torch.allclose(x, torch.nn.functional.normalize(mean.encode(["hi", "good movie"])))
    assert "pooling='cls'" in repr(enc)


def test_context_inputs_current_last_and_within_dialogue() -> None:
    corpus = make_corpus(
        [
            # given out of order: the Corpus sorts by split, dialogue and turn
            ("train", "d1", 2, "alice", "pos", "ok"),
            ("train", "d2", 0, "carol", "neg", "bad"),
            ("train", "d1", 0, "alice", "pos", "hi"),
            ("train", "d1", 1, "bob", "neg", "yo"),
            ("train", "d1", 3, "bob", "pos", "great"),
            ("train", "d2", 1, "dave", "neg", None),
            ("dev", "d3", 0, "eve", "pos", "alpha"),
        ]
    )
    assert build_inputs(corpus, 0) == ["hi", "yo", "ok", "great", "bad", "", "alpha"]
    assert build_inputs(corpus, 2, sep=" [SEP] ") == [
        "alice: hi",
        "alice: hi [SEP] bob: yo",
        "alice: hi [SEP] bob: yo [SEP] alice: ok",
        "bob: yo [SEP] alice: ok [SEP] bob: great",
        "carol: bad",
        "carol: bad [SEP] dave: ",
        "eve: alpha",
    ]
    assert build_inputs(corpus, 10)[3] == "alice: hi | bob: yo | alice: ok | bob: great"
    with pytest.raises(ErcgraphError, match="context_turns"):
        build_inputs(corpus, -1)


def test_text_column_required() -> None:
    corpus = make_corpus([("train", "d1", 0, "a", "pos", "hi")])
    corpus.df = corpus.df.drop(columns="text")
    with pytest.raises(ErcgraphError, match="'text' column"):
        build_inputs(corpus, 0)


def test_left_truncation_keeps_the_current_utterance(tiny_bert: Path) -> None:
    corpus = make_corpus(
        [
            ("train", "d1", 0, "alice", "pos", LONG),
            ("train", "d1", 1, "bob", "pos", "alpha beta gamma"),
        ]
    )
    left = TextEncoder(str(tiny_bert), max_length=16, truncation_side="left", progress=False)
    text = build_inputs(corpus, 1, sep=left.sep)[1]
    assert text.endswith("[SEP] bob: alpha beta gamma")
    ids = left.tokenize([text])[0]
    assert len(ids) == 16
    tokens = left.tokenizer.convert_ids_to_tokens(ids)
    assert tokens[0] == "[CLS]"
    assert tokens[-8:] == ["b", "##o", "##b", ":", "alpha", "beta", "gamma", "[SEP]"]
    right = TextEncoder(str(tiny_bert), max_length=16, truncation_side="right", progress=False)
    assert "gamma" not in right.tokenizer.convert_ids_to_tokens(right.tokenize([text])[0])


def test_encoder_fingerprint_tracks_content(
    tiny_bert: Path, tiny_bert_other: Path, tmp_path: Path
) -> None:
    import shutil

    fp = encoder_fingerprint(str(tiny_bert))
    assert fp == encoder_fingerprint(str(tiny_bert))
    assert fp != encoder_fingerprint(str(tiny_bert_other))
    copy = Path(shutil.copytree(tiny_bert, tmp_path / "copy"))
    assert encoder_fingerprint(str(copy)) == fp  # same content, other path and mtime
    (copy / "config.json").write_text((copy / "config.json").read_text().replace("gelu", "relu"))
    assert encoder_fingerprint(str(copy)) != fp


def test_hub_id_from_the_local_cache_offline(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--toy-org--tiny-bert"
    shutil.copytree(tiny_bert, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert resolve_model("toy-org/tiny-bert") == "toy-org/tiny-bert"
    hub = TextEncoder("toy-org/tiny-bert", progress=False, device="cpu")
    local = TextEncoder(str(tiny_bert), progress=False, device="cpu")
    assert torch.allclose(hub.encode(["hi good"]), local.encode(["hi good"]), atol=1e-6)
    fp = encoder_fingerprint("toy-org/tiny-bert")
    assert fp == encoder_fingerprint("toy-org/tiny-bert") != encoder_fingerprint(str(tiny_bert))
    with pytest.raises(ErcgraphError, match="toy-org/missing"):
        encoder_fingerprint("toy-org/missing")
