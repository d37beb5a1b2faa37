"""End to end from the CLI on a small slice of the real MELD CSVs."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.cli_helpers import cli

REPO = Path(__file__).parents[1]
FAST = ["--set", "train.epochs=2", "--set", "model.hidden=32", "--set", "train.patience=5"]


def train(out, root, cache, *extra) -> int:
    return cli(
        "train",
        "-c",
        str(REPO / "configs/meld_text.yaml"),
        "--data-root",
        str(root),
        "--cache-dir",
        str(cache),
        "--out",
        str(out),
        *FAST,
        *extra,
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, meld_slice, cache):
    out = tmp_path_factory.mktemp("runs") / "r"
    assert train(out, meld_slice, cache, "--seeds", "0,1") == 0
    return out


def test_run_directory_holds_the_report(run_dir):
    m = json.loads((run_dir / "metrics.json").read_text())
    for split in ("dev", "test"):
        for key in ("accuracy", "weighted_f1", "macro_f1"):
            assert set(m[split][key]) == {"mean", "std", "per_seed"}
            assert set(m[split][key]["per_seed"]) == {"0", "1"}
            assert 0 <= m[split][key]["mean"] <= 100
        assert list(m[split]["per_class"]) == [
            "neutral",
            "surprise",
            "fear",
            "sadness",
            "joy",
            "disgust",
            "anger",
        ]
        assert set(m[split]["per_class"]["fear"]) >= {"precision", "recall", "f1", "support"}
    assert m["test"]["per_class"]["neutral"]["support"] > 0
    for name in (
        "summary.md",
        "confusion_test.png",
        "learning_curve.png",
        "config.yaml",
        "environment.json",
        "seed_0/best.safetensors",
        "seed_1/last.pt",
    ):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "confusion_test.png").read_bytes()[:4] == b"\x89PNG"
    env = json.loads((run_dir / "environment.json").read_text())
    assert env["versions"]["torch"] and "git_revision" in env
    summary = (run_dir / "summary.md").read_text()
    assert "fear" in summary and "disgust" in summary and "dev" in summary


def test_selection_uses_dev_only(run_dir):
    for seed in (0, 1):
        r = json.loads((run_dir / f"seed_{seed}" / "result.json").read_text())
        dev = [h["dev_weighted_f1"] for h in r["history"]]
        assert r["best_epoch"] == 1 + dev.index(max(dev))
        assert not any(k.startswith("test") for h in r["history"] for k in h)


def test_evaluate_rescores_the_saved_run(run_dir, meld_slice, monkeypatch, cache):
    monkeypatch.setenv("ERCGRAPH_DATA", str(meld_slice))
    monkeypatch.setenv("ERCGRAPH_CACHE", str(cache))
    # the saved config records the data root it was trained with
    assert cli("evaluate", str(run_dir)) == 0
    saved = json.loads((run_dir / "metrics.json").read_text())
    again = json.loads((run_dir / "rescored.json").read_text())
    for split in ("dev", "test"):
        assert again[split]["weighted_f1"]["mean"] == pytest.approx(
            saved[split]["weighted_f1"]["mean"], abs=1e-6
        )


def test_resume_continues_an_interrupted_run_identically(tmp_path, meld_slice, cache):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert train(straight, meld_slice, cache, "--set", "train.epochs=3") == 0
    assert train(resumed, meld_slice, cache, "--set", "train.epochs=1") == 0
    (resumed / "seed_0" / "result.json").unlink()  # as if killed before the seed finished
    assert train(resumed, meld_slice, cache, "--set", "train.epochs=3", "--resume") == 0
    a = json.loads((straight / "seed_0" / "result.json").read_text())["history"]
    b = json.loads((resumed / "seed_0" / "result.json").read_text())["history"]
    assert [h["epoch"] for h in b] == [1, 2, 3]
    for x, y in zip(a, b):
        assert x["train_loss"] == pytest.approx(y["train_loss"], rel=1e-5)
        assert x["dev_weighted_f1"] == pytest.approx(y["dev_weighted_f1"], abs=1e-6)


def test_existing_run_directory_is_never_overwritten(run_dir, meld_slice, cache, capsys):
    before = (run_dir / "metrics.json").read_bytes()
    assert train(run_dir, meld_slice, cache) == 2
    assert "already exists" in capsys.readouterr().err
    assert (run_dir / "metrics.json").read_bytes() == before


def test_config_typo_is_one_line_error(tmp_path, meld_slice, cache, capsys):
    code = train(tmp_path / "x", meld_slice, cache, "--set", "train.epocs=3")
    err = capsys.readouterr().err.strip()
    assert code == 2 and "train.epocs" in err and "epochs" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_wrong_data_root(tmp_path, cache, capsys):
    code = train(tmp_path / "x", tmp_path / "nowhere", cache)
    err = capsys.readouterr().err
    assert code == 2 and "nowhere" in err


def test_unknown_edge_type_names_it(tmp_path, meld_slice, cache, capsys):
    code = train(tmp_path / "x", meld_slice, cache, "--set", "graph.edge_types=[past,sideways]")
    err = capsys.readouterr().err
    assert code == 2 and "sideways" in err and "future" in err


def test_custom_builder_through_import_flag(tmp_path, meld_slice, cache):
    plugin = tmp_path / "my_builder.py"
    plugin.write_text(
        "import torch\n"
        "from ercgraph.graphs.base import IntraModalBuilder\n"
        "from ercgraph.registry import BUILDERS\n\n"
        "@BUILDERS.register('first_turn')\n"
        "class FirstTurnBuilder(IntraModalBuilder):\n"
        "    EDGE_TYPES = ('from_first',)\n"
        "    def forward_relations(self, dialogues):\n"
        "        first = dialogues.ptr[:-1][dialogues.batch]\n"
        "        keep = first != torch.arange(dialogues.num_utterances)\n"
        "        return {'from_first': torch.stack([first[keep],\n"
        "                 torch.arange(dialogues.num_utterances)[keep]])}\n"
    )
    out = tmp_path / "run"
    code = train(
        out, meld_slice, cache, "--import", str(plugin), "--set", "graph.builders=[first_turn]"
    )
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["edge_types"] == ["text|from_first|text"]


def test_root_train_py_shim_accepts_the_same_arguments():
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "--seeds" in proc.stdout and "--resume" in proc.stdout


def test_help_is_cheap():
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, ercgraph.cli; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.strip() == "False"


@pytest.fixture()
def conversations(tmp_path, meld_slice):
    """New conversations in a user's own layout (MELD test dialogues, renamed columns)."""
    df = pd.read_csv(meld_slice / "meld" / "test_sent_emo.csv")
    df = df.rename(
        columns={
            "Utterance": "utt",
            "Speaker": "who",
            "Dialogue_ID": "conv",
            "Utterance_ID": "idx",
            "Emotion": "gold",
        }
    )
    path = tmp_path / "conversations.csv"
    df[["conv", "idx", "who", "utt", "gold"]].to_csv(path, index=False)
    return path, df


MAP = [
    "--column",
    "dialogue_id=conv",
    "--column",
    "turn=idx",
    "--column",
    "speaker=who",
    "--column",
    "text=utt",
]


def test_predict_unlabelled_conversations(run_dir, conversations, tmp_path, monkeypatch, cache):
    monkeypatch.setenv("ERCGRAPH_CACHE", str(cache))
    path, df = conversations
    out = tmp_path / "pred.csv"
    assert cli("predict", str(run_dir), str(path), *MAP, "--out", str(out)) == 0
    pred = pd.read_csv(out)
    labels = ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
    assert len(pred) == len(df)
    assert list(pred.columns[:4]) == ["dialogue_id", "turn", "speaker", "text"]
    assert set(pred["predicted"]) <= set(labels)
    probs = pred[[f"prob_{k}" for k in labels]].to_numpy()
    assert abs(probs.sum(1) - 1).max() < 1e-4
    assert (probs.argmax(1) == [labels.index(p) for p in pred["predicted"]]).all()
    assert "label" not in pred.columns
    # the same utterance keys come back, in dialogue/turn order
    assert sorted(zip(pred["dialogue_id"].astype(str), pred["turn"])) == sorted(
        zip(df["conv"].astype(str), df["idx"])
    )


def test_predict_with_labels_reports_accuracy(
    run_dir, conversations, tmp_path, monkeypatch, cache, capsys
):
    monkeypatch.setenv("ERCGRAPH_CACHE", str(cache))
    path, _ = conversations
    out = tmp_path / "pred.csv"
    assert (
        cli("predict", str(run_dir), str(path), *MAP, "--column", "label=gold", "--out", str(out))
        == 0
    )
    assert "accuracy against the given labels" in capsys.readouterr().out
    assert "label" in pd.read_csv(out).columns


def test_predict_input_without_text_fails_clearly(run_dir, conversations, tmp_path, capsys):
    path, df = conversations
    df[["conv", "idx", "who"]].to_csv(tmp_path / "notext.csv", index=False)
    code = cli(
        "predict",
        str(run_dir),
        str(tmp_path / "notext.csv"),
        "--column",
        "dialogue_id=conv",
        "--column",
        "turn=idx",
        "--column",
        "speaker=who",
        "--out",
        str(tmp_path / "p.csv"),
    )
    err = capsys.readouterr().err
    assert code == 2 and "'text'" in err and not (tmp_path / "p.csv").exists()


def test_predict_without_checkpoint(tmp_path, run_dir, conversations, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    for ckpt in broken.glob("seed_*/best.safetensors"):
        ckpt.unlink()
    code = cli("predict", str(broken), str(conversations[0]), *MAP)
    err = capsys.readouterr().err
    assert code == 2 and "did not finish" in err and "best.safetensors" in err


def test_predict_never_overwrites(run_dir, conversations, tmp_path, capsys):
    out = tmp_path / "mine.csv"
    out.write_text("precious\n")
    assert cli("predict", str(run_dir), str(conversations[0]), *MAP, "--out", str(out)) == 2
    assert out.read_text() == "precious\n"


def test_ablate_runs_variants_on_shared_features_and_graphs(
    tmp_path, meld_slice, cache, monkeypatch
):
    import ercgraph.encoders.extract as extract
    import ercgraph.graphs.build as build

    calls = {"features": 0, "graphs": 0}
    real_features, real_graphs = extract.extract_text_features, build.build_graph_set

    def count(key, fn):
        def wrapped(*a, **k):
            calls[key] += 1
            return fn(*a, **k)

        return wrapped

    monkeypatch.setattr(extract, "extract_text_features", count("features", real_features))
    monkeypatch.setattr(build, "build_graph_set", count("graphs", real_graphs))
    out = tmp_path / "abl"
    code = cli(
        "ablate",
        "-c",
        str(REPO / "configs/meld_text.yaml"),
        "--data-root",
        str(meld_slice),
        "--cache-dir",
        str(cache),
        "--out",
        str(out),
        "--seeds",
        "0,1",
        *FAST,
    )
    assert code == 0
    assert calls == {"features": 1, "graphs": 1}
    table = (out / "ablation.md").read_text()
    for name in (
        "full",
        "without_past",
        "without_future",
        "without_same_speaker",
        "without_other_speaker",
    ):
        assert f"| {name} |" in table
    assert "fear" in table and "disgust" in table and "±" in table
    csv = pd.read_csv(out / "ablation.csv")
    assert len(csv) == 5 and "test_disgust_f1_mean" in csv.columns
    assert (out / "ablation.png").read_bytes()[:4] == b"\x89PNG"
    m = json.loads((out / "without_past" / "metrics.json").read_text())
    assert "text|past|text" not in m["edge_types"] and "text|future|text" in m["edge_types"]


def test_ablate_explicit_sets_and_unknown_type(tmp_path, meld_slice, cache, capsys):
    base = [
        "ablate",
        "-c",
        str(REPO / "configs/meld_text.yaml"),
        "--data-root",
        str(meld_slice),
        "--cache-dir",
        str(cache),
        "--seeds",
        "0",
        *FAST,
    ]
    out = tmp_path / "abl"
    assert cli(*base, "--out", str(out), "--edge-types", "past+future,none") == 0
    csv = pd.read_csv(out / "ablation.csv")
    # the full graph is added as the same-run baseline
    assert list(csv["edge_types"]) == [
        "past+future+same_speaker+other_speaker",
        "past+future",
        "none",
    ]
    code = cli(*base, "--out", str(tmp_path / "b"), "--edge-types", "past+sideways")
    err = capsys.readouterr().err
    assert code == 2 and "sideways" in err and "same_speaker" in err


def test_show_graph_draws_one_dialogue(tmp_path, meld_slice, capsys):
    out = tmp_path / "g.png"
    code = cli(
        "show-graph",
        "-c",
        str(REPO / "configs/meld_text.yaml"),
        "--data-root",
        str(meld_slice),
        "--dialogue",
        "train_1",
        "--out",
        str(out),
        "--set",
        "features.modalities=[text]",
    )
    assert code == 0 and out.read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    # train_1 has 7 utterances; windows of 4 give 18 past and 18 future edges
    assert "past 18" in printed and "future 18" in printed


def test_show_graph_unknown_dialogue(tmp_path, meld_slice, capsys):
    code = cli(
        "show-graph",
        "-c",
        str(REPO / "configs/meld_text.yaml"),
        "--data-root",
        str(meld_slice),
        "--dialogue",
        "train_1x",
        "--out",
        str(tmp_path / "g.png"),
    )
    err = capsys.readouterr().err
    assert code == 2 and "train_1x" in err and "train_1" in err
    assert not (tmp_path / "g.png").exists()


def test_list_prints_builders_with_edge_types(capsys):
    assert cli("list", "builders") == 0
    out = capsys.readouterr().out
    assert "temporal" in out and "past, future" in out and "cross_modal" in out
    assert cli("list", "losses") == 0
    out = capsys.readouterr().out
    for name in ("ce", "class_balanced", "focal", "logit_adjusted"):
        assert name in out
    assert cli("list", "samplers") == 0 and "class_aware" in capsys.readouterr().out
    assert cli("list", "models") == 0 and "dialoguegcn" in capsys.readouterr().out


@pytest.mark.parametrize("config", ["meld_mlp", "meld_dialoguegcn", "meld_text_finetuned"])
def test_every_shipped_config_trains_on_the_slice(config, tmp_path, meld_slice, cache):
    extra = ["--set", "features.text.finetune.epochs=1"] if "finetuned" in config else []
    out = tmp_path / config
    code = cli(
        "train",
        "-c",
        str(REPO / f"configs/{config}.yaml"),
        "--data-root",
        str(meld_slice),
        "--cache-dir",
        str(cache),
        "--out",
        str(out),
        "--set",
        "train.epochs=1",
        *extra,
    )
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert 0 < m["test"]["weighted_f1"]["mean"] <= 100
    info = json.loads((out / "features.json").read_text())["text"]
    if "finetuned" in config:
        assert info["finetuned_path"] and Path(info["finetuned_path"], "finetune.json").is_file()
    else:
        assert info["finetuned_path"] is None


def test_extract_computes_then_reuses(tmp_path, meld_slice, capsys):
    args = [
        "extract",
        "-c",
        str(REPO / "configs/meld_text.yaml"),
        "--data-root",
        str(meld_slice),
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    assert cli(*args) == 0
    first = capsys.readouterr().out
    assert cli(*args) == 0
    second = capsys.readouterr().out
    n = sum(
        len(pd.read_csv(meld_slice / "meld" / f"{s}_sent_emo.csv"))
        for s in ("train", "dev", "test")
    )
    assert f"{n} utterances, dim 384; {n} done, 0 failed, 0 reused" in first
    assert f"0 done, 0 failed, {n} reused" in second


@pytest.mark.parametrize("layout", ["mmgcn_iemocap", "sdt_meld"])
def test_train_three_modalities_from_a_feature_pickle(layout, tmp_path, cache):
    """text/audio/visual nodes with cross_modal edges, features straight from the pickle."""
    from tests.data.pickle_fixtures import WRITERS

    fx = WRITERS[layout](tmp_path)
    out = tmp_path / "run"
    code = cli(
        "train",
        "--cache-dir",
        str(cache),
        "--out",
        str(out),
        "--set",
        "data.reader=pickle",
        "--set",
        f"data.path={fx.path}",
        "--set",
        "features.modalities=[text,audio,visual]",
        "--set",
        "graph.builders=[temporal, speaker, modality]",
        "--set",
        "train.epochs=2",
        "--set",
        "model.hidden=16",
    )
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert "text|cross_modal|audio" in m["edge_types"]
    assert "visual|past|visual" in m["edge_types"]
    dims = json.loads((out / "model.json").read_text())["in_dims"]
    expected = {
        m: next(iter(fx.arrays[field].values())).shape[1] for m, field in fx.modalities.items()
    }
    assert dims == expected and set(dims) == {"text", "audio", "visual"}


GOOD = (
    "split,dialogue_id,turn,speaker,text,label\n"
    "train,a,0,x,hello there,joy\ntrain,a,1,y,oh no,sadness\n"
    "dev,b,0,x,fine,joy\ntest,c,0,y,bad,sadness\n"
)
BAD_TABLES = {
    "missing_column": (GOOD.replace("speaker,", "who,"), "'speaker'"),
    "unknown_label": (GOOD.replace("test,c,0,y,bad,sadness", "test,c,0,y,bad,rage"), "'rage'"),
    "duplicate_turn": (GOOD.replace("train,a,1,", "train,a,0,"), "duplicate"),
    "empty_file": ("", "empty"),
    "empty_utterance": (GOOD.replace("oh no", ""), "text"),
}


@pytest.mark.parametrize("case", [*BAD_TABLES, "not_utf8"])
def test_bad_tables_fail_in_one_line_and_change_nothing(case, tmp_path, cache, capsys):
    path = tmp_path / "conv.csv"
    if case == "not_utf8":
        path.write_bytes(GOOD.replace("hello there", "caf\xe9").encode("latin-1"))
        expected = "UTF-8"
    else:
        path.write_text(BAD_TABLES[case][0])
        expected = BAD_TABLES[case][1]
    before = path.read_bytes()
    code = cli(
        "train",
        "--cache-dir",
        str(cache),
        "--out",
        str(tmp_path / "run"),
        "--set",
        "data.reader=table",
        "--set",
        f"data.path={path}",
    )
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and expected in err and "conv.csv" in err
    assert path.read_bytes() == before
    assert not (tmp_path / "run").exists()


def test_resume_trains_a_finished_run_longer(tmp_path, meld_slice, cache):
    out = tmp_path / "r"
    assert train(out, meld_slice, cache, "--set", "train.epochs=1") == 0
    assert train(out, meld_slice, cache, "--set", "train.epochs=3", "--resume") == 0
    history = json.loads((out / "seed_0" / "result.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]


def test_resume_needs_a_run_directory(tmp_path, meld_slice, cache, capsys):
    assert cli("train", "-c", str(REPO / "configs/meld_text.yaml"), "--resume") == 2
    assert "--resume needs --out" in capsys.readouterr().err
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert train(foreign, meld_slice, cache, "--resume") == 2
    assert "not a run directory" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_unfinished_seeds_are_not_used_for_prediction(tmp_path, run_dir, conversations, capsys):
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(run_dir, partial)
    (partial / "seed_1" / "result.json").unlink()
    assert cli("predict", str(partial), str(conversations[0]), *MAP) == 2
    assert "did not finish" in capsys.readouterr().err


def test_show_graph_never_overwrites(tmp_path, meld_slice, capsys):
    out = tmp_path / "g.png"
    out.write_bytes(b"mine")
    code = cli(
        "show-graph",
        "-c",
        str(REPO / "configs/meld_text.yaml"),
        "--data-root",
        str(meld_slice),
        "--dialogue",
        "train_1",
        "--out",
        str(out),
    )
    assert code == 2 and out.read_bytes() == b"mine"


def test_unknown_select_metric(tmp_path, meld_slice, cache, capsys):
    assert train(tmp_path / "x", meld_slice, cache, "--set", "train.select_metric=macro-f1") == 2
    assert "train.select_metric" in capsys.readouterr().err
