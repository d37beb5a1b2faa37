"""A run directory is untrusted input to ``evaluate`` and ``predict`` (issue 22, items 4 to 8 and
parts of 13 and 14): the files it names stay inside it, where the data and the cache live is the
user's to say, what it loads is finite and is what it recorded, its encoder is never unpickled,
and a missing piece of its decision rule is refused. Each test tampers with a copy of a small
run trained once for the module."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from tests.cli_helpers import cli

REPO = Path(__file__).resolve().parents[1]
LABELS = ["calm", "happy", "sad"]


def _table(n_dialogues: int, turns: int, split: str | None, first_id: int, rng) -> pd.DataFrame:
    rows = []
    for d in range(n_dialogues):
        for t in range(turns):
            rows.append(
                {
                    "split": split,
                    "dialogue_id": f"d{first_id + d}",
                    "speaker": "AB"[t % 2],
                    "turn": t,
                    "label": LABELS[int(rng.integers(3))],
                    "uid": f"u{len(rows) + first_id * turns}",
                }
            )
    return pd.DataFrame(rows)


def _features(df: pd.DataFrame, rng, dim: int = 6) -> dict[str, np.ndarray]:
    """Features that carry the label (so training learns something) plus noise, keyed by uid."""
    x = rng.normal(size=(len(df), dim)).astype(np.float32)
    x[np.arange(len(df)), df["label"].map(LABELS.index).to_numpy()] += 2.0
    return {"x": x, "ids": df["uid"].to_numpy(dtype=str)}


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    """A synthetic corpus whose only modality (audio) is read from a feature file aligned by
    id, and a new table whose utterance ids overlap the training ones (as ids often do)."""
    root = tmp_path_factory.mktemp("syn")
    rng = np.random.default_rng(0)
    parts = [
        _table(16, 6, "train", 0, rng),
        _table(6, 6, "dev", 100, rng),
        _table(6, 6, "test", 200, rng),
    ]
    df = pd.concat(parts, ignore_index=True)
    df.to_csv(root / "conv.csv", index=False)
    np.savez(root / "feats.npz", **_features(df, rng))
    new = _table(4, 5, None, 0, rng).drop(columns=["split", "label"])  # uids u0.. as in train
    new.to_csv(root / "new.csv", index=False)
    np.savez(root / "new_a.npz", **_features(new.assign(label="sad"), rng))
    np.savez(root / "new_b.npz", **_features(new.assign(label="happy"), rng))
    return root


@pytest.fixture(scope="module")
def syn_run(tmp_path_factory, syn):
    """One run on :func:`syn`, with dev-fitted decision offsets and a saved normaliser."""
    config = syn / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"reader": "table", "path": "conv.csv"},
                "features": {
                    "modalities": ["audio"],
                    "files": {
                        "audio": {
                            "path": "feats.npz",
                            "key": "x",
                            "id_column": "uid",
                            "id_key": "ids",
                        }
                    },
                },
                "graph": {"builders": [{"name": "temporal", "w_past": 2, "w_future": 2}]},
                "model": {"name": "hierarchical_gcn", "hidden": 16, "intra_layers": 1},
                "train": {"epochs": 2, "batch_size": 8, "seeds": [0]},
                "decision": {"rule": "offsets"},
            }
        )
    )
    out = tmp_path_factory.mktemp("runs") / "syn"
    args = ["train", "-c", str(config), "--data-root", str(syn), "--out", str(out)]
    args += ["--cache-dir", str(tmp_path_factory.mktemp("syn_cache"))]
    assert cli(*args) == 0
    assert (out / "seed_0" / "decision.json").is_file()
    assert (out / "normaliser.safetensors").is_file()
    return out


def tamperable(src, dest):
    """A copy of a module's run at ``dest``, free to tamper with (symlinks kept as links)."""
    shutil.copytree(src, dest, symlinks=True)
    return dest


@pytest.fixture()
def run(tmp_path, syn_run):
    """A copy of the module's run, free to tamper with."""
    return tamperable(syn_run, tmp_path / "run")


@pytest.fixture()
def env(monkeypatch, tmp_path):
    """No data root from the environment; a cache of this test's own."""
    monkeypatch.delenv("ERCGRAPH_DATA", raising=False)
    monkeypatch.setenv("ERCGRAPH_CACHE", str(tmp_path / "user_cache"))
    return tmp_path / "user_cache"


def evaluate(run: Path, root: Path, *extra: str) -> int:
    return cli("evaluate", str(run), "--data-root", str(root), *extra)


def predict(run: Path, syn: Path, out: Path | None, *extra: str) -> int:
    args = ["predict", str(run), str(syn / "new.csv")]
    args += ["--features", f"audio={syn / 'new_a.npz'}", *extra]
    return cli(*args, *(["--out", str(out)] if out else []))


def _edit_yaml(path: Path, **changes) -> None:
    cfg = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        node = cfg
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def _edit_json(path: Path, fn) -> None:
    obj = json.loads(path.read_text())
    fn(obj)
    path.write_text(json.dumps(obj))


# -- item 4: the files a run names stay inside it ---------------------------------------------
@pytest.mark.parametrize("how", ["dotdot", "absolute"])
def test_a_normaliser_named_outside_the_run_is_refused(how, run, syn, env, tmp_path, capsys):
    outside = tmp_path / "elsewhere" / "stats.safetensors"
    outside.parent.mkdir()
    shutil.copy(run / "normaliser.safetensors", outside)  # valid: only its place is wrong
    name = os.path.relpath(outside, run) if how == "dotdot" else str(outside)
    _edit_json(run / "model.json", lambda m: m.update(normaliser=name))
    capsys.readouterr()
    assert evaluate(run, syn) == 2
    err = capsys.readouterr().err
    assert 'model.json "normaliser"' in err and name in err and "inside" in err
    assert not (run / "rescored.json").exists()


@pytest.mark.parametrize(
    "name",
    [
        "normaliser.safetensors",
        "seed_0",
        "seed_0/best.safetensors",
        "seed_0/decision.json",
        "config.yaml",
        "model.json",
    ],
)
def test_a_symlink_out_of_the_run_is_refused(name, run, syn, env, tmp_path, capsys):
    target = tmp_path / "elsewhere" / Path(name).name
    target.parent.mkdir()
    src = run / name
    (shutil.copytree if src.is_dir() else shutil.copy)(src, target)  # same content, outside
    shutil.rmtree(src) if src.is_dir() else src.unlink()
    src.symlink_to(target)
    capsys.readouterr()
    assert evaluate(run, syn) == 2
    err = capsys.readouterr().err
    assert "outside the run directory" in err and str(target.resolve()) in err


def test_the_runs_saved_cache_dir_and_data_root_are_never_used(run, syn, env, tmp_path, capsys):
    planted = tmp_path / "planted_cache"
    _edit_yaml(run / "config.yaml", cache_dir=str(planted), data_root=str(syn))
    capsys.readouterr()
    assert cli("evaluate", str(run)) == 2  # no --data-root, no ERCGRAPH_DATA
    err = capsys.readouterr().err
    assert "--data-root" in err and str(syn) in err and not planted.exists()
    assert evaluate(run, syn) == 0
    assert not planted.exists() and env.is_dir()  # the user's cache, not the run's
    assert predict(run, syn, tmp_path / "p.csv") == 0
    assert not planted.exists()


@pytest.mark.parametrize("what", ["folder", "file"])
def test_predict_never_writes_through_a_symlink_in_the_run(what, run, syn, env, tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    if what == "folder":
        (run / "predictions").symlink_to(outside)
    else:
        (run / "predictions").mkdir()
        (run / "predictions" / "new.csv").symlink_to(outside / "new.csv")  # dangling
    capsys.readouterr()
    assert predict(run, syn, None) == 2
    err = capsys.readouterr().err
    assert "symlink" in err or "already exists" in err
    assert list(outside.iterdir()) == []


# -- item 5: predict reads the new table's features, never the training file's ----------------
def test_predict_on_a_feature_file_run_needs_the_tables_own_features(
    run, syn, env, tmp_path, capsys
):
    args = ["predict", str(run), str(syn / "new.csv"), "--out", str(tmp_path / "x.csv")]
    capsys.readouterr()
    assert cli(*args) == 2  # the training file holds these uids, but not these utterances
    err = capsys.readouterr().err
    assert "['audio']" in err and "--features audio=FILE" in err
    assert not (tmp_path / "x.csv").exists()
    assert cli(*args, "--features", f"text={syn / 'new_a.npz'}") == 2
    assert "reads no 'text' features" in capsys.readouterr().err
    assert predict(run, syn, tmp_path / "a.csv") == 0
    b = ["--features", f"audio={syn / 'new_b.npz'}", "--out", str(tmp_path / "b.csv")]
    assert cli("predict", str(run), str(syn / "new.csv"), *b) == 0
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert len(a) == len(b) == len(pd.read_csv(syn / "new.csv"))
    probs = [f"prob_{k}" for k in LABELS]
    # the given file decides: features built for "sad" and for "happy" give other probabilities
    assert (a["prob_sad"] - b["prob_sad"]).mean() > 0.01
    assert np.allclose(a[probs].sum(axis=1), 1, atol=1e-4)


# -- item 6: what a run loads is finite and fits the model -------------------------------------
@pytest.mark.parametrize(
    "tamper, names",
    [
        ("mean_nan", ["mean/audio", "NaN"]),
        ("std_inf", ["std/audio", "infinite"]),
        ("std_zero", ["std/audio", "<= 0"]),
        ("std_negative", ["std/audio", "<= 0"]),
        ("lengths_differ", ["mean/audio", "std/audio"]),
        ("shorter_than_the_model", ["mean/audio", "in_dims"]),
    ],
)
def test_a_bad_normaliser_is_refused_naming_the_tensor(tamper, names, run, syn, env, capsys):
    path = run / "normaliser.safetensors"
    t = load_file(path)
    mean, std = t["mean/audio"].clone(), t["std/audio"].clone()
    if tamper == "mean_nan":
        mean[1] = float("nan")
    elif tamper == "std_inf":
        std[0] = float("inf")
    elif tamper == "std_zero":
        std[2] = 0.0
    elif tamper == "std_negative":
        std[2] = -1.0
    elif tamper == "lengths_differ":
        std = std[:-1].clone()
    else:
        mean, std = mean[:-1].clone(), std[:-1].clone()
    save_file({"mean/audio": mean, "std/audio": std}, path)
    capsys.readouterr()
    assert evaluate(run, syn) == 2
    err = capsys.readouterr().err
    assert str(path.resolve()) in err and all(n in err for n in names), err
    assert len(err.strip().splitlines()) == 1


def test_a_non_finite_weight_is_refused_naming_the_tensor(run, syn, env, tmp_path, capsys):
    path = run / "seed_0" / "best.safetensors"
    state = load_file(path)
    key = sorted(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)[0]
    state[key] = state[key].clone()
    state[key].view(-1)[0] = float("nan")
    save_file(state, path)
    capsys.readouterr()
    assert evaluate(run, syn) == 2
    assert key in capsys.readouterr().err
    assert predict(run, syn, tmp_path / "p.csv") == 2
    err = capsys.readouterr().err
    assert key in err and "NaN or infinite" in err and not (tmp_path / "p.csv").exists()


# -- item 8: a run trained with decision offsets needs them ------------------------------------
@pytest.mark.parametrize("how", ["missing", "corrupt"])
def test_an_offsets_run_without_its_decision_file_is_refused(how, run, syn, env, tmp_path, capsys):
    path = run / "seed_0" / "decision.json"
    path.unlink() if how == "missing" else path.write_text("{")
    capsys.readouterr()
    assert evaluate(run, syn) == 2
    assert "decision.json" in capsys.readouterr().err
    assert predict(run, syn, tmp_path / "p.csv") == 2
    assert "decision.json" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists() and not (run / "rescored.json").exists()


def test_a_decision_file_the_config_does_not_call_for_is_refused(run, syn, env, capsys):
    _edit_yaml(run / "config.yaml", **{"decision.rule": "argmax"})
    capsys.readouterr()
    assert evaluate(run, syn) == 2
    assert "decision.json" in capsys.readouterr().err


# -- 13: a one-line error before any work ------------------------------------------------------
@pytest.mark.parametrize("key", ["labels", "in_dims", "edge_types", "heads"])
def test_model_json_without_a_required_key_is_one_line(key, run, syn, env, capsys):
    _edit_json(run / "model.json", lambda m: m.pop(key))
    capsys.readouterr()
    assert evaluate(run, syn) == 2
    err = capsys.readouterr().err
    assert f"no {key!r}" in err and "model.json" in err and "Traceback" not in err


@pytest.fixture()
def read_only(monkeypatch):
    """Make folders read-only; as root (where mode bits do not stop writes) the check is told
    so the way a read-only file system tells root, through ``access(2)``."""
    folders: list[Path] = []
    real = os.access

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and Path(path).resolve() in folders:
            return False
        return real(path, mode, *args, **kwargs)

    if os.geteuid() == 0:
        monkeypatch.setattr(os, "access", access)

    def make(folder: Path) -> None:
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
        folders.append(folder.resolve())

    yield make
    for f in folders:
        f.chmod(stat.S_IRWXU)


def test_a_read_only_output_folder_is_refused_before_any_work(
    run, syn, env, tmp_path, read_only, monkeypatch, capsys
):
    import ercgraph.pipeline

    def no_work(*args, **kwargs):
        raise AssertionError("features were made before the output folder was checked")

    monkeypatch.setattr(ercgraph.pipeline, "prepare", no_work)
    monkeypatch.setattr(ercgraph.pipeline, "read_corpus", no_work)
    read_only(run)
    capsys.readouterr()
    assert evaluate(run, syn) == 2
    err = capsys.readouterr().err
    assert "read-only" in err and str(run.resolve()) in err
    ro = tmp_path / "ro"
    ro.mkdir()
    read_only(ro)
    assert predict(run, syn, ro / "p.csv") == 2
    err = capsys.readouterr().err
    assert "read-only" in err and str(ro) in err


# -- 14: evaluate --device; predict's hints name its own options -------------------------------
def test_evaluate_a_cuda_run_on_this_machine(run, syn, env, capsys, caplog):
    _edit_yaml(run / "config.yaml", **{"train.device": "cuda"})
    assert evaluate(run, syn) == 0  # the run's device when this machine has it, else the CPU
    if not torch.cuda.is_available():
        assert "scoring on the CPU" in caplog.text
        assert evaluate(run, syn, "--device", "cuda") == 2
        assert "--device cuda: not available" in capsys.readouterr().err
    (run / "rescored.json").unlink()
    assert evaluate(run, syn, "--device", "cpu") == 0
    saved = json.loads((run / "metrics.json").read_text())["test"]["weighted_f1"]["mean"]
    again = json.loads((run / "rescored.json").read_text())["test"]["weighted_f1"]["mean"]
    assert again == pytest.approx(saved, abs=1e-6)


def test_predict_hints_name_predicts_own_options(run, syn, env, tmp_path, capsys):
    table = tmp_path / "t.csv"
    pd.read_csv(syn / "new.csv").drop(columns=["speaker"]).to_csv(table, index=False)
    args = ["predict", str(run), str(table), "--features", f"audio={syn / 'new_a.npz'}"]
    capsys.readouterr()
    assert cli(*args, "--out", str(tmp_path / "p.csv")) == 2
    err = capsys.readouterr().err
    assert "--column speaker=" in err and "data.columns" not in err
    odd = tmp_path / "t.dat"
    shutil.copy(syn / "new.csv", odd)
    args[2] = str(odd)
    assert cli(*args, "--out", str(tmp_path / "q.csv")) == 2
    err = capsys.readouterr().err
    assert "--format" in err and "data.options" not in err
    assert cli(*args, "--format", "csv", "--out", str(tmp_path / "q.csv")) == 0


# -- item 7: the run's fine-tuned encoder is the one it recorded, and never a pickle ----------
@pytest.fixture(scope="module")
def ft_run(tmp_path_factory, meld_slice, cache):
    """A run with its own text encoder, as a fine-tuned run has: a frozen-MiniLM run on the
    MELD slice given the encoder the way training keeps a fine-tuned one (``keep_encoder``
    copies it and records its hashes), at a fraction of a fine-tuning's cost. The tests refuse
    it before any feature is made; a really fine-tuned run is read back in test_run_dir.py."""
    from ercgraph.encoders.text import default_text_model_path
    from ercgraph.rundir import keep_encoder

    out = tmp_path_factory.mktemp("runs") / "ft"
    args = ["train", "-c", str(REPO / "configs/meld_text.yaml"), "--data-root", str(meld_slice)]
    args += ["--cache-dir", str(cache), "--out", str(out)]
    assert cli(*args, "--set", "train.epochs=1", "--set", "model.hidden=16") == 0
    info = json.loads((out / "features.json").read_text())
    info["text"]["finetuned_path"] = str(default_text_model_path())
    keep_encoder(out, info)
    (out / "features.json").write_text(json.dumps(info))
    _edit_yaml(out / "config.yaml", **{"features.text.finetune.enabled": True})
    return out


@pytest.fixture()
def ft(tmp_path, ft_run):
    return tamperable(ft_run, tmp_path / "ft")


def test_the_kept_encoder_is_recorded_file_by_file_in_full(ft):
    info = json.loads((ft / "features.json").read_text())["text"]
    files = info["encoder_files"]
    assert "model.safetensors" in files and "config.json" in files
    weights = (ft / "encoder" / "model.safetensors").read_bytes()
    assert files["model.safetensors"] == hashlib.sha256(weights).hexdigest()


@pytest.mark.parametrize("record", ["encoder_files", "encoder_sha256"])
def test_a_changed_encoder_is_refused_naming_both_hashes(record, ft, meld_slice, env, capsys):
    weights = ft / "encoder" / "model.safetensors"
    info = json.loads((ft / "features.json").read_text())["text"]
    if record == "encoder_files":
        # one byte in the middle: the quick fingerprint (first and last MiB) cannot see it
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
        old = info["encoder_files"]["model.safetensors"]
    else:  # an older run recorded only the fingerprint
        _edit_json(ft / "features.json", lambda f: f["text"].pop("encoder_files"))
        data = bytearray(weights.read_bytes())
        data[-10] ^= 0xFF
        weights.write_bytes(bytes(data))
        old = info["encoder_sha256"]
    capsys.readouterr()
    assert evaluate(ft, meld_slice) == 2
    err = capsys.readouterr().err
    assert old in err and "content hash" in err and "encoder" in err
    now = err.split("has content hash ")[1].split(",")[0]
    assert now != old and len(now) >= 20


@pytest.mark.parametrize("name", ["encoder", "encoder/config.json"])
def test_an_encoder_reached_through_a_symlink_is_refused(name, ft, meld_slice, env, capsys):
    src = ft / name
    target = ft.parent / "elsewhere" / src.name
    target.parent.mkdir()
    (shutil.copytree if src.is_dir() else shutil.copy)(src, target)  # same bytes, same hashes
    shutil.rmtree(src) if src.is_dir() else src.unlink()
    src.symlink_to(target)
    capsys.readouterr()
    assert evaluate(ft, meld_slice) == 2
    err = capsys.readouterr().err
    assert "symlink" in err and name.split("/")[-1] in err


@pytest.mark.parametrize("keep_safetensors", [True, False])
def test_a_pickled_encoder_file_is_never_loaded(keep_safetensors, ft, meld_slice, env, capsys):
    import pickle

    marker = ft.parent / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (ft / "encoder" / "pytorch_model.bin").write_bytes(pickle.dumps(Payload()))
    if not keep_safetensors:
        (ft / "encoder" / "model.safetensors").unlink()
    capsys.readouterr()
    assert evaluate(ft, meld_slice) == 2
    err = capsys.readouterr().err
    assert "pytorch_model.bin" in err and "safetensors only" in err
    assert len(err.strip().splitlines()) == 1 and not marker.exists()


def test_a_pickled_local_encoder_is_one_line_and_never_runs(tmp_path):
    """A local encoder folder named by a config (not the run's own) whose weights are a
    pickle: torch's safe loading refuses it, and the error says what, in one line."""
    import pickle

    from ercgraph.encoders.text import TextEncoder, default_text_model_path
    from ercgraph.errors import ErcgraphError

    folder, marker = tmp_path / "enc", tmp_path / "pwned"
    folder.mkdir()
    src = default_text_model_path()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(src / name, folder / name)

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(), protocol=2))
    with pytest.raises(ErcgraphError) as caught:
        TextEncoder(str(folder), progress=False)
    msg = str(caught.value)
    assert str(folder) in msg and "refused" in msg and "\n" not in msg
    assert "weights_only` set to `False`" not in msg and not marker.exists()


# -- issue 22 review: extreme values and other dtypes in what a run loads ----------------------
def _scale_weights(path: Path, factor: float, dtype=None) -> str:
    """Multiply every float tensor of a checkpoint (and cast it); returns the name of the
    first changed tensor in the file's order (the one a check names first)."""
    state = load_file(path)
    changed = {k for k, v in state.items() if v.is_floating_point()}
    for k in changed:
        state[k] = (state[k].double() * factor).to(dtype or state[k].dtype)
    save_file(state, path)
    return next(k for k in load_file(path) if k in changed)


@pytest.mark.parametrize(
    "tamper, names",
    [
        ("std_denormal", ["std/audio", "below 1e-05"]),
        ("std_below_the_floor", ["std/audio", "below 1e-05"]),
        ("mean_huge", ["mean/audio", "beyond"]),
        ("std_huge", ["std/audio", "beyond"]),
        ("mean_huge_float64", ["mean/audio", "beyond"]),
    ],
)
def test_extreme_normaliser_values_are_refused(tamper, names, run, syn, env, tmp_path, capsys):
    path = run / "normaliser.safetensors"
    t = load_file(path)
    mean, std = t["mean/audio"].clone(), t["std/audio"].clone()
    if tamper == "std_denormal":
        std[:] = 1e-40
    elif tamper == "std_below_the_floor":
        std[1] = 9e-6
    elif tamper == "mean_huge":
        mean[:] = 3e38
    elif tamper == "std_huge":
        std[0] = 1e20
    else:  # finite in float64, infinite once the features' float32
        mean, std = mean.double(), std.double()
        mean[0] = 1e300
    save_file({"mean/audio": mean, "std/audio": std}, path)
    capsys.readouterr()
    assert evaluate(run, syn) == 2
    err = capsys.readouterr().err
    assert str(path.resolve()) in err and all(n in err for n in names), err
    assert len(err.strip().splitlines()) == 1
    assert predict(run, syn, tmp_path / "p.csv") == 2 and not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_a_normaliser_of_another_float_dtype_is_converted(dtype, run, syn, env):
    path = run / "normaliser.safetensors"
    save_file({k: v.to(dtype) for k, v in load_file(path).items()}, path)
    assert evaluate(run, syn) == 0
    saved = json.loads((run / "metrics.json").read_text())["test"]["accuracy"]["mean"]
    again = json.loads((run / "rescored.json").read_text())["test"]["accuracy"]["mean"]
    assert again == pytest.approx(saved, abs=1e-6)


@pytest.mark.parametrize(
    "dtype, shown",
    [(torch.int64, "int64"), (torch.bfloat16, "bfloat16"), (torch.float64, "float64")],
)
def test_weights_of_another_dtype_are_refused_naming_key_and_dtypes(
    dtype, shown, run, syn, env, tmp_path, capsys
):
    path = run / "seed_0" / "best.safetensors"
    key = _scale_weights(path, 1.0, dtype)
    capsys.readouterr()
    assert evaluate(run, syn) == 2
    err = capsys.readouterr().err
    assert key in err and shown in err and "float32" in err and str(path.resolve()) in err, err
    assert predict(run, syn, tmp_path / "p.csv") == 2 and not (tmp_path / "p.csv").exists()


def test_weights_beyond_any_trained_value_are_refused(run, syn, env, tmp_path, capsys):
    path = run / "seed_0" / "best.safetensors"
    key = _scale_weights(path, 1e37)
    capsys.readouterr()
    assert evaluate(run, syn) == 2
    err = capsys.readouterr().err
    assert key in err and "beyond" in err and not (run / "rescored.json").exists()


def test_outputs_that_are_not_finite_are_refused_naming_the_run_files(
    run, syn, env, tmp_path, capsys
):
    """Weights each within bounds whose products overflow: no empty probability cells, an
    error naming the checkpoint and the normaliser."""
    path = run / "seed_0" / "best.safetensors"
    _scale_weights(path, 1e15)
    capsys.readouterr()
    assert predict(run, syn, tmp_path / "p.csv") == 2
    err = capsys.readouterr().err.strip()
    assert "outputs are not finite" in err and len(err.splitlines()) == 1, err
    assert str(path.resolve()) in err and "normaliser.safetensors" in err
    assert not (tmp_path / "p.csv").exists()
    assert evaluate(run, syn) == 2
    assert "outputs are not finite" in capsys.readouterr().err
    assert not (run / "rescored.json").exists()


def test_a_huge_integer_in_the_runs_config_is_one_line(run, syn, env, tmp_path, capsys):
    builders = [{"name": "temporal", "w_past": 10**30, "w_future": 1}]
    _edit_yaml(run / "config.yaml", **{"graph.builders": builders})
    capsys.readouterr()
    assert evaluate(run, syn) == 2
    assert "graph.builders[0].w_past" in capsys.readouterr().err
    assert predict(run, syn, tmp_path / "p.csv") == 2
    assert "graph.builders[0].w_past" in capsys.readouterr().err
