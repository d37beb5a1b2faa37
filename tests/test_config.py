"""Config loading: YAML, overrides, unknown keys, types, data-root resolution."""

import pytest

from ercgraph.config import load_config, resolve_data_path
from ercgraph.errors import ErcgraphError


def test_shipped_config_loads_and_has_no_absolute_paths():
    from pathlib import Path

    for path in Path(__file__).parents[1].glob("configs/*.yaml"):
        cfg = load_config(path)
        text = path.read_text()
        assert "/work" not in text and "/home" not in text and "C:\\" not in text
        assert cfg.data.path is None or not Path(cfg.data.path).is_absolute()


def test_override_parses_yaml_values(tmp_path):
    cfg = load_config(
        None,
        ["train.epochs=3", "train.seeds=[1, 2]", "model.dropout=0.1", "graph.edge_types=[past]"],
    )
    assert cfg.train.epochs == 3 and cfg.train.seeds == [1, 2]
    assert cfg.model.dropout == 0.1 and cfg.graph.edge_types == ["past"]


def test_unknown_key_names_it_and_lists_allowed(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  epocs: 3\n")
    with pytest.raises(ErcgraphError) as exc:
        load_config(p)
    msg = str(exc.value)
    assert "'train.epocs'" in msg and "epochs" in msg and "patience" in msg


def test_unknown_override_key_is_an_error():
    with pytest.raises(ErcgraphError, match="model.hiden"):
        load_config(None, ["model.hiden=3"])


def test_wrong_type_names_the_key():
    with pytest.raises(ErcgraphError, match="train.epochs must be an integer"):
        load_config(None, ["train.epochs=many"])


def test_missing_config_file(tmp_path):
    with pytest.raises(ErcgraphError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_relative_paths_resolve_against_the_data_root(tmp_path):
    (tmp_path / "meld").mkdir()
    assert resolve_data_path("meld", tmp_path) == tmp_path / "meld"
    with pytest.raises(ErcgraphError, match="does not exist"):
        resolve_data_path("other", tmp_path)


def test_wrong_data_root_env(monkeypatch, tmp_path):
    from ercgraph.config import data_root

    monkeypatch.setenv("ERCGRAPH_DATA", str(tmp_path / "missing"))
    with pytest.raises(ErcgraphError, match="ERCGRAPH_DATA"):
        data_root(load_config(None))


def test_empty_value_for_a_required_field_is_an_error():
    with pytest.raises(ErcgraphError, match="train.epochs needs a value"):
        load_config(None, ["train.epochs="])


def test_bool_is_not_a_number():
    with pytest.raises(ErcgraphError, match="train.lr must be a number"):
        load_config(None, ["train.lr=true"])
