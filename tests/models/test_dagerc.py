"""The DAG-ERC body: its DAG, shapes, causality, speakers, padding, and that it learns context."""

import pytest
import torch
from torch_geometric.data import Batch

from ercgraph.errors import ErcgraphError
from ercgraph.models.dagerc import DAGERC, DAGLayer, dialogue_dag, run_dag
from tests.models.context_helpers import changed_rows, one_dialogue, outputs, planted_accuracy
from tests.models.test_models import make

SPEAKERS = torch.tensor([[0, 1, 0, 2, 1, 9]])  # A B A C B, then one padded position
VALID = torch.tensor([[True] * 5 + [False]])


def preds(adj: torch.Tensor) -> list[list[int]]:
    return [row.nonzero().view(-1).tolist() for row in adj[0]]


def test_predecessors_reach_back_to_the_same_speakers_previous_utterance():
    adj, same = dialogue_dag(SPEAKERS, VALID, w_past=-1, speaker_window=1)
    # B speaks first at 1 (all before it); A at 2 reaches its own 0; C is new; B at 4 reaches 1
    assert preds(adj) == [[], [0], [0, 1], [0, 1, 2], [1, 2, 3], []]
    assert same[0, 2, 0] and same[0, 4, 1] and not same[0, 4, 3]


def test_the_window_caps_and_omega_widens_the_predecessors():
    adj, _ = dialogue_dag(SPEAKERS, VALID, w_past=2, speaker_window=1)
    assert preds(adj) == [[], [0], [0, 1], [1, 2], [2, 3], []]
    adj, _ = dialogue_dag(SPEAKERS, VALID, w_past=-1, speaker_window=2)
    # A at 2 has spoken once before: everything back to the start; so has B at 4
    assert preds(adj) == [[], [0], [0, 1], [0, 1, 2], [0, 1, 2, 3], []]


def test_the_layer_gru_is_torchs_gru_cell():
    torch.manual_seed(0)
    layer = DAGLayer(8)
    x, m = torch.randn(5, 8), torch.randn(5, 8)
    gru = layer.node_gru
    gi = torch.nn.functional.linear(x, gru.weight_ih, gru.bias_ih)
    gh = torch.nn.functional.linear(m, gru.weight_hh, gru.bias_hh)
    assert torch.allclose(layer._gru(gi, gh, m), gru(x, m), atol=1e-6)


@pytest.mark.parametrize("w_past", [-1, 2, 20])
@pytest.mark.parametrize("depth", [1, 3])
def test_the_wavefront_equals_the_layers_one_after_the_other(w_past, depth):
    torch.manual_seed(0)
    lengths = torch.tensor([4, 9, 1, 6])  # unsorted: the runner sorts and restores the rows
    valid = torch.arange(9)[None] < lengths[:, None]
    adj, same = dialogue_dag(torch.randint(0, 3, (4, 9)), valid, w_past)
    layers = [DAGLayer(8) for _ in range(depth)]
    h = torch.randn(4, 9, 8, requires_grad=True)
    reference = [h]
    for layer in layers:
        reference.append(layer(reference[-1], adj, same, w_past))
    fast = run_dag(layers, h, valid, adj, same, w_past)
    for ref, got in zip(reference[1:], fast, strict=True):
        assert torch.allclose(ref[valid], got[valid], atol=1e-5)
    # and the same gradients reach the inputs and the weights
    grads = torch.autograd.grad(reference[-1][valid].sum(), [h, layers[0].node_gru.weight_hh])
    fast_grads = torch.autograd.grad(fast[-1][valid].sum(), [h, layers[0].node_gru.weight_hh])
    for a, b in zip(grads, fast_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-4)


def test_shapes_with_two_modalities_and_a_wide_fusion():
    graph = one_dialogue(5, audio=True)
    batch = Batch.from_data_list([graph, one_dialogue(3, seed=1, audio=True)])
    torch.manual_seed(0)
    model = make("dagerc", batch, fusion="concat", intra_layers=3)
    assert isinstance(model.body, DAGERC) and "layers=3" in repr(model.body)
    out = model(batch)
    assert out.utterance.shape == (8, 4 * 32) and out.logits.shape == (8, 2)
    assert set(out.nodes) == {"text", "audio"} and out.nodes["audio"].shape == (8, 32)
    missing = ~batch["audio"].present_mask
    assert missing.any() and not out.nodes["audio"][missing].any()


def test_an_utterance_depends_on_earlier_utterances_only():
    graph = one_dialogue(6)
    torch.manual_seed(0)
    model = make("dagerc", Batch.from_data_list([graph]))

    def edit(g):
        g["text"].x[3] += 1.0

    assert changed_rows(model, graph, edit) == [False, False, False, True, True, True]


def test_the_speaker_relation_changes_the_context():
    graph = one_dialogue(6)
    torch.manual_seed(0)
    # one speaker embedding for everyone: a change can only come through the DAG's relations
    model = make("dagerc", Batch.from_data_list([graph]), max_speakers=1)

    def edit(g):
        g.speaker = torch.tensor([0, 1, 0, 0, 1, 0])  # utterance 3 changes speaker

    changed = changed_rows(model, graph, edit)
    assert changed[:3] == [False, False, False] and all(changed[3:])


def test_outputs_do_not_depend_on_the_other_dialogues_of_the_batch():
    short, long = one_dialogue(3, seed=1), one_dialogue(9, seed=2)
    torch.manual_seed(0)
    model = make("dagerc", Batch.from_data_list([short]))
    alone = outputs(model, short)
    assert torch.allclose(alone, outputs(model, short, long)[:3], atol=1e-5)
    assert torch.allclose(alone, outputs(model, long, short)[9:], atol=1e-5)


def test_the_input_hook_replaces_the_projected_inputs():
    graph = one_dialogue(4)
    batch = Batch.from_data_list([graph])
    torch.manual_seed(0)
    model = make("dagerc", batch).eval()
    masked = torch.tensor([True, False, False, False])

    def hook(h, present):
        return {m: torch.where(masked[:, None], 0.0, v) for m, v in h.items()}, {"text": masked}

    with torch.no_grad():
        plain = model.body(batch)
        hooked = model.body(batch, input_hook=hook)
    assert hooked.node_masks == {"text": masked}
    assert not torch.allclose(plain.utterance[0], hooked.utterance[0])
    assert not torch.allclose(plain.utterance[1], hooked.utterance[1])  # through the DAG


def test_dagerc_learns_the_previous_utterance_signal_the_mlp_cannot():
    dag = planted_accuracy("dagerc")
    mlp = planted_accuracy("mlp")
    assert dag > 0.85, dag
    assert dag > mlp + 0.2, (dag, mlp)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"intra_layers": 0}, "model.intra_layers must be an integer >= 1"),
        ({"options": {"w_past": 0}}, "w_past=0"),
        ({"options": {"speaker_window": 0}}, "speaker_window must be an integer >= 1"),
        ({"options": {"w_past": 1.5}}, "options.w_past must be an integer"),
    ],
)
def test_bad_options_are_refused_naming_the_key(kw, match):
    batch = Batch.from_data_list([one_dialogue(3)])
    with pytest.raises(ErcgraphError, match=match):
        make("dagerc", batch, **kw)
