"""The dialogue transformer body: shapes, the causal option, speakers, padding, and context."""

import pytest
import torch
from torch_geometric.data import Batch

from ercgraph.errors import ErcgraphError
from ercgraph.models.transformer import DialogueTransformer
from tests.models.context_helpers import changed_rows, one_dialogue, outputs, planted_accuracy
from tests.models.test_models import make

CAUSAL = {"options": {"causal": True}}


def edit_third(g):
    g["text"].x[3] += 1.0


def test_shapes_with_two_modalities_and_a_wide_fusion():
    batch = Batch.from_data_list([one_dialogue(5, audio=True), one_dialogue(3, 1, audio=True)])
    torch.manual_seed(0)
    model = make("dialogue_transformer", batch, fusion="concat", options={"layers": 3})
    assert isinstance(model.body, DialogueTransformer) and "layers=3" in repr(model.body)
    out = model(batch)
    assert out.utterance.shape == (8, 2 * 32) and out.logits.shape == (8, 2)
    missing = ~batch["audio"].present_mask
    assert missing.any() and not out.nodes["audio"][missing].any()
    assert torch.isfinite(out.utterance).all()


def test_without_the_causal_option_every_utterance_reads_the_whole_dialogue():
    graph = one_dialogue(6)
    torch.manual_seed(0)
    model = make("dialogue_transformer", Batch.from_data_list([graph]))
    assert all(changed_rows(model, graph, edit_third))


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_the_causal_option_hides_later_utterances(positions):
    graph = one_dialogue(6)
    torch.manual_seed(0)
    options = {"causal": True, "positions": positions}
    model = make("dialogue_transformer", Batch.from_data_list([graph]), options=options)
    assert changed_rows(model, graph, edit_third) == [False, False, False, True, True, True]


def test_the_speaker_of_one_utterance_reaches_the_others():
    graph = one_dialogue(6)
    torch.manual_seed(0)
    model = make("dialogue_transformer", Batch.from_data_list([graph]), **CAUSAL)

    def edit(g):
        g.speaker = torch.tensor([0, 1, 0, 2, 1, 0])  # utterance 3 gets a new speaker

    assert changed_rows(model, graph, edit) == [False, False, False, True, True, True]


@pytest.mark.parametrize("kw", [{}, CAUSAL, {"options": {"positions": "learned"}}])
def test_outputs_do_not_depend_on_the_other_dialogues_of_the_batch(kw):
    short, long = one_dialogue(3, seed=1), one_dialogue(9, seed=2)
    torch.manual_seed(0)
    model = make("dialogue_transformer", Batch.from_data_list([short]), **kw)
    alone = outputs(model, short)
    assert torch.allclose(alone, outputs(model, short, long)[:3], atol=1e-5)
    assert torch.allclose(alone, outputs(model, long, short)[9:], atol=1e-5)


def test_a_one_utterance_dialogue_is_finite_in_training_and_in_eval():
    batch = Batch.from_data_list([one_dialogue(1), one_dialogue(1, seed=1)])
    torch.manual_seed(0)
    model = make("dialogue_transformer", batch, **CAUSAL)
    out = model.train()(batch)
    out.logits.sum().backward()
    assert torch.isfinite(out.logits).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert torch.isfinite(outputs(model, one_dialogue(1))).all()


def test_the_input_hook_replaces_the_projected_inputs():
    batch = Batch.from_data_list([one_dialogue(4)])
    torch.manual_seed(0)
    model = make("dialogue_transformer", batch).eval()
    masked = torch.tensor([False, False, False, True])

    def hook(h, present):
        return {m: torch.where(masked[:, None], 0.0, v) for m, v in h.items()}, {"text": masked}

    with torch.no_grad():
        plain = model.body(batch)
        hooked = model.body(batch, input_hook=hook)
    assert hooked.node_masks == {"text": masked}
    assert not torch.allclose(plain.utterance[0], hooked.utterance[0])  # attention reads 3


@pytest.mark.parametrize("kw", [{}, CAUSAL])
def test_the_transformer_learns_the_previous_utterance_signal_the_mlp_cannot(kw):
    acc = planted_accuracy("dialogue_transformer", **kw)
    mlp = planted_accuracy("mlp")
    assert acc > 0.85, acc
    assert acc > mlp + 0.2, (acc, mlp)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"heads": 5}, "hidden must be a positive multiple of heads"),
        ({"options": {"layers": 0}}, "options.layers must be an integer >= 1"),
        ({"options": {"causal": "yes"}}, "options.causal must be true or false"),
        ({"options": {"positions": "rotary"}}, "positions must be one of sinusoidal, learned"),
    ],
)
def test_bad_options_are_refused_naming_the_key(kw, match):
    batch = Batch.from_data_list([one_dialogue(3)])
    with pytest.raises(ErcgraphError, match=match):
        make("dialogue_transformer", batch, **kw)
