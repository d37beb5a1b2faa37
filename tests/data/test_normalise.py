"""The train-fit standardiser: statistics from train rows only, missing rows untouched, saved
and loaded as safetensors."""

import pytest
import torch

from ercgraph.data.features import FeatureStore
from ercgraph.data.normalise import STD_FLOOR, Standardiser
from ercgraph.errors import ErcgraphError


def store():
    x = torch.tensor([[1.0, 5.0], [3.0, 5.0], [100.0, -7.0], [2.0, 0.0]])
    present = torch.tensor([True, True, True, False])
    return FeatureStore({"audio": x}, {"audio": present})


def test_fitted_on_present_training_rows_only():
    train = torch.tensor([True, True, False, True])  # row 2 is dev, row 3 is missing
    norm = Standardiser.fit(store(), train)
    assert torch.allclose(norm.mean["audio"], torch.tensor([2.0, 5.0]))
    assert torch.allclose(norm.std["audio"], torch.tensor([1.0, STD_FLOOR]))  # constant: floor
    out = norm.apply(store())
    assert torch.allclose(out.features["audio"][0], torch.tensor([-1.0, 0.0]))
    assert torch.isfinite(out.features["audio"]).all()
    assert torch.equal(out.features["audio"][3], torch.zeros(2))  # a missing row stays empty
    assert torch.equal(out.present["audio"], store().present["audio"])


def test_round_trip_and_dimension_check(tmp_path):
    norm = Standardiser.fit(store(), torch.tensor([True, True, True, False]))
    norm.save(tmp_path / "n.safetensors")
    back = Standardiser.load(tmp_path / "n.safetensors")
    assert torch.equal(back.mean["audio"], norm.mean["audio"])
    wrong = FeatureStore({"audio": torch.zeros(2, 3)})
    with pytest.raises(ErcgraphError, match="fitted on 2-d features, these are 3-d"):
        back.apply(wrong)
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(ErcgraphError, match="missing or corrupt"):
        Standardiser.load(tmp_path / "bad.safetensors")


def test_too_few_training_rows_is_a_clear_error():
    with pytest.raises(ErcgraphError, match="features.normalise: none"):
        Standardiser.fit(store(), torch.tensor([True, False, False, False]))
