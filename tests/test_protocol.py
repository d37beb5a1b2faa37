"""Evaluation protocols: folds by group, the cross-validation run directory, resume and fold
re-runs, and the metrics the literature reports (UA/WA, micro F1 without neutral, MAE)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ercgraph.config import load_config
from ercgraph.errors import ErcgraphError
from ercgraph.protocol import fold_corpus, group_values, make_folds
from tests.cli_helpers import cli

REPO = Path(__file__).resolve().parents[1]


# -- fold assignment ---------------------------------------------------------------------------
def test_actor_folds_are_contiguous_blocks_with_dev_from_the_next_block():
    groups = [str(a) for a in range(1, 25)]
    folds = make_folds(groups, 6, None, "actor")
    assert [f.test for f in folds[:2]] == [["1", "2", "3", "4"], ["5", "6", "7", "8"]]
    assert folds[0].dev == ["5", "6", "7", "8"]
    assert folds[5].dev == ["1", "2", "3", "4"]  # cyclic
    for f in folds:
        assert len(f.train) == 16
        assert not set(f.test) & set(f.dev) and not set(f.test) & set(f.train)
        assert not set(f.dev) & set(f.train)
    # every group is tested exactly once
    assert sorted(g for f in folds for g in f.test) == sorted(groups)


def test_leave_one_group_out_and_natural_sort():
    folds = make_folds(["s10", "s2", "s1", "s2"], None, None, "speaker")
    assert [f.test for f in folds] == [["s1"], ["s2"], ["s10"]]
    assert folds[0].dev == ["s2"] and folds[0].train == ["s10"]


def test_fewer_groups_than_folds_names_the_column_and_counts():
    with pytest.raises(
        ErcgraphError, match=r"column 'actor' has 3 group\(s\).*protocol.folds is 6"
    ):
        make_folds(["1", "2", "3"], 6, None, "actor")


def test_dev_groups_that_leave_no_training_group_are_refused():
    with pytest.raises(ErcgraphError, match="too few for 2 dev group"):
        make_folds(["a", "b", "c"], None, 2, "g")


def _toy_corpus(groups, dialogue_groups=None):
    from ercgraph.data.corpus import Corpus

    rows = []
    for d, g in enumerate(groups):
        for t in range(2):
            rows.append(
                {
                    "split": "train",
                    "dialogue_id": f"d{d}",
                    "turn": t,
                    "speaker": f"s{t}",
                    "label": "a" if (d + t) % 2 else "b",
                    "session": g if dialogue_groups is None else dialogue_groups[d][t],
                }
            )
    return Corpus(pd.DataFrame(rows), "toy", ("a", "b"))


def test_missing_group_values_are_counted_and_located():
    corpus = _toy_corpus(["1", None, "2"])
    with pytest.raises(ErcgraphError, match=r"'session' is empty in 2 of 6 rows \(first: row 2"):
        group_values(corpus, "session")


def test_a_dialogue_spanning_groups_is_refused():
    corpus = _toy_corpus(["1", "2"], dialogue_groups=[("1", "1"), ("2", "3")])
    with pytest.raises(ErcgraphError, match=r"dialogue 'd1' spans several 'session' groups"):
        group_values(corpus, "session")


def test_an_unknown_group_column_lists_the_columns():
    with pytest.raises(ErcgraphError, match="has no column 'actor'.*session"):
        group_values(_toy_corpus(["1", "2"]), "actor")


def test_fold_corpus_keeps_row_order_and_resplits_by_group():
    corpus = _toy_corpus(["1", "2", "3", "1"])
    groups, pooled = group_values(corpus, "session")
    fold = make_folds(list(groups[pooled]), None, None, "session")[0]
    fc = fold_corpus(corpus, groups, pooled, fold)
    assert fc.df["dialogue_id"].tolist() == corpus.df["dialogue_id"].tolist()
    by_dialogue = fc.df.groupby("dialogue_id")["split"].first().to_dict()
    assert by_dialogue == {"d0": "test", "d3": "test", "d1": "dev", "d2": "train"}


# -- a whole cross-validation from the CLI -----------------------------------------------------
def _write_grouped_table(root: Path, n_groups: int = 3, per_group: int = 12) -> None:
    """One-utterance dialogues in ``n_groups`` groups, two separable classes, features as .npy
    (text-free, so no encoder runs)."""
    rng = np.random.default_rng(0)
    rows, feats = [], []
    for g in range(n_groups):
        for i in range(per_group):
            label = ["calm", "angry"][i % 2]
            rows.append({"clip": f"g{g}_c{i}", "actor": f"a{g + 1}", "emotion": label})
            centre = 1.5 if label == "angry" else -1.5
            feats.append(rng.normal(centre, 1.0, size=6))
    (root / "toy").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(root / "toy" / "labels.csv", index=False)
    np.save(root / "toy" / "feats.npy", np.asarray(feats, dtype=np.float32))


def _cv_args(root: Path, tmp: Path, *extra: str) -> list[str]:
    cfg = tmp / "cv.yaml"
    cfg.write_text(
        """
data:
  reader: table
  path: toy/labels.csv
  columns: {dialogue_id: clip, speaker: actor, label: emotion}
  options: {split: train}
features:
  modalities: [audio]
  files:
    audio: {path: toy/feats.npy}
graph:
  builders: [{name: modality}]
model: {name: mlp, hidden: 8}
train: {epochs: 2, batch_size: 8, patience: 5, select_metric: unweighted_accuracy}
protocol: {name: group_kfold, group: speaker}
metrics: {headline: unweighted_accuracy}
"""
    )
    return [
        "train",
        "-c",
        str(cfg),
        "--data-root",
        str(root),
        "--cache-dir",
        str(tmp / "cache"),
        *extra,
    ]


def test_cross_validation_runs_every_fold_and_aggregates_over_folds(tmp_path, monkeypatch, capsys):
    import ercgraph.data.feature_files as ff

    root = tmp_path / "data"
    _write_grouped_table(root)
    calls = []
    real = ff.read_feature_file
    monkeypatch.setattr(ff, "read_feature_file", lambda *a: calls.append(a) or real(*a))
    out = tmp_path / "cv"
    assert cli(*_cv_args(root, tmp_path, "--out", str(out))) == 0
    assert len(calls) == 1  # features are read once, not once per fold
    # one edge cache entry serves every fold
    assert len(list((tmp_path / "cache" / "graphs").glob("*.safetensors"))) == 1
    folds = json.loads((out / "folds.json").read_text())
    assert [f["test"]["groups"] for f in folds["folds"]] == [["a1"], ["a2"], ["a3"]]
    assert [f["dev"]["groups"] for f in folds["folds"]] == [["a2"], ["a3"], ["a1"]]
    assert all(f["test"]["utterances"] == 12 for f in folds["folds"])
    m = json.loads((out / "metrics.json").read_text())
    assert m["folds_done"] == [0, 1, 2] and m["folds_missing"] == []
    per_fold = [
        json.loads((out / f"fold_{k}" / "metrics.json").read_text())["test"]["accuracy"]["mean"]
        for k in range(3)
    ]
    assert m["test"]["accuracy"]["mean"] == pytest.approx(np.mean(per_fold))
    assert m["test"]["accuracy"]["std"] == pytest.approx(np.std(per_fold, ddof=1))
    assert list(m["test"]["accuracy"]["per_fold"]) == ["0", "1", "2"]
    summary = (out / "summary.md").read_text()
    header = next(line for line in summary.splitlines() if line.startswith("| |"))
    assert header.startswith("| | unweighted_accuracy |")  # the headline metric leads
    # each fold is a run directory of its own, saved with its fold: evaluate re-splits alike
    saved = load_config(out / "fold_1" / "config.yaml")
    assert saved.protocol.fold == 1
    assert cli("evaluate", str(out), "--data-root", str(root)) == 2  # the folder: names a fold
    assert "cross-validation folder" in capsys.readouterr().err
    assert cli("evaluate", str(out / "fold_1"), "--data-root", str(root)) == 0
    rescored = json.loads((out / "fold_1" / "rescored.json").read_text())
    fold1 = json.loads((out / "fold_1" / "metrics.json").read_text())
    assert rescored["test"]["accuracy"]["mean"] == pytest.approx(fold1["test"]["accuracy"]["mean"])


def test_one_fold_alone_then_resume_completes_the_rest(tmp_path):
    root = tmp_path / "data"
    _write_grouped_table(root)
    out = tmp_path / "cv"
    assert cli(*_cv_args(root, tmp_path, "--out", str(out), "--fold", "1")) == 0
    assert sorted(p.name for p in out.glob("fold_*")) == ["fold_1"]
    m = json.loads((out / "metrics.json").read_text())
    assert m["folds_done"] == [1] and m["folds_missing"] == [0, 2]
    assert "Incomplete" in (out / "summary.md").read_text()
    done = (out / "fold_1" / "metrics.json").stat().st_mtime_ns
    # without --resume an existing cross-validation is never overwritten
    assert cli(*_cv_args(root, tmp_path, "--out", str(out))) == 2
    assert cli(*_cv_args(root, tmp_path, "--out", str(out), "--resume")) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["folds_done"] == [0, 1, 2]
    assert (out / "fold_1" / "metrics.json").stat().st_mtime_ns == done  # reused, not retrained


def test_fold_out_of_range_and_fold_without_cv_are_refused(tmp_path):
    root = tmp_path / "data"
    _write_grouped_table(root)
    assert cli(*_cv_args(root, tmp_path, "--out", str(tmp_path / "a"), "--fold", "7")) == 2
    code = cli(
        "train", "-c", str(REPO / "configs/meld_text.yaml"), "--fold", "0", "--out", str(tmp_path)
    )
    assert code == 2


def test_a_bad_feature_file_or_head_option_leaves_no_run_folder(tmp_path):
    root = tmp_path / "data"
    _write_grouped_table(root)
    for i, bad in enumerate(["features.files.audio.path=toy/none.npy", "metrics.exclude_label=x"]):
        out = tmp_path / f"bad{i}"
        assert cli(*_cv_args(root, tmp_path, "--out", str(out), "--set", bad)) == 2
        assert not out.exists()  # a corrected command starts afresh, no --resume needed


def test_ablate_refuses_cross_validation_configs(tmp_path, capsys):
    root = tmp_path / "data"
    _write_grouped_table(root)
    args = _cv_args(root, tmp_path, "--out", str(tmp_path / "abl"))
    assert cli("ablate", *args[1:]) == 2
    assert "ablate runs on the split protocol" in capsys.readouterr().err
    assert not (tmp_path / "abl").exists()


def test_group_kfold_refuses_text_finetuning_and_split_refuses_group():
    with pytest.raises(ErcgraphError, match="finetune cannot be combined"):
        load_config(
            None,
            [
                "protocol={name: group_kfold, group: session}",
                "features.text.finetune.enabled=true",
            ],
        )
    with pytest.raises(ErcgraphError, match="protocol.group is only read by"):
        load_config(None, ["protocol.group=session"])
    with pytest.raises(ErcgraphError, match="needs protocol.group"):
        load_config(None, ["protocol.name=group_kfold"])


# -- IEMOCAP leave-one-session-out on the layout fixture ---------------------------------------
def test_iemocap_leave_one_session_out_keeps_test_sessions_out_of_train_and_dev(tmp_path):
    from ercgraph.pipeline import read_corpus
    from tests.data.iemocap_fixture import write_iemocap_fixture

    root = tmp_path / "data"
    write_iemocap_fixture(root)
    cfg = load_config(REPO / "configs/iemocap_loso.yaml", data_root=str(root))
    corpus, _ = read_corpus(cfg)
    groups, pooled = group_values(corpus, "session")
    folds = make_folds(list(groups[pooled]), None, None, "session")
    assert len(folds) == 5
    session_of = corpus.df.groupby("dialogue_id")["session"].first()
    for fold in folds:
        fc = fold_corpus(corpus, groups, pooled, fold)
        split_of = fc.df.groupby("dialogue_id")["split"].first()
        test_sessions = set(session_of[split_of == "test"].astype(str))
        assert test_sessions == set(fold.test) and len(test_sessions) == 1
        pool = split_of[split_of.isin(["train", "dev"])].index
        assert not test_sessions & set(session_of[pool].astype(str))
        assert set(split_of) == {"train", "dev", "test"}


def test_iemocap_loso_preset_runs_five_folds_from_the_cli(tmp_path):
    from tests.data.iemocap_fixture import write_iemocap_fixture

    root = tmp_path / "data"
    write_iemocap_fixture(root)
    out = tmp_path / "loso"
    code = cli(
        "train",
        "-c",
        str(REPO / "configs/iemocap_4class_loso.yaml"),
        "--data-root",
        str(root),
        "--cache-dir",
        str(tmp_path / "c"),
        "--out",
        str(out),
        "--set",
        "features.audio.encoder=fbank:16",
        "--set",
        "train.epochs=1",
        "--set",
        "model.hidden=16",
    )
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["folds"] == 5 and m["folds_done"] == [0, 1, 2, 3, 4]
    assert m["labels"] == ["hap", "sad", "neu", "ang"]
    assert m["headline"] == "unweighted_accuracy"
    assert {"accuracy", "unweighted_accuracy"} <= set(m["test"])


# -- metrics ----------------------------------------------------------------------------------
def test_micro_f1_leaves_out_the_excluded_label():
    from ercgraph.report import score

    labels = ["neutral", "joy", "anger"]
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 0, 2, 1])
    s = score(y, p, labels, exclude_label="neutral")
    # over joy and anger: TP = 2 (rows 2, 4), FP = 2 (rows 1, 5), FN = 2 (rows 3, 5)
    assert s["micro_f1"] == pytest.approx(50.0)
    assert score(y, p, labels)["micro_f1"] == pytest.approx(s["accuracy"])


def test_an_exclude_label_outside_the_vocabulary_lists_the_labels():
    from ercgraph.heads.emotion import EmotionHead

    corpus = _toy_corpus(["1", "2"])
    with pytest.raises(ErcgraphError, match=r"'neutral' is not a label.*\['a', 'b'\]"):
        EmotionHead.fit(corpus, exclude_label="neutral")


def test_a_select_metric_the_heads_cannot_produce_lists_the_valid_ones():
    from ercgraph.pipeline import check_config

    cfg = load_config(None, ["train.select_metric=ccc"])
    with pytest.raises(ErcgraphError, match=r"'ccc' is not produced.*unweighted_accuracy"):
        check_config(cfg)


def test_mae_is_selectable_and_minimised():
    from ercgraph.heads.regression import RegressionHead
    from ercgraph.metrics import higher_is_better

    assert "mae" in RegressionHead.selectable() and "mae_valence" in RegressionHead.selectable()
    assert not higher_is_better("mae") and not higher_is_better("mae_arousal")
    assert higher_is_better("ccc") and higher_is_better("macro_f1")
