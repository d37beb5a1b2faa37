"""The run directory is self-contained and safe: loss terms from --import are logged, predict and
evaluate need no cache, a second writer is refused, a changed label map is refused, dotted paths
are checked before they are called, and the new heads train from shipped configs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd

from tests.cli_helpers import cli

REPO = Path(__file__).resolve().parents[1]
FAST = ["--set", "train.epochs=2", "--set", "model.hidden=16"]


def train(out, root, cache, config="meld_text", *extra) -> int:
    return cli(
        "train",
        "-c",
        str(REPO / f"configs/{config}.yaml"),
        "--data-root",
        str(root),
        "--cache-dir",
        str(cache),
        "--out",
        str(out),
        *FAST,
        *extra,
    )


def test_a_users_loss_term_from_import_trains_and_is_logged(tmp_path, meld_slice, cache):
    plugin = tmp_path / "my_loss.py"
    plugin.write_text(
        textwrap.dedent('''
        from ercgraph.losses import LossTerm
        from ercgraph.registry import LOSSES

        @LOSSES.register("logit_l2")
        class LogitL2(LossTerm):
            """Keeps logits small (a toy regulariser)."""
            REQUIRES = ("logits",)

            def __init__(self, scale: float = 1.0):
                super().__init__()
                self.scale = scale

            def forward(self, out, batch):
                return self.scale * out.logits.pow(2).mean()
    ''')
    )
    out = tmp_path / "run"
    code = train(
        out,
        meld_slice,
        cache,
        "meld_text",
        "--import",
        str(plugin),
        "--set",
        "loss=[{name: ce}, {name: logit_l2, weight: 0.1, options: {scale: 2.0}}]",
    )
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["loss_terms"] == {"ce": 1.0, "logit_l2": 0.1}
    assert {"train_loss_ce", "train_loss_logit_l2", "dev_loss_logit_l2"} <= set(
        m["loss_at_best_epoch"]
    )
    hist = json.loads((out / "seed_0" / "result.json").read_text())["history"]
    assert all(h["train_loss_logit_l2"] > 0 for h in hist)
    # the run names the plug-in; reading it back without --import is refused, with it works
    # built-in names only: logit_l2 is not needed to score
    assert cli("evaluate", str(out), "--data-root", str(meld_slice)) == 0


def test_predict_and_evaluate_need_no_cache(tmp_path, meld_slice):
    cache = tmp_path / "cache"
    out = tmp_path / "ft"
    code = train(
        out,
        meld_slice,
        cache,
        "meld_text_finetuned",
        "--set",
        "features.text.finetune.epochs=1",
    )
    assert code == 0
    assert (out / "encoder" / "config.json").is_file() and (
        out / "normaliser.safetensors"
    ).is_file()
    info = json.loads((out / "features.json").read_text())["text"]
    assert len(info["encoder_sha256"]) >= 16
    assert {"model.safetensors", "config.json"} <= set(info["encoder_files"])  # full SHA-256
    before = json.loads((out / "metrics.json").read_text())["test"]["weighted_f1"]["mean"]
    shutil.rmtree(cache)
    table = meld_slice / "meld" / "test_sent_emo.csv"
    pred = tmp_path / "p.csv"
    mapping = [
        "--column",
        "dialogue_id=Dialogue_ID",
        "--column",
        "speaker=Speaker",
        "--column",
        "text=Utterance",
        "--column",
        "label=Emotion",
    ]
    assert cli("predict", str(out), str(table), *mapping, "--out", str(pred)) == 0
    assert len(pd.read_csv(pred)) == len(pd.read_csv(table))
    shutil.rmtree(cache, ignore_errors=True)
    # the data root and the cache come from the user, never from the run's saved config
    assert cli("evaluate", str(out), "--data-root", str(meld_slice), "--cache-dir", str(cache)) == 0
    again = json.loads((out / "rescored.json").read_text())["test"]["weighted_f1"]["mean"]
    assert abs(again - before) < 1e-6
    shutil.rmtree(out / "encoder")
    assert cli("predict", str(out), str(table), *mapping, "--out", str(tmp_path / "q.csv")) == 2


def test_second_writer_is_refused_naming_the_holder(tmp_path, meld_slice, cache, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from ercgraph.rundir import locked
            with locked(__import__("pathlib").Path({str(out)!r})):
                print("held", flush=True)
                time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert train(out, meld_slice, cache) == 2
        err = capsys.readouterr().err
        assert "is in use by pid" in err
        assert not (out / "config.yaml").exists()
    finally:
        holder.kill()
        holder.wait()


def test_evaluate_refuses_a_changed_label_map(tmp_path, meld_slice, cache, capsys):
    rows = []
    for split in ("train", "dev", "test"):
        df = pd.read_csv(meld_slice / "meld" / f"{split}_sent_emo.csv")
        rows.append(
            pd.DataFrame(
                {
                    "split": split,
                    "dialogue_id": split + "_" + df["Dialogue_ID"].astype(str),
                    "speaker": df["Speaker"],
                    "text": df["Utterance"],
                    "label": df["Emotion"],
                }
            )
        )
    table = tmp_path / "conv.csv"
    pd.concat(rows).to_csv(table, index=False)
    out = tmp_path / "run"
    code = train(
        out,
        meld_slice,
        cache,
        "meld_text",
        "--set",
        "data.reader=table",
        "--set",
        f"data.path={table}",
    )
    assert code == 0
    df = pd.read_csv(table)
    df["label"] = df["label"].replace({"joy": "Joy"})  # differs only by case
    df.to_csv(table, index=False)
    capsys.readouterr()
    assert cli("evaluate", str(out)) == 2
    err = capsys.readouterr().err
    assert "differ from the run's label map" in err and "'Joy'" in err and "'joy'" in err
    assert "only by case or whitespace" in err
    assert not (out / "rescored.json").exists()


def test_a_dotted_path_is_checked_before_it_is_called(tmp_path, meld_slice, cache, capsys):
    pwned = tmp_path / "pwned"
    out = tmp_path / "run"
    code = train(
        out,
        meld_slice,
        cache,
        "meld_text",
        "--set",
        f'graph.builders=[{{name: "os:system", command: "touch {pwned}"}}]',
    )
    assert code == 2 and not pwned.exists()
    assert "not a subclass of ercgraph.graphs.base.GraphBuilder" in capsys.readouterr().err


def test_prepare_builds_then_reuses_and_list_covers_every_registry(tmp_path, meld_slice, capsys):
    args = [
        "prepare",
        "-c",
        str(REPO / "configs/meld_text.yaml"),
        "--data-root",
        str(meld_slice),
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    assert cli(*args) == 0
    first = capsys.readouterr().out
    assert "0 reused" in first and "graphs: 50 dialogues" in first
    assert cli(*args) == 0
    assert "0 done" in capsys.readouterr().out
    assert cli(*args, "--force") == 0
    assert "0 reused" in capsys.readouterr().out
    assert cli("list") == 0
    listing = capsys.readouterr().out
    for section in ("readers:", "builders:", "models:", "fusions:", "heads:", "losses:"):
        assert section in listing
    for name in ("gated", "sentiment", "regression", "ccc", "reconstruction"):
        assert name in listing


def test_sentiment_config_reports_both_heads(tmp_path, meld_slice, cache):
    out = tmp_path / "sent"
    assert train(out, meld_slice, cache, "meld_text_sentiment") == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["heads"] == ["emotion", "sentiment"] and "sentiment_weighted_f1" in m["test"]
    assert "weighted_f1" in m["test"] and m["loss_terms"] == {"ce": 1.0, "sentiment": 0.5}


def test_regression_head_without_its_columns_fails_before_extraction(tmp_path, meld_slice, capsys):
    cache = tmp_path / "c"
    code = train(
        tmp_path / "r",
        meld_slice,
        cache,
        "meld_text",
        "--set",
        "heads=[regression]",
        "--set",
        "loss=[{name: ccc}]",
        "--set",
        "train.select_metric=ccc",
    )
    assert code == 2
    assert "looked for columns ['valence', 'arousal', 'dominance']" in capsys.readouterr().err
    assert not (cache / "features").exists()


def test_a_select_metric_no_head_produces_lists_the_valid_ones(tmp_path, meld_slice, capsys):
    code = train(
        tmp_path / "r", meld_slice, tmp_path / "c", "meld_text", "--set", "train.select_metric=ccc"
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "'ccc' is not produced" in err and "weighted_f1" in err


def test_emobank_regression_config_trains_and_reports_ccc(tmp_path, data_root, cache):
    df = pd.read_csv(data_root / "emobank" / "emobank.csv")
    small = pd.concat(
        [df[df["split"] == s].head(n) for s, n in (("train", 300), ("dev", 80), ("test", 80))]
    )
    root = tmp_path / "data"
    (root / "emobank").mkdir(parents=True)
    small.to_csv(root / "emobank" / "emobank.csv", index=False)
    out = tmp_path / "eb"
    assert train(out, root, cache, "emobank_regression") == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["select_metric"] == "ccc" and m["heads"] == ["regression"]
    for key in ("ccc", "ccc_valence", "pearson_arousal", "mae_dominance"):
        assert key in m["test"]
    assert -1 <= m["test"]["ccc"]["mean"] <= 1
    assert "accuracy" not in m["test"]


def test_evaluate_names_the_import_a_run_needs_and_runs_none_by_itself(
    tmp_path, meld_slice, cache, capsys
):
    plugin = tmp_path / "my_builders.py"
    marker = tmp_path / "imported"
    plugin.write_text(
        textwrap.dedent(f"""
        import pathlib
        import torch
        from ercgraph.graphs.base import IntraModalBuilder
        from ercgraph.registry import BUILDERS

        pathlib.Path({str(marker)!r}).touch()

        @BUILDERS.register("first_turn_test")
        class FirstTurn(IntraModalBuilder):
            EDGE_TYPES = ("from_first",)

            def forward_relations(self, dialogues):
                first = dialogues.ptr[:-1][dialogues.batch]
                dst = torch.arange(dialogues.num_utterances)
                keep = first != dst
                return {{"from_first": torch.stack([first[keep], dst[keep]])}}
        """)
    )
    out = tmp_path / "run"
    code = train(
        out,
        meld_slice,
        cache,
        "meld_text",
        "--import",
        str(plugin),
        "--set",
        "graph.builders=[first_turn_test]",
    )
    assert code == 0
    marker.unlink()
    from ercgraph.registry import BUILDERS

    BUILDERS._items.pop("first_turn_test")  # a fresh process would not know it either
    capsys.readouterr()
    root = ["--data-root", str(meld_slice)]
    assert cli("evaluate", str(out), *root) == 2
    err = capsys.readouterr().err
    assert f"--import {plugin.resolve()}" in err and not marker.exists()
    assert cli("evaluate", str(out), *root, "--import", str(plugin)) == 0 and marker.exists()
