"""Dialogue context around a target utterance: layout, truncation that keeps the target, cut
counts, target-span pooling."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from ercgraph.encoders import TextEncoder
from ercgraph.encoders.context import build_encoder_inputs
from ercgraph.errors import ErcgraphError

from .helpers import make_corpus


def _enc(tiny_bert: Path, max_length: int = 64) -> TextEncoder:
    return TextEncoder(
        str(tiny_bert), max_length=max_length, truncation_side="left", progress=False, device="cpu"
    )


def _decode(enc: TextEncoder, ids: list[int]) -> str:
    return enc.tokenizer.decode(ids)


def test_past_and_future_turns_around_the_target(tiny_bert: Path, toy_corpus) -> None:
    enc = _enc(tiny_bert)
    inp = build_encoder_inputs(toy_corpus, enc, context_turns=1, future_turns=1, pool="target")
    # d1 turn 1 (bob): alice before, alice after; context never crosses dialogues
    text = _decode(enc, inp.ids[1])
    assert text == "[CLS] alice : hi good movie [SEP] bob : bad [SEP] alice : really great [SEP]"
    a, b = inp.spans[1]
    assert _decode(enc, inp.ids[1][a:b]) == "bob : bad"
    # first turn of d2: no past; last turn: no future
    assert _decode(enc, inp.ids[3]).startswith("[CLS] carol : awful sad [SEP] dave :")
    assert _decode(enc, inp.ids[4]) == "[CLS] carol : awful sad [SEP] dave : [SEP]"
    assert inp.context_cut == 0 and inp.target_cut == 0


def test_limit_drops_context_never_the_target(tiny_bert: Path, caplog) -> None:
    long = " ".join(["really"] * 20)
    corpus = make_corpus(
        [
            ("train", "d", 0, "a", "pos", long),
            ("train", "d", 1, "b", "neg", "bad movie"),
            ("train", "d", 2, "a", "pos", long),
            ("train", "d", 3, "b", "pos", "good"),
        ]
    )
    enc = _enc(tiny_bert, max_length=20)
    with caplog.at_level(logging.INFO, logger="ercgraph.encoders.context"):
        inp = build_encoder_inputs(corpus, enc, context_turns=2, future_turns=1, pool="target")
    assert all(len(x) <= 20 for x in inp.ids)
    # row 1: both long neighbours are dropped whole, the target stays whole
    assert _decode(enc, inp.ids[1]) == "[CLS] b : bad movie [SEP]"
    # row 3: the nearest past turn does not fit, so the older one is not used either
    assert _decode(enc, inp.ids[3]) == "[CLS] b : good [SEP]"
    assert inp.context_cut == 4 and inp.stats["context_cut"] == 4
    # a target longer than the limit alone loses its end, and is counted
    assert inp.target_cut == 2
    a, b = inp.spans[0]
    assert b - a == 18
    assert "cut the context of 4 of 4 inputs" in caplog.text
    assert "2 targets were longer than the limit" in caplog.text


def test_past_only_layout_counts_cuts(tiny_bert: Path, toy_corpus) -> None:
    enc = _enc(tiny_bert, max_length=14)
    inp = build_encoder_inputs(toy_corpus, enc, context_turns=2)
    assert inp.spans is None
    # the earlier string layout, truncated from the left: the target is at the end, whole
    assert _decode(enc, inp.ids[2]).endswith("[SEP] alice : really great [SEP]")
    assert inp.context_cut == 3 and inp.target_cut == 0
    # a target alone over the limit is counted
    short = build_encoder_inputs(toy_corpus, _enc(tiny_bert, max_length=6), context_turns=2)
    assert short.target_cut > 0


def test_target_pooling_ignores_context_tokens(tiny_bert: Path, toy_corpus) -> None:
    enc = _enc(tiny_bert)
    inp = build_encoder_inputs(toy_corpus, enc, context_turns=1, future_turns=1, pool="target")
    pooled = enc.encode_ids(inp.ids, inp.spans)
    everything = enc.encode_ids(inp.ids)
    assert pooled.shape == everything.shape == (toy_corpus.num_utterances, 32)
    # by hand: the mean of the target's token states
    batch = enc.collate([inp.ids[1]])
    with torch.no_grad():
        h = enc.model(**{k: v for k, v in batch.items() if k != "pool_mask"}).last_hidden_state
    a, b = inp.spans[1]
    torch.testing.assert_close(pooled[1], h[0, a:b].mean(0), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(pooled[1], everything[1])


def test_bad_window_is_refused(tiny_bert: Path, toy_corpus) -> None:
    enc = _enc(tiny_bert)
    with pytest.raises(ErcgraphError, match="future_turns must be >= 0"):
        build_encoder_inputs(toy_corpus, enc, context_turns=1, future_turns=-1)
    with pytest.raises(ErcgraphError, match="pool must be one of"):
        build_encoder_inputs(toy_corpus, enc, context_turns=1, pool="cls")


def test_a_run_extracts_new_data_with_its_fine_tuning_layout(tmp_path: Path) -> None:
    """predict/evaluate read new conversations the way the run's encoder was trained."""
    import json

    from ercgraph.config import load_config
    from ercgraph.rundir import ENCODER, FEATURES, feature_config

    cfg = load_config(
        None,
        [
            "features.text.finetune.enabled=true",
            "features.text.finetune.context_turns=2",
            "features.text.finetune.future_turns=1",
            "features.text.finetune.pool=target",
            "features.text.finetune.max_length=96",
        ],
    )
    (tmp_path / ENCODER).mkdir()
    (tmp_path / FEATURES).write_text(json.dumps({"text": {"encoder_files": {}}}))  # its hashes
    text = feature_config(cfg, tmp_path).features.text
    assert not text.finetune.enabled and text.encoder == str((tmp_path / ENCODER).resolve())
    assert (text.context_turns, text.future_turns, text.pool, text.max_length) == (
        2,
        1,
        "target",
        96,
    )
