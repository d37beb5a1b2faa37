"""Checks shared by the context bodies' tests (``dagerc``, ``dialogue_transformer``): one
dialogue's outputs under edits of its utterances, and a short training run on the planted
previous-utterance signal of :func:`tests.models.test_models.toy_dialogue`."""

from __future__ import annotations

import torch
from torch_geometric.data import Batch

from tests.models.test_models import make, toy_batches, toy_dialogue


def one_dialogue(n: int = 6, seed: int = 0, audio: bool = False):
    return toy_dialogue(n, torch.Generator().manual_seed(seed), audio)


def outputs(model, *graphs) -> torch.Tensor:
    """The body's utterance representations of the graphs batched together (eval mode)."""
    model.eval()
    with torch.no_grad():
        return model.body(Batch.from_data_list(list(graphs))).utterance


def changed_rows(model, graph, edit) -> list[bool]:
    """Per utterance of ``graph``: does its output change when ``edit(copy)`` is applied?"""
    before = outputs(model, graph)
    other = graph.clone()
    edit(other)
    after = outputs(model, other)
    return [not torch.allclose(a, b, atol=1e-6) for a, b in zip(before, after)]


def planted_accuracy(name: str, epochs: int = 25, **kw) -> float:
    """Test accuracy after training ``name`` on dialogues whose label is the sign of the
    previous utterance's feature 0 (chance: 0.5; a context-free model stays near it)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: one thread is fastest and steady on a busy host
    try:
        train, test = toy_batches(128, 1), toy_batches(64, 2)
        torch.manual_seed(0)
        model = make(name, train[0], **kw)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(epochs):
            for b in train:
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model.train()(b).logits, b.y).backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            hits = [(model(b).logits.argmax(1) == b.y).float() for b in test]
        return torch.cat(hits).mean().item()
    finally:
        torch.set_num_threads(threads)
