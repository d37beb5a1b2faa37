"""Edge-type ablation: what a variant removes (relations or pair information), the pair counts
in the table, resuming, logging and the chart.

Training is replaced by a stub that writes a run directory's ``config.yaml`` and
``metrics.json``; ``tests/test_cli.py`` runs the real thing end to end.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
import torch

import ercgraph.pipeline as pipeline
import ercgraph.train as train
from ercgraph.ablate import ablate, connected_pairs, variant_graph
from ercgraph.config import Config, dump_config
from ercgraph.data.corpus import MELD_LABELS, Corpus
from ercgraph.data.features import FeatureStore
from ercgraph.errors import ErcgraphError
from ercgraph.graphs.build import build_graphs, compose
from ercgraph.pipeline import Prepared

FULL = ["past", "future", "same_speaker", "other_speaker"]
LEAVE_ONE_OUT = [
    "full",
    "without_past",
    "without_future",
    "without_same_speaker",
    "without_other_speaker",
]


def _graphs(corpus: Corpus, cfg: Config) -> list:
    n = corpus.num_utterances
    store = FeatureStore({"text": torch.zeros(n, 2)}, {"text": torch.ones(n, dtype=torch.bool)})
    return build_graphs(corpus, store, cfg.graph.builders, cfg.graph.edge_types)


@pytest.fixture(scope="module")
def meld_dev_graphs(data_root: Path) -> list:
    """MELD dev dialogues as graphs with the shipped (default) builders: temporal and speaker,
    both with windows of 4."""
    raw = pd.read_csv(data_root / "meld" / "dev_sent_emo.csv")
    df = pd.DataFrame(
        {
            "split": "dev",
            "dialogue_id": "dev_" + raw["Dialogue_ID"].astype(str),
            "turn": raw["Utterance_ID"],
            "speaker": raw["Speaker"],
            "label": raw["Emotion"],
        }
    )
    return _graphs(Corpus(df, "meld", MELD_LABELS), Config())


def _rules() -> dict:
    return compose(Config().graph.builders).pair_rules


def _all_edges(graphs: list) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    return [
        (g[et].edge_index[0], g[et].edge_index[1], g.speaker) for g in graphs for et in g.edge_types
    ]


# -- the reported defect, on real MELD dialogues ---------------------------------------------------
def test_with_shipped_windows_dropping_a_relation_keeps_every_pair(meld_dev_graphs: list) -> None:
    """Why the old ablation measured relation typing, not context: the speaker relations cover
    exactly the temporal pairs, so "without past" still connects every past pair."""
    full = connected_pairs(meld_dev_graphs)
    assert full > 0
    for dropped in FULL:
        kept = {r for r in FULL if r != dropped}
        graphs = [variant_graph(g, kept, "relations", _rules()) for g in meld_dev_graphs]
        assert connected_pairs(graphs) == full, dropped


def test_pairs_mode_removes_the_information_of_a_relation(meld_dev_graphs: list) -> None:
    full = connected_pairs(meld_dev_graphs)
    no_past = [
        variant_graph(g, {"future", "same_speaker", "other_speaker"}, "pairs", _rules())
        for g in meld_dev_graphs
    ]
    for src, dst, _ in _all_edges(no_past):
        assert not bool((src < dst).any())  # no relation carries a message from the past
    # symmetric windows: exactly half of the pairs were past pairs
    assert connected_pairs(no_past) * 2 == full
    assert {et[1] for et in no_past[0].edge_types} == {"future", "same_speaker", "other_speaker"}

    no_same = [
        variant_graph(g, {"past", "future", "other_speaker"}, "pairs", _rules())
        for g in meld_dev_graphs
    ]
    for src, dst, speaker in _all_edges(no_same):
        assert not bool((speaker[src] == speaker[dst]).any())
    assert 0 < connected_pairs(no_same) < full
    # the input graphs are untouched
    assert connected_pairs(meld_dev_graphs) == full


# -- ablate() with a training stub -----------------------------------------------------------------
def _toy_corpus() -> Corpus:
    rows = []
    for split, dialogues in (("train", 3), ("dev", 2), ("test", 2)):
        for d in range(dialogues):
            for t in range(6):
                rows.append((split, f"{split}{d}", t, "AB"[t % 2] if t < 4 else "C", "neutral"))
    df = pd.DataFrame(rows, columns=["split", "dialogue_id", "turn", "speaker", "label"])
    return Corpus(df, "toy", MELD_LABELS)


def _metrics(score: float) -> dict:
    m = {"mean": score, "std": 1.0}
    per_class = {"fear": {"f1": 1.0, "f1_std": 0.5}, "disgust": {"f1": 2.0, "f1_std": 0.0}}
    return {
        "dev": {"weighted_f1": m},
        "test": {"weighted_f1": m, "macro_f1": m, "per_class": per_class},
    }


class Trainer:
    """Stands in for ``ercgraph.train.run``: records each call and writes a run directory."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[dict] = []
        self.fail = fail

    def __call__(self, cfg: Config, out: Path, resume: bool = False, prep=None) -> dict:
        self.calls.append({"name": out.name, "cfg": cfg, "resume": resume, "prep": prep})
        logging.getLogger("ercgraph.train").info("seed %d epoch %d: loss %.4f", 0, 1, 0.5)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(dump_config(cfg))
        if out.name == self.fail:
            raise KeyboardInterrupt  # interrupted mid-training: no metrics.json
        m = _metrics(50.0 + len(self.calls))
        (out / "metrics.json").write_text(json.dumps(m))
        return m

    def names(self) -> list[str]:
        return [c["name"] for c in self.calls]


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Trainer:
    corpus = _toy_corpus()
    graphs = _graphs(corpus, Config())
    by_split = {s: [g for g in graphs if g.dialogue_id.startswith(s)] for s in corpus.splits}

    def prepare(cfg: Config) -> Prepared:
        return Prepared(corpus, None, by_split, sorted(graphs[0].edge_types), {}, {})

    trainer = Trainer()
    monkeypatch.setattr(pipeline, "prepare", prepare)
    monkeypatch.setattr(train, "run", trainer)
    return trainer


def test_ablate_defaults_to_pairs_and_reports_connected_pairs(stubbed: Trainer, tmp_path) -> None:
    out = tmp_path / "abl"
    rows = ablate(Config(), out)
    assert [r["variant"] for r in rows] == LEAVE_ONE_OUT
    assert stubbed.names() == LEAVE_ONE_OUT
    by_name = {r["variant"]: r for r in rows}
    assert all(r["mode"] == "pairs" for r in rows)
    assert by_name["full"]["pairs_fraction"] == 1.0
    assert by_name["without_past"]["pairs_fraction"] == 0.5
    assert by_name["without_past"]["pairs_connected"] * 2 == by_name["full"]["pairs_connected"]
    assert 0 < by_name["without_same_speaker"]["pairs_fraction"] < 1
    # what the variant trained on: no past pair in any relation, the other relations kept
    call = stubbed.calls[1]
    assert call["cfg"].graph.edge_types == ["future", "same_speaker", "other_speaker"]
    assert [et[1] for et in call["prep"].edge_types] == sorted(
        ["future", "same_speaker", "other_speaker"]
    )
    for g in call["prep"].graphs["train"]:
        for et in g.edge_types:
            assert not bool((g[et].edge_index[0] < g[et].edge_index[1]).any())
    saved = json.loads((out / "ablation.json").read_text())
    assert saved[1]["pairs_fraction"] == 0.5 and saved[1]["mode"] == "pairs"
    csv = pd.read_csv(out / "ablation.csv")
    assert list(csv["pairs_fraction"]) == pytest.approx(
        [r["pairs_fraction"] for r in rows], abs=1e-6
    )
    assert list(csv["pairs_connected"]) == [r["pairs_connected"] for r in rows]
    table = (out / "ablation.md").read_text()
    assert "pairs" in table.splitlines()[0] and "| without_past | " in table and "50.0%" in table


def test_relations_mode_keeps_the_old_dict_filter(stubbed: Trainer, tmp_path) -> None:
    rows = ablate(Config(), tmp_path / "abl", mode="relations")
    assert all(r["mode"] == "relations" for r in rows)
    # the shipped windows: every leave-one-out variant still connects every pair
    assert [r["pairs_fraction"] for r in rows] == [1.0] * 5
    prep = stubbed.calls[1]["prep"]  # without_past: speaker relations keep their past edges
    g = prep.graphs["train"][0]
    same = g["text", "same_speaker", "text"].edge_index
    assert bool((same[0] < same[1]).any())
    assert ("text", "past", "text") not in g.edge_types


def test_explicit_sets_in_pairs_mode(stubbed: Trainer, tmp_path, caplog) -> None:
    rows = ablate(Config(), tmp_path / "abl", "past+future,future+same_speaker+other_speaker")
    assert "only_past+future keeps past+future but no pair" in caplog.text
    # the full graph always leads, as the same-run baseline
    assert [r["variant"] for r in rows] == ["full", "only_past+future", "without_past"]
    assert rows[0]["pairs_fraction"] == 1.0
    # keeping only the temporal relations drops the speaker pairs, i.e. every pair
    assert rows[1]["pairs_connected"] == 0 and rows[1]["pairs_fraction"] == 0.0
    assert rows[2]["pairs_fraction"] == 0.5


def test_unknown_mode_is_refused(stubbed: Trainer, tmp_path) -> None:
    with pytest.raises(ErcgraphError, match=r"mode 'edges'.*pairs, relations"):
        ablate(Config(), tmp_path / "abl", mode="edges")
    assert not stubbed.calls


def test_resume_reuses_finished_variants_and_resumes_the_rest(
    stubbed: Trainer, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "abl"
    stubbed.fail = "without_future"
    with pytest.raises(KeyboardInterrupt):
        ablate(Config(), out)
    assert stubbed.names() == ["full", "without_past", "without_future"]
    with pytest.raises(ErcgraphError, match="already exists"):
        ablate(Config(), out)  # never overwritten without resume
    with pytest.raises(ErcgraphError, match=r"mode 'pairs'.*not 'relations'"):
        ablate(Config(), out, mode="relations", resume=True)

    stubbed.fail, stubbed.calls = None, []
    caplog.set_level(logging.INFO)
    rows = ablate(Config(), out, resume=True)
    assert stubbed.names() == ["without_future", "without_same_speaker", "without_other_speaker"]
    assert all(c["resume"] for c in stubbed.calls)
    assert [r["variant"] for r in rows] == LEAVE_ONE_OUT
    assert rows[0]["test_weighted_f1"]["mean"] == 51.0  # full: read back from its metrics.json
    assert "variant full: finished, reusing" in caplog.text
    assert "variant without_past: finished, reusing" in caplog.text


def test_resume_trains_on_when_the_config_grew(stubbed: Trainer, tmp_path) -> None:
    out = tmp_path / "abl"
    ablate(Config(), out, "past+future+same_speaker+other_speaker")
    longer = Config()
    longer.train.epochs += 5
    stubbed.calls = []
    ablate(longer, out, "past+future+same_speaker+other_speaker", resume=True)
    assert stubbed.names() == ["full"] and stubbed.calls[0]["resume"]


def test_resume_needs_an_ablation_folder(stubbed: Trainer, tmp_path) -> None:
    out = tmp_path / "abl"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ErcgraphError, match="not an ablation folder"):
        ablate(Config(), out, resume=True)
    ablate(Config(), tmp_path / "fresh", "none", resume=True)  # nothing there yet: starts
    assert stubbed.names() == ["full", "no_edges"]  # with its same-run baseline


def test_log_lines_name_the_variant(stubbed: Trainer, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO)
    ablate(Config(), tmp_path / "abl", "past+future+same_speaker+other_speaker,none")
    assert "ablation variant 1/2: full" in caplog.text
    assert "ablation variant 2/2: no_edges" in caplog.text
    # the trainer's own lines carry the variant name too
    assert "[full] seed 0 epoch 1: loss 0.5000" in caplog.messages
    assert "[no_edges] seed 0 epoch 1: loss 0.5000" in caplog.messages
    logging.getLogger("ercgraph.train").info("after")
    assert caplog.messages[-1] == "after"  # the tag is gone once the variant is done


def test_bar_chart_starts_at_zero(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import ercgraph.report as report
    from ercgraph.ablate import _bar_chart

    figs = []
    monkeypatch.setattr(report, "_save_fig", lambda fig, path: figs.append(fig))
    rows = [
        {
            "variant": name,
            "dev_weighted_f1": {"mean": 55.0 + k, "std": 0.5},
            "test_weighted_f1": {"mean": 57.0 - k, "std": 0.5},
            "pairs_fraction": 1.0 / (k + 1),
        }
        for k, name in enumerate(["full", "without_past"])
    ]
    _bar_chart(rows, tmp_path / "a.png")
    (ax,) = figs[0].axes
    assert ax.get_ylim()[0] == 0
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["full\n100% of pairs", "without_past\n50% of pairs"]
