"""The shipped multimodal configs run end to end on layout-faithful fixtures, and `export`
round-trips features through the MMGCN layout."""

import json
from pathlib import Path

import torch

from tests.cli_helpers import cli
from tests.data.iemocap_fixture import write_iemocap_fixture
from tests.data.pickle_fixtures import WRITERS

REPO = Path(__file__).parents[1]


def test_iemocap_config_on_the_official_layout(tmp_path):
    root = tmp_path / "data"
    write_iemocap_fixture(root)
    out = tmp_path / "run"
    code = cli(
        "train",
        "-c",
        str(REPO / "configs/iemocap.yaml"),
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
    assert m["labels"] == ["hap", "sad", "neu", "ang", "exc", "fru"]
    assert "text|cross_modal|audio" in m["edge_types"]


def test_meld_multimodal_config_and_export_round_trip(tmp_path):
    from ercgraph.config import DataConfig
    from ercgraph.data.pickles import read_pickle_features

    fx = WRITERS["mmgcn_meld"](tmp_path)
    out = tmp_path / "run"
    base = [
        "-c",
        str(REPO / "configs/meld_multimodal.yaml"),
        "--cache-dir",
        str(tmp_path / "c"),
        "--set",
        f"data.path={fx.path}",
    ]
    assert (
        cli(
            "train", *base, "--out", str(out), "--set", "train.epochs=1", "--set", "model.hidden=16"
        )
        == 0
    )
    dims = json.loads((out / "model.json").read_text())["in_dims"]
    assert dims == {"text": 600, "audio": 300, "visual": 342}
    exported = tmp_path / "again.pkl"
    assert cli("export", *base, "--out", str(exported)) == 0
    assert cli("export", *base, "--out", str(exported)) == 2  # never overwrites
    a_corpus, a = read_pickle_features(DataConfig(reader="pickle", path=str(fx.path)), None)
    b_corpus, b = read_pickle_features(DataConfig(reader="pickle", path=str(exported)), None)
    assert a_corpus.df["label"].tolist() == b_corpus.df["label"].tolist()
    for m in ("text", "audio", "visual"):
        assert torch.equal(a.features[m], b.features[m])


def test_gated_fusion_config_trains_three_modalities(tmp_path):
    fx = WRITERS["mmgcn_meld"](tmp_path)
    out = tmp_path / "gated"
    code = cli(
        "train",
        "-c",
        str(REPO / "configs/meld_multimodal_gated.yaml"),
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
    saved = (out / "config.yaml").read_text()
    assert "name: gated" in saved
    from safetensors.torch import load_file

    weights = load_file(out / "seed_0" / "best.safetensors")
    assert any(".fusion.gates.audio." in k for k in weights)
