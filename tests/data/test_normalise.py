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


def speaker_store():
    """Two speakers whose features differ by an offset and a scale, plus a rare speaker."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(12, 3, generator=g)
    x = torch.cat([base[:6] * 2.0 + 10.0, base[6:] * 0.5 - 4.0, torch.tensor([[1.0, 2.0, 3.0]])])
    present = torch.ones(13, dtype=torch.bool)
    present[0] = False  # a missing row of speaker a stays out of a's statistics and stays zero
    speakers = ["a"] * 6 + ["b"] * 6 + ["rare"]
    return FeatureStore({"audio": x}, {"audio": present}), speakers


def test_speaker_normalisation_standardises_each_frequent_speaker_by_their_own_rows():
    st, speakers = speaker_store()
    train = torch.zeros(13, dtype=torch.bool)
    train[:6] = True  # the training statistics come from speaker a only
    norm = Standardiser.fit(st, train)
    out = norm.apply(st, speakers, speaker_min=5).features["audio"]
    x = st.features["audio"]
    for rows in (slice(1, 6), slice(6, 12)):
        z = out[rows]
        assert torch.allclose(z.mean(0), torch.zeros(3), atol=1e-5)
        assert torch.allclose(z.std(0, unbiased=False), torch.ones(3), atol=1e-4)
        own = (x[rows] - x[rows].mean(0)) / x[rows].std(0, unbiased=False)
        assert torch.allclose(z, own, atol=1e-5)
    assert torch.equal(out[0], torch.zeros(3))
    # the rare speaker (1 row < speaker_min) gets the training statistics
    assert torch.allclose(out[12], (x[12] - norm.mean["audio"]) / norm.std["audio"])
    # a higher threshold sends speaker a (5 present rows) to the training statistics too
    out6 = norm.apply(st, speakers, speaker_min=6).features["audio"]
    assert torch.allclose(out6[1:6], (x[1:6] - norm.mean["audio"]) / norm.std["audio"])
    assert torch.allclose(out6[6:12], out[6:12])
    with pytest.raises(ErcgraphError, match="12 speakers for 13 rows"):
        norm.apply(st, speakers[:12])


def test_speaker_normalisation_from_the_config(tmp_path, caplog):
    """``features.normalise: speaker`` reaches the graphs: each speaker's node features are
    centred on that speaker, where ``standard`` leaves the speaker offsets in."""
    import numpy as np
    import pandas as pd

    from ercgraph.config import load_config
    from ercgraph.pipeline import prepare

    rng = np.random.default_rng(0)
    n = 40
    speaker = np.repeat(["s1", "s2"], n // 2)
    x = rng.normal(size=(n, 4)).astype(np.float32) + np.where(speaker == "s1", 5.0, -5.0)[:, None]
    split = np.tile(["train", "train", "dev", "test"], n // 4)
    pd.DataFrame(
        {"clip": [f"c{i}" for i in range(n)], "speaker": speaker, "label": "a", "split": split}
    ).to_csv(tmp_path / "t.csv", index=False)
    np.save(tmp_path / "f.npy", x)
    sets = [
        "data={reader: table, name: t, path: t.csv, columns: {dialogue_id: clip}}",
        "features={modalities: [audio], files: {audio: {path: f.npy}}}",
        "graph.builders=[{name: temporal}]",
        f"data_root={tmp_path}",
        f"cache_dir={tmp_path / 'cache'}",
    ]
    means = {}
    for how in ("standard", "speaker"):
        cfg = load_config(None, [*sets, f"features.normalise={how}"])
        prep = prepare(cfg)
        feats, who = prep.store.features["audio"], prep.corpus.df["speaker"].to_numpy()
        means[how] = [float(feats[torch.from_numpy(who == s)].mean()) for s in ("s1", "s2")]
    assert means["standard"][0] > 0.9 and means["standard"][1] < -0.9
    assert abs(means["speaker"][0]) < 1e-5 and abs(means["speaker"][1]) < 1e-5
    # speakers below the threshold fall back to the training statistics, and the log says so
    cfg = load_config(None, [*sets, "features.normalise=speaker", "features.speaker_min=25"])
    with caplog.at_level("WARNING", logger="ercgraph.data.normalise"):
        prep = prepare(cfg)
    feats, who = prep.store.features["audio"], prep.corpus.df["speaker"].to_numpy()
    assert (
        "speaker normalisation (audio): 40 utterance(s) of 2 speaker(s) with fewer than "
        "features.speaker_min=25" in caplog.text
    )
    assert float(feats[torch.from_numpy(who == "s1")].mean()) > 0.9  # offsets kept, as standard
    with pytest.raises(ErcgraphError, match="features.speaker_min must be >= 2"):
        load_config(None, [*sets, "features.speaker_min=1"])


def test_positional_speaker_names_are_recognised():
    from ercgraph.data.normalise import positional_speakers

    dialogues = [f"d{i}" for i in range(30) for _ in range(2)]
    # feature pickles: the same two positions in every dialogue
    assert "'spk0' speaks in 100% of 30 dialogues" in positional_speakers(
        dialogues, ["spk0", "spk1"] * 30
    )
    # people: each speaks in a few dialogues
    people = [f"p{i % 10}{j}" for i in range(30) for j in range(2)]
    assert positional_speakers(dialogues, people) is None
    assert positional_speakers(dialogues[:10], ["spk0", "spk1"] * 5) is None  # too few to tell
