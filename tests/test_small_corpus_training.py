"""Training settings for small corpora: ``train.min_steps`` and ``model.linear_skip``."""

from __future__ import annotations

import json

import pytest
import torch

from ercgraph.config import ModelConfig
from ercgraph.graphs.build import build_graph_set
from ercgraph.models import build_model
from ercgraph.train import TrainLoader
from tests.cli_helpers import cli, train_args
from tests.components import toy_corpus, toy_setup, toy_store


class Order:
    """A sampler whose every pass is a new permutation from its own generator."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.gen = n, torch.Generator().manual_seed(seed)

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=self.gen).tolist())


def graph_set():
    corpus = toy_corpus(n_dialogues=10)
    return build_graph_set(corpus, toy_store(corpus), [{"name": "temporal"}])


def dialogues_of(loader) -> list[list[str]]:
    return [list(b.dialogue_id) for b, _ in loader]


@pytest.mark.parametrize("min_steps, passes", [(0, 1), (3, 1), (4, 2), (7, 3)])
def test_an_epoch_makes_whole_passes_until_min_steps(min_steps, passes):
    gset = graph_set()  # 10 dialogues: 3 batches of 4 per pass
    loader = TrainLoader(gset, Order(len(gset)), batch_size=4, min_steps=min_steps)
    epoch = dialogues_of(loader)
    assert len(epoch) == 3 * passes
    for k in range(passes):  # each pass covers every dialogue once, no batch straddles two
        seen = [d for batch in epoch[3 * k : 3 * k + 3] for d in batch]
        assert sorted(seen) == sorted(g.dialogue_id for g in gset)
    if passes > 1:  # a new order each pass
        assert epoch[:3] != epoch[3:6]


def test_min_steps_leaves_a_long_enough_epoch_untouched():
    gset = graph_set()
    a = dialogues_of(TrainLoader(gset, Order(len(gset)), batch_size=4))
    b = dialogues_of(TrainLoader(gset, Order(len(gset)), batch_size=4, min_steps=3))
    assert a == b


def test_linear_skip_adds_a_linear_map_of_the_inputs_to_the_logits():
    net, batch, states = toy_setup(heads=["emotion", "regression"])
    torch.manual_seed(0)
    skip = build_model(
        ModelConfig(hidden=16, dropout=0.0, linear_skip=True),
        {"text": 8, "audio": 5},
        list(batch.edge_types),
        ["joy", "anger", "neutral"],
        ["emotion", "regression"],
        states,
    ).eval()
    assert "skip" not in dict(net.heads["emotion"].named_children())
    head = skip.heads["emotion"]
    assert head.skip.in_features == 13 and head.skip.out_features == 3
    with torch.no_grad():
        out = skip(batch)
        x = torch.cat(
            [batch["text"].x, batch["audio"].x * batch["audio"].present_mask[:, None].float()], 1
        )
        mlp = head.classifier(out.utterance)
        assert torch.allclose(out.logits, mlp + head.skip(x), atol=1e-6)
        reg = skip.heads["regression"]
        z = reg.regressor(out.utterance) + reg.skip(x)
        assert torch.allclose(out.aux["regression"], z * reg.std + reg.mean, atol=1e-5)


def test_min_steps_trains_more_steps_per_epoch_from_the_cli(tmp_path, meld_slice, cache):
    out = tmp_path / "run"
    args = train_args(out, meld_slice, cache, "--set", "train.min_steps=5")
    assert cli(*args, "--set", "model.linear_skip=true", "--set", "train.baselines=[]") == 0
    # 30 training dialogues in batches of 16 make 2 steps; min_steps 5 makes 3 passes (6 steps)
    result = json.loads((out / "seed_0" / "result.json").read_text())
    assert [h["steps"] for h in result["history"]] == [6]
    saved = (out / "config.yaml").read_text()
    assert "min_steps: 5" in saved and "linear_skip: true" in saved
    assert cli(*train_args(tmp_path / "bad", meld_slice, cache, "--set", "train.min_steps=-1")) == 2


def test_a_run_saved_before_min_steps_resumes_as_it_began(tmp_path, meld_slice, cache):
    out = tmp_path / "old"
    args = train_args(out, meld_slice, cache, "--set", "train.min_steps=0")
    assert cli(*args, "--set", "train.baselines=[]") == 0
    text = (out / "config.yaml").read_text()
    assert "  min_steps: 0\n" in text
    (out / "config.yaml").write_text(text.replace("  min_steps: 0\n", ""))  # as saved before
    resume = ["train", "--resume", "--out", str(out), "--data-root", str(meld_slice)]
    assert cli(*resume, "--cache-dir", str(cache), "--set", "train.epochs=2") == 0
    history = json.loads((out / "seed_0" / "result.json").read_text())["history"]
    assert [h["steps"] for h in history] == [2, 2]  # one pass an epoch, as it began
    assert "  min_steps: 0\n" in (out / "config.yaml").read_text()


def test_the_default_takes_min_steps_on_a_small_corpus(tmp_path, meld_slice, cache):
    out = tmp_path / "new"
    assert cli(*train_args(out, meld_slice, cache, "--set", "train.baselines=[]")) == 0
    history = json.loads((out / "seed_0" / "result.json").read_text())["history"]
    assert [h["steps"] for h in history] == [50]  # 2 batches a pass, 25 passes
