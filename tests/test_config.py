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


# -- issue 22: duplicate keys, whole-section overrides, non-finite and huge values, one-line YAML


@pytest.mark.parametrize(
    "text, key, line",
    [
        ("train:\n  epochs: 3\nmodel:\n  hidden: 8\ntrain:\n  lr: 0.1\n", "'train'", 5),
        ("model:\n  hidden: 8\n  dropout: 0.1\n  hidden: 16\n", "'hidden'", 4),
        ("loss:\n  - name: ce\n    weight: 1\n    weight: 2\n", "'weight'", 4),
    ],
)
def test_duplicate_yaml_keys_are_refused_naming_key_and_line(tmp_path, text, key, line):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ErcgraphError) as exc:
        load_config(p)
    msg = str(exc.value)
    assert "duplicate key" in msg and key in msg and f"line {line}," in msg and "c.yaml" in msg


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model: &m\n  hidden: 8\n  dropout: 0.1\nmodel_b: &b {<<: *m, hidden: 16}\n")
    from ercgraph.config import read_yaml

    assert read_yaml(p.read_text(), "x")["model_b"] == {"hidden": 16, "dropout": 0.1}


def test_duplicate_key_in_an_override_value():
    with pytest.raises(ErcgraphError, match="duplicate key 'hidden'"):
        load_config(None, ["model={hidden: 8, hidden: 16}"])


@pytest.mark.parametrize("override", ["model=", "model=null", "model=3", "features.text="])
def test_a_whole_section_cannot_be_reset_by_set(override):
    key = override.partition("=")[0]
    with pytest.raises(ErcgraphError, match=f"{key} is a section"):
        load_config(None, [override])


def test_a_section_mapping_override_merges_key_by_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  hidden: 8\n  dropout: 0.1\n")
    cfg = load_config(p, ["model={hidden: 16}", "model.heads=2"])
    assert (cfg.model.hidden, cfg.model.dropout, cfg.model.heads) == (16, 0.1, 2)
    with pytest.raises(ErcgraphError, match="loss is a list of entries"):
        load_config(p, ["loss="])


@pytest.mark.parametrize(
    "override, key",
    [
        ("model.dropout=.nan", "model.dropout"),
        ("train.weight_decay=.nan", "train.weight_decay"),
        ("train.grad_clip=.nan", "train.grad_clip"),
        ("train.grad_clip=.inf", "train.grad_clip"),
        ("loss=[{name: ce, weight: .nan}]", "loss[0].weight"),
        ("loss=[{name: ce, weight: .inf}]", "loss[0].weight"),
        ("multitask.weight=.nan", "multitask.weight"),
        ("features.text.finetune.lr=.nan", "features.text.finetune.lr"),
        ("features.text.finetune.warmup_fraction=.nan", "features.text.finetune.warmup_fraction"),
        ("augment.lr=.inf", "augment.lr"),
        ("decision.max_weighted_f1_drop=.nan", "decision.max_weighted_f1_drop"),
        ("features.audio.max_seconds=.nan", "features.audio.max_seconds"),
        ("model.options={gamma: .nan}", "model.options.gamma"),
        ("sampler.options={power: -.inf}", "sampler.options.power"),
    ],
)
def test_non_finite_numbers_are_refused_naming_the_key(override, key):
    with pytest.raises(ErcgraphError) as exc:
        load_config(None, [override])
    assert f"config: {key} must be a finite number" in str(exc.value)


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.threads=100000", "train.threads must be >= 1 and <= 1024"),
        ("train.jobs=5000", "train.jobs must be >= 1 and <= 1024"),
        ("model.hidden=1000000000000", "model.hidden must be >= 1 and <= 65536"),
        ("model.hidden=65537", "model.hidden must be >= 1 and <= 65536"),
        ("model.hidden=64.0", "model.hidden must be an integer"),
        ("model.heads=100000", "model.heads must be >= 1 and <= 1024"),
        ("train.seeds=[0, 99999999999]", "train.seeds[1] must be at most 2147483647"),
        ("train.batch_size=99999999999", "train.batch_size must be at most 2147483647"),
    ],
)
def test_sizes_and_counts_have_a_ceiling(override, key):
    with pytest.raises(ErcgraphError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load_config(None, [override])
    assert load_config(None, ["model.hidden=65536", "train.threads=1024"]).model.hidden == 65536


@pytest.mark.parametrize("value", ["3", "[3]", "{a: b}", "[[x.py]]", "['']"])
def test_imports_must_be_a_list_of_file_paths(tmp_path, value):
    p = tmp_path / "c.yaml"
    p.write_text(f"imports: {value}\n")
    with pytest.raises(ErcgraphError, match="config: imports must be a list of"):
        load_config(p)


def test_yaml_syntax_error_is_one_line_with_line_and_column(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  epochs: 3\n   lr: [1\n")
    with pytest.raises(ErcgraphError) as exc:
        load_config(p)
    msg = str(exc.value)
    assert len(msg.splitlines()) == 1 and "c.yaml" in msg and "line 3, column" in msg


def test_no_edge_types_warns(caplog):
    with caplog.at_level("WARNING", logger="ercgraph.config"):
        load_config(None, ["graph.edge_types=[]"])
    assert "graph.edge_types" in caplog.text and "no edges" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="ercgraph.config"):
        load_config(None, ["graph.edge_types=[past]"])
    assert "no edges" not in caplog.text


@pytest.mark.parametrize(
    "override",
    [
        "model.dropout=.nan",
        "train.grad_clip=.nan",
        "train.threads=100000",
        "model.hidden=1000000000000",
        "loss=[{name: ce, weight: .nan}]",
        "model=",
        "imports=3",
        "graph.builders=[{name: temporal, w_past: 1000000000000000000000000000000, w_future: 1}]",
        "model.dropout='0.5'",
    ],
)
def test_cli_refuses_before_any_folder_is_made(tmp_path, override, meld_slice, cache, capsys):
    from tests.cli_helpers import cli, train_args

    out = tmp_path / "run"
    code = cli(*train_args(out, meld_slice, cache, "--set", "model.hidden=16", "--set", override))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert override.partition("=")[0].split("[")[0] in err
    assert not out.exists()


# -- issue 22 review: integers anywhere are bounded; a float key takes numbers, not text


@pytest.mark.parametrize(
    "override, key",
    [
        ("graph.builders=[{name: temporal, w_past: 10000000000000000000000, w_future: 1}]",
         "graph.builders[0].w_past"),
        ("graph.builders=[temporal, {name: speaker, w_future: -4294967296}]",
         "graph.builders[1].w_future"),
        ("model.options={a: [1, {b: 3000000000}]}", "model.options.a[1].b"),
        ("loss=[{name: ce, options: {k: 99999999999}}]", "loss[0].options.k"),
        ("sampler.options={n: 4294967296}", "sampler.options.n"),
        ("heads=[{name: emotion, size: 2147483648}]", "heads[0].size"),
        ("data.options={nrows: 1000000000000}", "data.options.nrows"),
    ],
)  # fmt: skip
def test_huge_integers_anywhere_are_refused_naming_the_key(override, key):
    with pytest.raises(ErcgraphError) as exc:
        load_config(None, [override])
    msg = str(exc.value)
    assert f"config: {key} must be at most 2147483647 in magnitude" in msg, msg
    ok = "graph.builders=[{name: temporal, w_past: 2147483647, w_future: -2147483647}]"
    assert load_config(None, [ok]).graph.builders[0]["w_past"] == 2**31 - 1


def test_a_huge_integer_in_a_runs_config_is_refused_when_read(tmp_path):
    """evaluate and predict read a run's config with load_config: the same walk refuses it."""
    from ercgraph.rundir import read_run

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(
        "graph:\n  builders:\n  - {name: temporal, w_past: 1000000000000000000000, w_future: 1}\n"
    )
    (run / "model.json").write_text("{}")
    with pytest.raises(ErcgraphError, match=r"graph\.builders\[0\]\.w_past must be at most"):
        read_run(run)


@pytest.mark.parametrize(
    "text, key",
    [
        ("model:\n  dropout: '0.5'\n", "model.dropout"),
        ('train:\n  lr: "0.001"\n', "train.lr"),
        ("train:\n  lr: '1.0e-3'\n", "train.lr"),
        ("train:\n  grad_clip: 'nan'\n", "train.grad_clip"),
        ("train:\n  grad_clip: five\n", "train.grad_clip"),
        ("multitask:\n  weight: yes\n", "multitask.weight"),
    ],
)
def test_a_float_key_refuses_text_in_a_file_as_in_set(tmp_path, text, key):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ErcgraphError, match=f"config: {key} must be a number"):
        load_config(p)
    value = text.split(": ", 1)[1].strip()
    with pytest.raises(ErcgraphError, match=f"config: {key} must be a number"):
        load_config(None, [f"{key}={value}"])


def test_a_float_key_takes_every_unquoted_number(tmp_path):
    """YAML 1.1 reads ``1e-3`` and ``1.5e3`` (no dot, or no exponent sign) as text when
    unquoted; a float key still takes them, and an integer."""
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  lr: 1e-3\n  grad_clip: 1.5e3\nmodel:\n  dropout: 0\n")
    cfg = load_config(p, ["train.weight_decay=5E-4", "multitask.weight=.5e-1"])
    assert (cfg.train.lr, cfg.train.grad_clip, cfg.model.dropout) == (1e-3, 1500.0, 0.0)
    assert (cfg.train.weight_decay, cfg.multitask.weight) == (5e-4, 0.05)
    assert isinstance(cfg.model.dropout, float)


def test_a_float_key_refuses_an_integer_too_large_for_a_float():
    with pytest.raises(ErcgraphError, match="config: model.dropout must be a finite number"):
        load_config(None, ["model.dropout=" + "9" * 400])
