"""Memory-mapped feature stores: the same training as in-memory features, bit for bit, and a
cache file that is verified and never written to."""

from __future__ import annotations

import json

import pytest
import torch

from ercgraph.data.features import FeatureStore
from ercgraph.errors import ErcgraphError
from tests.cli_helpers import cli, train_args


def test_a_mapped_store_equals_the_saved_one_and_never_writes_back(tmp_path):
    x = torch.randn(1000, 7)
    present = torch.rand(1000) > 0.1
    FeatureStore({"text": x}, {"text": present}, {"text": {"encoder": "e"}}).save(
        tmp_path / "f.safetensors"
    )
    before = (tmp_path / "f.safetensors").read_bytes()
    store = FeatureStore.load(tmp_path / "f.safetensors", {"text": {"encoder": "e"}}, mmap=True)
    assert store.mapped and torch.equal(store.features["text"], x)
    assert torch.equal(store.present["text"], present)
    store.features["text"][0] = 123.0  # copy-on-write: the file keeps its bytes
    assert (tmp_path / "f.safetensors").read_bytes() == before
    assert FeatureStore.load(tmp_path / "f.safetensors", mmap=True).features["text"][0, 0] != 123
    # a flipped byte is caught by the streamed checksum, as without mmap
    bad = bytearray(before)
    bad[-5] ^= 0xFF
    (tmp_path / "f.safetensors").write_bytes(bytes(bad))
    with pytest.raises(ErcgraphError, match="corrupt or truncated"):
        FeatureStore.load(tmp_path / "f.safetensors", mmap=True)


def test_mapped_blockwise_normaliser_matches_in_memory_fit():
    from ercgraph.data.normalise import Standardiser

    x = torch.randn(300, 5) * 3 + 1
    rows = torch.arange(300) < 200
    eager = Standardiser.fit(FeatureStore({"a": x}), rows)
    mapped = FeatureStore({"a": x})
    mapped.mapped = True
    lazy = Standardiser.fit(mapped, rows)
    torch.testing.assert_close(lazy.mean["a"], eager.mean["a"])
    torch.testing.assert_close(lazy.std["a"], eager.std["a"])


def test_training_on_mapped_features_is_bit_identical(tmp_path, meld_slice, cache):
    fast = ["--set", "train.epochs=2", "--set", "model.hidden=32", "--set", "train.seeds=[0]"]

    def run(out: str, *extra: str) -> dict:
        assert cli(*train_args(tmp_path / out, meld_slice, cache, *fast, *extra)) == 0
        return json.loads((tmp_path / out / "seed_0/result.json").read_text())

    plain = run("plain")
    mapped = run("mapped", "--set", "features.mmap=true")
    assert mapped["test_probs"] == plain["test_probs"]
    assert [h["train_loss"] for h in mapped["history"]] == [
        h["train_loss"] for h in plain["history"]
    ]
