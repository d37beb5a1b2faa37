"""Fixtures for encoder tests (offline mode, tiny models, a toy corpus)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ercgraph.data.corpus import Corpus

from .helpers import make_corpus, make_tiny_bert


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "tiny_bert")


@pytest.fixture(scope="session")
def tiny_bert_other(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "tiny_bert_other", seed=1)


@pytest.fixture
def toy_corpus() -> Corpus:
    return make_corpus(
        [
            ("train", "d1", 0, "alice", "pos", "hi good movie"),
            ("train", "d1", 1, "bob", "neg", "bad"),
            ("train", "d1", 2, "alice", "pos", "really great"),
            ("train", "d2", 0, "carol", "neg", "awful sad"),
            ("train", "d2", 1, "dave", "pos", ""),
            ("dev", "d3", 0, "alice", "pos", "ok"),
            ("test", "d4", 0, "bob", "neg", "hate the movie"),
        ]
    )


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run fastest on one thread (no sync overhead); restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
