"""MMGCN: one homogeneous graph over all modality nodes, GCNII layers, information along edges
only, missing nodes cut off, the MELD config on the MMGCN pickle layout and RAVDESS by --set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Batch

from ercgraph.config import ModelConfig
from ercgraph.errors import ErcgraphError
from ercgraph.graphs.build import build_graphs
from ercgraph.models import build_model
from ercgraph.registry import MODELS
from tests.cli_helpers import cli
from tests.components import toy_corpus, toy_store
from tests.data.pickle_fixtures import WRITERS

REPO = Path(__file__).resolve().parents[2]
MMGCN_GRAPH = [{"name": "temporal", "w_past": -1, "w_future": -1}, {"name": "modality"}]


def setup(builders=MMGCN_GRAPH, **options):
    corpus = toy_corpus()
    store = toy_store(corpus)
    batch = Batch.from_data_list(build_graphs(corpus, store, builders))
    fusion = options.pop("fusion", "concat")
    intra = options.pop("intra_layers", 0)  # no LSTM: the graph is the only context
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(
            name="mmgcn", hidden=16, dropout=0.0, fusion=fusion, intra_layers=intra, options=options
        ),
        store.dims(),
        list(batch.edge_types),
        list(corpus.labels),
    )
    return batch, model.eval()


def nudge(batch: Batch, modality: str, rows) -> Batch:
    other = batch.clone()
    x = batch[modality].x.clone()  # the batch holds views of the store: never edit in place
    x[rows] += 3.0
    other[modality].x = x
    return other


def changed(model, a: Batch, b: Batch) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        na, nb = model(a).nodes, model(b).nodes
    return {m: ~torch.isclose(na[m], nb[m], atol=1e-6).all(-1) for m in na}


def test_mmgcn_shapes_out_dim_and_gcnii_layers():
    batch, model = setup(layers=3)
    body = model.body
    assert isinstance(body, MODELS.get("mmgcn"))
    n = batch["text"].num_nodes
    out = model(batch)
    assert body.out_dim == 2 * 2 * 16  # concat of 2 modalities, GCN output + GCN input
    assert out.utterance.shape == (n, body.out_dim) and out.logits.shape == (n, 3)
    assert [type(c).__name__ for c in body.convs] == ["GCN2Conv"] * 3
    assert "layers=3" in repr(body) and "lamda=0.5" in repr(body)


def test_one_layer_reaches_exactly_the_graph_neighbours():
    """Unweighted edges and one layer: utterance 1's text reaches text nodes of its dialogue
    (temporal) and its own audio node (cross-modal), nothing two hops away or elsewhere."""
    batch, model = setup(layers=1, edge_weighting="none")
    d = batch["text"].batch
    ch = changed(model, batch, nudge(batch, "text", 1))
    assert ch["text"][d == 0].all() and not ch["text"][d != 0].any()
    audio = torch.zeros_like(ch["audio"])
    audio[1] = True
    if not batch["audio"].present_mask[1]:
        audio[1] = False
    assert torch.equal(ch["audio"], audio)
    # with cross-modal edges only, the other utterances of the dialogue are unreachable
    batch, model = setup(builders=[{"name": "modality"}], layers=1, edge_weighting="none")
    ch = changed(model, batch, nudge(batch, "text", 1))
    assert torch.nonzero(ch["text"]).view(-1).tolist() == [1]


def test_deeper_stacks_reach_further_and_dialogues_stay_apart():
    batch, model = setup(layers=2)  # angular weights: the default
    d = batch["text"].batch
    ch = changed(model, batch, nudge(batch, "text", 1))
    assert ch["audio"][(d == 0) & batch["audio"].present_mask].all()  # text 1 -> text j -> audio j
    for m in ("text", "audio"):
        assert not ch[m][d != 0].any()


def test_edges_touching_a_missing_node_are_dropped():
    batch, model = setup(layers=2)
    missing = ~batch["audio"].present_mask
    ch = changed(model, batch, nudge(batch, "audio", missing))
    keep = ~missing
    assert not ch["text"].any() and not ch["audio"][keep].any()


def test_angular_weights_and_the_lstm_context():
    batch, plain = setup(layers=1, edge_weighting="none")
    _, angular = setup(layers=1)
    with torch.no_grad():
        assert not torch.allclose(plain(batch).utterance, angular(batch).utterance)
    _, with_lstm = setup(intra_layers=2, context_modalities=["text"])
    names = [k for k, _ in with_lstm.named_parameters()]
    assert any(k.startswith("body.rnn.text.") for k in names)
    assert not any(k.startswith("body.rnn.audio.") for k in names)
    assert with_lstm(batch).utterance.shape[0] == batch["text"].num_nodes


def test_bad_mmgcn_options_are_refused():
    with pytest.raises(ErcgraphError, match="context_modalities"):
        setup(intra_layers=1, context_modalities=["visual"])
    with pytest.raises(ErcgraphError, match="no LSTM"):
        setup(intra_layers=0, context_modalities=["text"])
    with pytest.raises(ErcgraphError, match="lamda"):
        setup(lamda=0.0)
    with pytest.raises(ErcgraphError, match="edge_weighting"):
        setup(edge_weighting="cosine")


def test_meld_mmgcn_config_trains_on_the_mmgcn_pickle_layout(tmp_path):
    fx = WRITERS["mmgcn_meld"](tmp_path)
    out = tmp_path / "run"
    code = cli(
        "train",
        "-c",
        str(REPO / "configs/meld_mmgcn.yaml"),
        "--cache-dir",
        str(tmp_path / "c"),
        "--set",
        f"data.path={fx.path}",
        "--out",
        str(out),
        "--set",
        "train.epochs=1",
        "--set",
        "model.hidden=16",
    )
    assert code == 0
    assert json.loads((out / "model.json").read_text())["in_dims"] == {
        "text": 600,
        "audio": 300,
        "visual": 342,
    }
    m = json.loads((out / "metrics.json").read_text())
    assert {"text|past|text", "text|future|text", "text|cross_modal|visual"} <= set(m["edge_types"])
    from safetensors.torch import load_file

    weights = load_file(out / "seed_0" / "best.safetensors")
    assert any(k.startswith("body.rnn.text.") for k in weights)
    assert sum(k.endswith(".weight1") for k in weights) == 4  # four GCNII layers


def test_mmgcn_on_ravdess_by_set_uses_the_cross_modal_edges(tmp_path, data_root):
    out = tmp_path / "run"
    args = ["train", "-c", str(REPO / "configs/ravdess.yaml"), "--data-root", str(data_root)]
    args += ["--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    sets = ("model.name=mmgcn", "train.epochs=1", "model.hidden=16", "protocol.folds=2")
    for s in (*sets, "protocol.dev_groups=4"):
        args += ["--set", s]
    assert cli(*args) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["folds_done"] == [0, 1]
    fold = json.loads((out / "fold_0" / "metrics.json").read_text())
    assert set(fold["edge_types"]) == {"audio|cross_modal|visual", "visual|cross_modal|audio"}
    assert "name: mmgcn" in (out / "fold_0" / "config.yaml").read_text()
