"""``bench/common.py``: the results writer and the linear probe baseline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import common  # noqa: E402


def _split(x, y, seed=0):
    order = np.random.default_rng(seed).permutation(len(y))
    a, b = int(0.6 * len(y)), int(0.8 * len(y))
    parts = (order[:a], order[a:b], order[b:])
    return [arr for idx in parts for arr in (x[idx], y[idx])]


def test_linear_probe_separates_a_separable_problem():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    centres = np.array([[4.0, 0, 0, 0], [0, 4.0, 0, 0], [0, 0, 4.0, 0]])
    x = centres[y] + rng.normal(size=(600, 4))
    out = common.linear_probe(*_split(x, y), label_names=["a", "b", "c"])
    assert out["accuracy"] > 90 and out["weighted_f1"] > 90 and out["macro_f1"] > 90
    assert set(out["per_class_f1"]) == {"a", "b", "c"}
    assert all(f > 90 for f in out["per_class_f1"].values())
    assert out["C"] in (0.01, 0.1, 1, 10) and set(out["dev_weighted_f1"]) == {0.01, 0.1, 1, 10}
    assert out["converged"]


def test_linear_probe_is_near_chance_on_noise():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2000)
    x = rng.normal(size=(2000, 8))
    out = common.linear_probe(*_split(x, y))
    assert 40 < out["accuracy"] < 60
    assert set(out["per_class_f1"]) == {"0", "1"}


def test_linear_probe_picks_c_on_dev_and_fits_the_scaler_on_train_only():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 400)
    x = np.c_[y + 0.5 * rng.normal(size=400), rng.normal(size=400)]
    tr_x, tr_y, dv_x, dv_y, te_x, te_y = _split(x, y)
    shifted = common.linear_probe(tr_x, tr_y, dv_x, dv_y, te_x + 100.0, te_y, Cs=(1.0,))
    # a scaler fitted on test would undo the shift; fitted on train it does not
    assert shifted["accuracy"] < 70
    out = common.linear_probe(tr_x, tr_y, dv_x, dv_y, te_x, te_y, Cs=(1.0, 0.1))
    best = max(out["dev_weighted_f1"], key=lambda c: (out["dev_weighted_f1"][c], c == 1.0))
    assert out["C"] == best


def test_write_result_records_the_run(tmp_path):
    path = common.write_result("unit", {"rows": [{"a": 1}]}, results_dir=tmp_path)
    data = json.loads(path.read_text())
    assert data["bench"] == "unit" and data["rows"] == [{"a": 1}]
    assert data["started"] == common.STARTED and "T" in data["started"]
    assert data["command"][0] == sys.executable and data["command"][1:] == sys.argv
    assert "git_revision" in data and "dirty" in data
    if data["git_revision"] is not None:  # None only outside a git checkout
        assert len(data["git_revision"]) == 40 and isinstance(data["dirty"], bool)
    assert set(data["packages"]) == set(common.PACKAGES)
    assert data["packages"]["numpy"] == np.__version__
    assert data["threads"]["cpu_count"] >= 1 and "torch" in data["threads"]
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_write_result_rejects_payload_keys_it_owns(tmp_path):
    with pytest.raises(ValueError, match="git_revision"):
        common.write_result("unit", {"git_revision": "x"}, results_dir=tmp_path)
