"""compose / build_edges / build_graphs and the on-disk graph cache."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch_geometric.data import Batch, HeteroData

from ercgraph.data.corpus import MELD_LABELS, Corpus
from ercgraph.data.features import FeatureStore
from ercgraph.errors import ErcgraphError
from ercgraph.graphs import build as build_mod
from ercgraph.graphs import flat as flat_mod
from ercgraph.graphs.base import Dialogues, GraphBuilder
from ercgraph.graphs.build import (
    Composition,
    build_edges,
    build_graphs,
    cache_key,
    cached_edges,
    compose,
)
from ercgraph.graphs.temporal import TemporalBuilder

from .helpers import edge_set

BUILDERS_ALL = ["temporal", {"name": "speaker", "directed": True}, "modality"]
LOGGER = "ercgraph.graphs.build"


@pytest.fixture
def corpus() -> Corpus:
    """Three dialogues: d1 = A B A (train), d2 = C (train), d3 = D D (unlabelled)."""
    df = pd.DataFrame(
        {
            "split": ["unlabelled", "unlabelled", "train", "train", "train", "train"],
            "dialogue_id": ["d3", "d3", "d1", "d1", "d1", "d2"],
            "turn": [0, 1, 2, 0, 1, 0],
            "speaker": ["D", "D", "A", "A", "B", "C"],
            "label": [None, None, "anger", "neutral", "joy", "sadness"],
        }
    )
    return Corpus(df, "toy", MELD_LABELS)


@pytest.fixture
def store() -> FeatureStore:
    audio_present = torch.tensor([True, False, True, True, True, True])
    return FeatureStore(
        {"text": torch.arange(12.0).view(6, 2), "audio": -torch.arange(6.0).view(6, 1)},
        {"text": torch.ones(6, dtype=torch.bool), "audio": audio_present},
    )


# -- compose ----------------------------------------------------------------------------------
def test_compose_resolves_names_dicts_instances_and_classes() -> None:
    from ercgraph.graphs.modality import ModalityBuilder

    comp = compose(["temporal", {"name": "speaker", "w_past": 2}, ModalityBuilder])
    assert [repr(b) for b in comp.builders] == [
        "TemporalBuilder(w_past=-1, w_future=-1)",
        "SpeakerBuilder(w_past=2, w_future=-1, directed=False)",
        "ModalityBuilder(pairs=None)",
    ]
    assert comp.edge_types == ("past", "future", "same_speaker", "other_speaker", "cross_modal")
    inst = TemporalBuilder(1, 1)
    assert compose(inst).builders == (inst,)
    assert compose(comp).edge_types == comp.edge_types


def test_compose_rejects_duplicate_relations() -> None:
    with pytest.raises(
        ErcgraphError,
        match="edge type 'past' is produced by two builders, "
        r"TemporalBuilder\(w_past=-1, w_future=-1\) and TemporalBuilder\(w_past=2",
    ):
        compose(["temporal", {"name": "temporal", "w_past": 2}])


def test_compose_filters_edge_types_and_drops_unused_builders() -> None:
    comp = compose(BUILDERS_ALL, ["cross_modal", "past"])
    assert comp.edge_types == ("past", "cross_modal")
    assert [type(b).__name__ for b in comp.builders] == ["TemporalBuilder", "ModalityBuilder"]


def test_unknown_edge_type_lists_the_available_ones() -> None:
    with pytest.raises(ErcgraphError) as err:
        compose(["temporal", "speaker"], ["past", "same_speaker_past"])
    msg = str(err.value)
    assert "unknown edge type 'same_speaker_past'" in msg
    assert "available edge types: past, future, same_speaker, other_speaker" in msg


def test_unknown_builder_name_suggests_a_close_one() -> None:
    with pytest.raises(
        ErcgraphError, match="unknown graph builder 'temporl'.*Did you mean 'temporal'"
    ):
        compose(["temporl"])


def test_non_builder_is_rejected() -> None:
    with pytest.raises(ErcgraphError, match="graph builder #0 .* is a int, not a GraphBuilder"):
        compose([3])


# -- build_edges ------------------------------------------------------------------------------
def test_build_edges_order_and_sorting() -> None:
    class Reversed(GraphBuilder):
        EDGE_TYPES = ("rev",)

        def forward(self, d: Dialogues) -> dict:
            return {("text", "rev", "text"): torch.tensor([[2, 1, 0, 0], [0, 0, 2, 1]])}

    d = Dialogues.from_sequences([["A", "B", "A"]], modalities=("text", "audio"))
    out = build_edges(d, [Reversed(), "modality", {"name": "temporal", "w_future": 0}])
    assert list(out) == [
        ("text", "rev", "text"),
        ("text", "cross_modal", "audio"),
        ("audio", "cross_modal", "text"),
        ("text", "past", "text"),
        ("audio", "past", "audio"),
    ]
    assert out[("text", "rev", "text")].tolist() == [[1, 2, 0, 0], [0, 0, 1, 2]]
    assert all(ei.is_contiguous() for ei in out.values())


def test_build_edges_is_deterministic_and_filters(meld_dialogues: Dialogues) -> None:
    a = build_edges(meld_dialogues, BUILDERS_ALL[:2], ["past", "other_speaker_future"])
    b = build_edges(meld_dialogues, compose(BUILDERS_ALL[:2], ["other_speaker_future", "past"]))
    assert (
        list(a) == list(b) == [("text", "past", "text"), ("text", "other_speaker_future", "text")]
    )
    for k in a:
        assert torch.equal(a[k], b[k])
        key = a[k][1] * meld_dialogues.num_utterances + a[k][0]
        assert (key[1:] > key[:-1]).all()  # sorted by (dst, src), no duplicates


# -- build_graphs -----------------------------------------------------------------------------
def test_graph_contents(corpus: Corpus, store: FeatureStore) -> None:
    graphs = build_graphs(corpus, store, BUILDERS_ALL)
    assert [g.dialogue_id for g in graphs] == ["d1", "d2", "d3"]
    g = graphs[0]
    assert isinstance(g, HeteroData)
    assert g.node_types == ["text", "audio"]
    assert torch.equal(g["text"].x, torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]))
    assert g["audio"].x.tolist() == [[0.0], [-1.0], [-2.0]]
    assert g["audio"].present_mask.tolist() == [True, False, True]
    assert g["text"].present_mask.dtype == torch.bool
    assert g.y.tolist() == [0, 4, 6]  # neutral, joy, anger in MELD order
    assert g.speaker.tolist() == [0, 1, 0]
    assert g.turn.tolist() == [0, 1, 2]
    assert g.row.tolist() == [0, 1, 2]
    assert g[("text", "past", "text")].edge_index.tolist() == [[0, 0, 1], [1, 2, 2]]
    # audio node 1 is missing: every edge touching it is gone, in every relation
    assert g[("audio", "past", "audio")].edge_index.tolist() == [[0], [2]]
    assert g[("audio", "other_speaker_future", "audio")].edge_index.shape == (2, 0)
    assert g[("text", "cross_modal", "audio")].edge_index.tolist() == [[0, 2], [0, 2]]
    assert g[("audio", "cross_modal", "text")].edge_index.tolist() == [[0, 2], [0, 2]]
    g.validate()

    expected_types = {
        (m, r, m)
        for m in ("text", "audio")
        for r in (
            "past",
            "future",
            "same_speaker_past",
            "same_speaker_future",
            "other_speaker_past",
            "other_speaker_future",
        )
    } | {("text", "cross_modal", "audio"), ("audio", "cross_modal", "text")}
    for graph in graphs:  # consistent edge types, even where a dialogue has no such edge
        assert set(graph.edge_types) == expected_types
    assert graphs[1][("text", "past", "text")].edge_index.shape == (2, 0)
    assert graphs[1][("text", "cross_modal", "audio")].edge_index.tolist() == [[0], [0]]
    assert graphs[2].y.tolist() == [-1, -1]
    assert graphs[2].row.tolist() == [4, 5]
    assert graphs[2][("text", "same_speaker_past", "text")].edge_index.tolist() == [[0], [1]]


def test_batch_concatenates_global_attributes(corpus: Corpus, store: FeatureStore) -> None:
    graphs = build_graphs(corpus, store, BUILDERS_ALL)
    batch = Batch.from_data_list(graphs)
    assert batch.num_graphs == 3
    assert batch.row.tolist() == list(range(6))
    assert batch.y.tolist() == [0, 4, 6, 3, -1, -1]
    assert batch.speaker.tolist() == [0, 1, 0, 0, 0, 0]
    assert batch.turn.tolist() == [0, 1, 2, 0, 0, 1]
    assert batch.dialogue_id == ["d1", "d2", "d3"]
    assert torch.equal(batch["text"].x, store.features["text"])
    assert batch["audio"].present_mask.tolist() == store.present["audio"].tolist()
    assert batch["text"].batch.tolist() == [0, 0, 0, 1, 2, 2]
    # edge indices are shifted by the node offsets of earlier graphs
    assert edge_set(batch[("text", "same_speaker_past", "text")].edge_index) == {(0, 2), (4, 5)}
    back = batch.get_example(2)
    assert back.row.tolist() == [4, 5] and back.dialogue_id == "d3"


def test_fast_assembly_equals_public_api(
    corpus: Corpus, store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = build_graphs(corpus, store, BUILDERS_ALL)
    monkeypatch.setattr(flat_mod, "_fast_layout", lambda state: False)
    public = build_graphs(corpus, store, BUILDERS_ALL)
    for f, p in zip(fast, public, strict=True):
        assert f.node_types == p.node_types and f.edge_types == p.edge_types
        assert f.to_dict().keys() == p.to_dict().keys()
        for (kf, vf), (kp, vp) in zip(f.to_dict().items(), p.to_dict().items(), strict=True):
            assert kf == kp
            assert vf.keys() == vp.keys()
            assert all(
                vf[a] == vp[a] if isinstance(vf[a], str) else torch.equal(vf[a], vp[a]) for a in vf
            )
        for sf, sp in zip(f.stores, p.stores, strict=True):  # same internal layout as PyG's
            assert sf.__dict__.keys() == sp.__dict__.keys()
            assert sf._key == sp._key and sf._parent() is f and sp._parent() is p
        assert f["text"].num_nodes == p["text"].num_nodes
        assert f[("text", "past", "text")].num_edges == p[("text", "past", "text")].num_edges
        assert f[("text", "past", "text")]._parent() is f


def test_graphs_survive_pickle_clone_and_loader(corpus: Corpus, store: FeatureStore) -> None:
    from torch_geometric.loader import DataLoader

    graphs = build_graphs(corpus, store, BUILDERS_ALL)
    back = pickle.loads(pickle.dumps(graphs[0]))
    clone = graphs[0].clone()
    for g in (back, clone, graphs[0].to("cpu")):
        assert g.dialogue_id == "d1" and g.y.tolist() == [0, 4, 6]
        assert g[("text", "past", "text")].edge_index.tolist() == [[0, 0, 1], [1, 2, 2]]
        assert g.edge_types == graphs[0].edge_types
    clone["text"].x.zero_()
    assert graphs[0]["text"].x.abs().sum() > 0
    batches = list(DataLoader(graphs, batch_size=2))
    assert [b.num_graphs for b in batches] == [2, 1]
    assert torch.cat([b.row for b in batches]).tolist() == list(range(6))


def test_graphs_on_meld_dev(meld_dev: Corpus) -> None:
    n = meld_dev.num_utterances
    store = FeatureStore({"text": torch.randn(n, 8)})
    graphs = build_graphs(meld_dev, store, ["temporal", {"name": "speaker", "w_past": 4}])
    assert len(graphs) == 114
    assert [g.dialogue_id for g in graphs] == meld_dev.dialogue_ids()
    batch = Batch.from_data_list(graphs)
    assert batch.row.tolist() == list(range(n))
    assert torch.equal(batch["text"].x, store.features["text"])
    d = Dialogues.from_corpus(meld_dev)
    flat = build_edges(d, ["temporal", {"name": "speaker", "w_past": 4}])
    for key, ei in flat.items():
        assert edge_set(batch[key].edge_index) == edge_set(ei)


def test_feature_rows_must_match(corpus: Corpus) -> None:
    with pytest.raises(
        ErcgraphError, match="modality 'text' has 5 feature rows but the corpus has 6 utterances"
    ):
        build_graphs(corpus, FeatureStore({"text": torch.zeros(5, 2)}), ["temporal"])


def test_unknown_edge_type_through_build_graphs(corpus: Corpus, store: FeatureStore) -> None:
    with pytest.raises(
        ErcgraphError, match="unknown edge type 'speaker'.*available edge types: past, future"
    ):
        build_graphs(corpus, store, ["temporal"], edge_types=["speaker"])


# -- cache ------------------------------------------------------------------------------------
def _cache_files(root: Path) -> list[Path]:
    return sorted((root / "graphs").glob("*"))


def test_cache_reuse(corpus: Corpus, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = Dialogues.from_corpus(corpus, ("text", "audio"))
    first, hit1 = cached_edges(corpus, d, BUILDERS_ALL, tmp_path)
    assert not hit1
    files = _cache_files(tmp_path)
    assert [f.suffix for f in files] == [".json", ".safetensors"]
    caplog.set_level(logging.INFO, logger=LOGGER)
    second, hit2 = cached_edges(corpus, d, BUILDERS_ALL, tmp_path)
    assert hit2
    assert "reusing graph cache" in caplog.text
    assert list(first) == list(second)
    assert all(torch.equal(first[k], second[k]) for k in first)
    meta = json.loads(files[0].read_text())
    assert meta["manifest"]["builders"][0]["repr"] == "TemporalBuilder(w_past=-1, w_future=-1)"


def test_build_graphs_uses_the_cache(
    corpus: Corpus, store: FeatureStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    a = build_graphs(corpus, store, BUILDERS_ALL, cache_dir=tmp_path)
    assert "reusing graph cache" not in caplog.text
    b = build_graphs(corpus, store, BUILDERS_ALL, cache_dir=tmp_path)
    assert "reusing graph cache" in caplog.text
    for ga, gb in zip(a, b, strict=True):
        assert ga.edge_types == gb.edge_types
        for k in ga.edge_types:
            assert torch.equal(ga[k].edge_index, gb[k].edge_index)


@pytest.mark.parametrize("damage", ["flip", "truncate", "json", "stale", "drop_json"])
def test_corrupt_or_stale_cache_is_rebuilt(
    corpus: Corpus, tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    d = Dialogues.from_corpus(corpus, ("text", "audio"))
    good, _ = cached_edges(corpus, d, BUILDERS_ALL, tmp_path)
    meta_path, blob_path = _cache_files(tmp_path)
    blob = bytearray(blob_path.read_bytes())
    if damage == "flip":
        blob[-3] ^= 0xFF
        blob_path.write_bytes(bytes(blob))
    elif damage == "truncate":
        blob_path.write_bytes(bytes(blob[: len(blob) // 2]))
    elif damage == "json":
        meta_path.write_text("{not json")
    elif damage == "stale":
        meta = json.loads(meta_path.read_text())
        meta["manifest"]["builders"][0]["repr"] = "TemporalBuilder(w_past=1, w_future=1)"
        meta_path.write_text(json.dumps(meta))
    else:
        meta_path.unlink()
    caplog.set_level(logging.INFO, logger=LOGGER)
    edges, hit = cached_edges(corpus, d, BUILDERS_ALL, tmp_path)
    assert not hit
    assert "rebuilding it" in caplog.text
    assert all(torch.equal(good[k], edges[k]) for k in good)
    _, hit = cached_edges(corpus, d, BUILDERS_ALL, tmp_path)  # the rebuilt file is good again
    assert hit


def test_cache_rejects_edges_that_do_not_fit(
    corpus: Corpus, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A checksum-valid file with out-of-range indices (e.g. written by a buggy version)."""
    d = Dialogues.from_corpus(corpus, ("text",))
    bad = {("text", "past", "text"): torch.tensor([[0], [99]])}
    key, manifest = cache_key(corpus, compose(["temporal"]), d.modalities)
    build_mod._save_edges(tmp_path / "graphs" / f"{key}.safetensors", manifest, bad)
    edges, hit = cached_edges(corpus, d, ["temporal"], tmp_path)
    assert not hit and "does not fit this corpus" in caplog.text
    assert edges[("text", "past", "text")].max() < d.num_utterances


def test_cache_key_tracks_configuration(corpus: Corpus) -> None:
    comp = compose(BUILDERS_ALL)
    key, manifest = cache_key(corpus, comp, ("text", "audio"))
    assert (
        cache_key(
            corpus,
            compose(["temporal", {"name": "speaker", "directed": True}, {"name": "modality"}]),
            ("text", "audio"),
        )[0]
        == key
    )
    assert cache_key(corpus, compose(BUILDERS_ALL[:2]), ("text", "audio"))[0] != key
    assert cache_key(corpus, compose(BUILDERS_ALL, ["past"]), ("text", "audio"))[0] != key
    assert cache_key(corpus, comp, ("text",))[0] != key
    other = corpus.df.copy()
    other.loc[0, "speaker"] = "Z"
    assert cache_key(Corpus(other, "toy", MELD_LABELS), comp, ("text", "audio"))[0] != key
    assert manifest["edge_types"] == sorted(comp.edge_types)
    assert isinstance(comp, Composition)


class WindowBuilder(GraphBuilder):
    """An honest builder with one argument (stored under its own name)."""

    EDGE_TYPES = ("near",)

    def __init__(self, window: int = 1) -> None:
        self.window = window

    def forward(self, dialogues: Dialogues) -> dict:
        return {}


class HiddenWindowBuilder(WindowBuilder):
    """Keeps ``window`` as ``self._w``: its repr cannot show it."""

    def __init__(self, window: int = 1) -> None:
        self._w = window


def test_two_configs_of_a_builder_give_different_cache_keys(corpus: Corpus) -> None:
    one = cache_key(corpus, compose([WindowBuilder(1)]), ("text",))[0]
    three = cache_key(corpus, compose([WindowBuilder(3)]), ("text",))[0]
    assert one != three
    assert cache_key(corpus, compose([WindowBuilder(1)]), ("text",))[0] == one


def test_builder_hiding_an_argument_never_reaches_the_cache(corpus: Corpus, tmp_path) -> None:
    """The reported bug: window=1 and window=3 printed the same repr and shared a cache entry."""
    for window in (1, 3):
        with pytest.raises(ErcgraphError, match=r"HiddenWindowBuilder.*'window'"):
            compose([HiddenWindowBuilder(window)])
        # a Composition made by hand is checked when its cache key is computed
        comp = Composition((HiddenWindowBuilder(window),), ("near",))
        with pytest.raises(ErcgraphError, match=r"HiddenWindowBuilder.*'window'"):
            cache_key(corpus, comp, ("text",))
        with pytest.raises(ErcgraphError, match=r"HiddenWindowBuilder.*'window'"):
            cached_edges(corpus, Dialogues.from_corpus(corpus), comp, tmp_path)
    assert not (tmp_path / "graphs").exists()


def test_cache_manifest_holds_class_version_and_repr(
    corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, manifest = cache_key(corpus, compose([TemporalBuilder(1, 2)]), ("text",))
    assert manifest["builders"] == [
        {
            "class": "ercgraph.graphs.temporal:TemporalBuilder",
            "version": None,
            "repr": "TemporalBuilder(w_past=1, w_future=2)",
        }
    ]
    monkeypatch.setattr(TemporalBuilder, "VERSION", 2, raising=False)
    bumped, manifest2 = cache_key(corpus, compose([TemporalBuilder(1, 2)]), ("text",))
    assert bumped != key and manifest2["builders"][0]["version"] == 2


def test_same_repr_from_another_class_gives_another_key(corpus: Corpus) -> None:
    class TemporalBuilder(WindowBuilder):  # same name and repr shape, different code
        EDGE_TYPES = ("past", "future")

        def __init__(self, w_past: int = -1, w_future: int = -1) -> None:
            self.w_past, self.w_future = w_past, w_future

    ours = cache_key(corpus, compose(["temporal"]), ("text",))
    theirs = cache_key(corpus, compose([TemporalBuilder()]), ("text",))
    assert repr(compose([TemporalBuilder()]).builders[0]) == ours[1]["builders"][0]["repr"]
    assert ours[0] != theirs[0]


# -- the size check: estimated before anything is built ------------------------------------------
def _long_corpus(turns: int) -> Corpus:
    """One short dialogue and one of ``turns`` turns between two speakers."""
    df = pd.DataFrame(
        {
            "split": "train",
            "dialogue_id": ["short"] * 3 + ["long"] * turns,
            "turn": list(range(3)) + list(range(turns)),
            "speaker": ["A", "B", "A"] + ["A", "B"] * (turns // 2) + ["A"] * (turns % 2),
            "label": "neutral",
        }
    )
    return Corpus(df, "toy", MELD_LABELS)


def _never_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any edge is enumerated (the check must come first)."""
    import ercgraph.graphs.speaker as speaker_mod
    import ercgraph.graphs.temporal as temporal_mod

    def boom(*args, **kwargs):
        raise AssertionError("edges were built before the size check")

    monkeypatch.setattr(temporal_mod, "window_pairs", boom)
    monkeypatch.setattr(speaker_mod, "window_pairs", boom)


def _suggested(message: str) -> int:
    import re

    found = re.search(r"cap every context window at (\d+) \(w_past: \1, w_future: \1\)", message)
    assert found, message
    return int(found.group(1))


def test_whole_dialogue_graph_of_5000_turns_is_refused_before_building(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The reported out-of-memory: temporal edges over a whole 5,000-turn dialogue."""
    corpus = _long_corpus(5000)
    store = FeatureStore({"text": torch.zeros(5003, 1)}, {"text": torch.ones(5003, dtype=bool)})
    _never_build(monkeypatch)
    builders = [{"name": "temporal", "w_past": -1, "w_future": -1}]
    with pytest.raises(ErcgraphError) as err:
        build_graphs(corpus, store, builders, cache_dir=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    assert "dialogue 'long' (5000 turns)" in msg and "24,995,000 edges" in msg
    assert f"{build_mod.MAX_DIALOGUE_EDGES:,}" in msg and "MAX_DIALOGUE_EDGES" in msg
    w = _suggested(msg)
    # the suggestion is the widest window that fits
    d = Dialogues(torch.zeros(5003, dtype=torch.long), torch.tensor([0, 3, 5003]))
    fits = TemporalBuilder(w, w).estimate_edges(d)
    assert int(fits.max()) <= build_mod.MAX_DIALOGUE_EDGES
    assert int(TemporalBuilder(w + 1, w + 1).estimate_edges(d).max()) > build_mod.MAX_DIALOGUE_EDGES
    assert not (tmp_path / "graphs").exists()


def test_size_check_counts_every_builder_and_modality(monkeypatch: pytest.MonkeyPatch) -> None:
    d = Dialogues(
        torch.zeros(2000, dtype=torch.long), torch.tensor([0, 2000]), ("text", "audio")
    )  # one dialogue, unnamed: the message gives its position
    _never_build(monkeypatch)
    monkeypatch.setattr(build_mod, "MAX_DIALOGUE_EDGES", 8_000_000)
    builders = [TemporalBuilder(-1, -1), {"name": "speaker", "w_past": 8, "w_future": 0}]
    # temporal: 2 modalities x 2000 x 1999; speaker: 2 x (8 x 2000 - 36); cross-modal: 2 x 2000
    expected = 2 * 2000 * 1999 + 2 * (8 * 2000 - 36) + 2 * 2000
    with pytest.raises(ErcgraphError, match=rf"dialogue #0 \(2000 turns\).* {expected:,} edges"):
        build_edges(d, [*builders, "modality"])


def test_total_size_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    d = Dialogues.from_sequences([["A", "B"] * 10] * 30)  # 30 dialogues of 20 turns
    _never_build(monkeypatch)
    monkeypatch.setattr(build_mod, "MAX_EDGES", 5000)
    with pytest.raises(ErcgraphError) as err:
        build_edges(d, [TemporalBuilder(-1, -1)])
    msg = str(err.value)
    assert "11,400 edges in all" in msg and "MAX_EDGES" in msg and "#0 (20 turns" in msg
    w = _suggested(msg)
    assert int(TemporalBuilder(w, w).estimate_edges(d).sum()) <= 5000
    assert int(TemporalBuilder(w + 1, w + 1).estimate_edges(d).sum()) > 5000


def test_size_check_without_a_window_to_shrink(monkeypatch: pytest.MonkeyPatch) -> None:
    d = Dialogues.from_sequences([["A"] * 50], modalities=("text", "audio"))
    monkeypatch.setattr(build_mod, "MAX_DIALOGUE_EDGES", 10)
    with pytest.raises(ErcgraphError, match="no builder has a context window to cap"):
        build_edges(d, ["modality"])
    with pytest.raises(ErcgraphError, match="even a window of 1"):
        build_edges(d, [TemporalBuilder(-1, -1)])


def test_graphs_within_the_limits_are_built(meld_dialogues: Dialogues) -> None:
    out = build_edges(meld_dialogues, [TemporalBuilder(-1, -1), "speaker"])
    assert out[("text", "past", "text")].shape[1] > 0


# -- removing the information of a relation (pairs ablation) ---------------------------------------
class NearBuilder(GraphBuilder):
    """A plug-in-like relation without a pair rule: j -> i for |i - j| == 1, per modality."""

    EDGE_TYPES = ("near",)

    def forward(self, dialogues: Dialogues) -> dict:
        i = torch.arange(dialogues.num_utterances)
        same = dialogues.batch[:-1] == dialogues.batch[1:]
        a, b = i[:-1][same], i[1:][same]
        ei = torch.stack([torch.cat([a, b]), torch.cat([b, a])])
        return {(m, "near", m): ei for m in dialogues.modalities}


class SelfBuilder(GraphBuilder):
    """Each node hears itself (same modality, same utterance)."""

    EDGE_TYPES = ("self",)

    def forward(self, dialogues: Dialogues) -> dict:
        i = torch.arange(dialogues.num_utterances)
        return {(m, "self", m): torch.stack([i, i]) for m in dialogues.modalities}


def _pair_edges() -> tuple[Dialogues, dict, dict]:
    d = Dialogues.from_sequences([["A", "B", "A", "C"], ["D", "D"]], modalities=("text", "audio"))
    comp = compose(
        [TemporalBuilder(1, 1), {"name": "speaker", "w_past": 2, "w_future": 0}, "modality"]
        + [NearBuilder(), SelfBuilder()]
    )
    return d, build_edges(d, comp), comp.pair_rules


def test_composition_collects_pair_rules() -> None:
    rules = compose([TemporalBuilder(2, 0), {"name": "speaker", "directed": True}]).pair_rules
    assert rules == {
        "past": ("past",),
        "same_speaker_past": ("same_speaker", "past"),
        "same_speaker_future": ("same_speaker", "future"),
        "other_speaker_past": ("other_speaker", "past"),
        "other_speaker_future": ("other_speaker", "future"),
    }


def test_remove_pairs_by_rule_reaches_every_relation() -> None:
    d, edges, rules = _pair_edges()
    out = build_mod.remove_pairs(edges, d.speaker, ["past"], rules)
    assert not any(k[1] == "past" for k in out)
    for (a, rel, b), ei in out.items():
        assert not bool((ei[0] < ei[1]).any()), rel
        # everything else stays
        before = edges[(a, rel, b)]
        assert edge_set(ei) == {(j, i) for j, i in edge_set(before) if not j < i}
    assert out[("text", "self", "text")] is edges[("text", "self", "text")]

    out = build_mod.remove_pairs(edges, d.speaker, ["same_speaker"], rules)
    for (_, rel, _), ei in out.items():
        if rel in ("self", "cross_modal"):  # one utterance, not a pair of same-speaker turns
            continue
        assert not bool((d.speaker[ei[0]] == d.speaker[ei[1]]).any()), rel
    assert edge_set(out[("text", "past", "text")]) == {(0, 1), (1, 2), (2, 3)}


def test_remove_pairs_without_a_rule_uses_the_relation_pairs() -> None:
    d, edges, rules = _pair_edges()
    out = build_mod.remove_pairs(edges, d.speaker, ["near"], rules)
    # temporal windows of 1 are exactly the near pairs
    assert out[("text", "past", "text")].shape[1] == 0
    assert out[("audio", "future", "audio")].shape[1] == 0
    assert edge_set(out[("text", "other_speaker", "text")]) == {(1, 3)}
    assert edge_set(out[("text", "same_speaker", "text")]) == {(0, 2)}
    assert torch.equal(out[("text", "self", "text")], edges[("text", "self", "text")])
    # cross-modal edges link one utterance in two modalities: not a self pair of one modality
    out = build_mod.remove_pairs(edges, d.speaker, ["cross_modal"], rules)
    assert not any(k[1] == "cross_modal" for k in out)
    assert torch.equal(out[("audio", "self", "audio")], edges[("audio", "self", "audio")])
    out = build_mod.remove_pairs(edges, d.speaker, ["self"], rules)
    assert torch.equal(
        out[("text", "cross_modal", "audio")], edges[("text", "cross_modal", "audio")]
    )


def test_build_graphs_drops_pairs(corpus: Corpus, store: FeatureStore, tmp_path: Path) -> None:
    graphs = build_graphs(corpus, store, BUILDERS_ALL, cache_dir=tmp_path, drop_pairs=["past"])
    full = build_graphs(corpus, store, BUILDERS_ALL, cache_dir=tmp_path)
    assert all(et[1] != "past" for et in graphs[0].edge_types)
    assert ("text", "same_speaker_past", "text") in graphs[0].edge_types  # kept, now empty
    removed = 0
    for g, f in zip(graphs, full, strict=True):
        for et in g.edge_types:
            ei = g[et].edge_index
            assert not bool((ei[0] < ei[1]).any())
            removed += f[et].edge_index.shape[1] - ei.shape[1]
    assert removed > 0
    with pytest.raises(ErcgraphError, match="'sideways'.*no configured builder produces it"):
        build_graphs(corpus, store, BUILDERS_ALL, drop_pairs=["sideways"])
    with pytest.raises(ErcgraphError, match="'past' is both kept .* and dropped"):
        build_graphs(corpus, store, BUILDERS_ALL, ["past", "future"], drop_pairs=["past"])
