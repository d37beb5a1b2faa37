"""Foal-Net as components: the cross-attention fusion, the emotion-alignment loss term, the label
matching head and its loss term, and the shipped RAVDESS config run from the CLI."""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ercgraph.errors import ErcgraphError
from ercgraph.fusions.cross_attention import CrossAttentionFusion
from ercgraph.heads.label_matching import LabelMatchingHead, LabelMatchingLoss, matching_pairs
from ercgraph.losses import build_objective
from ercgraph.losses.alignment import EmotionAlignmentLoss, supervised_alignment
from ercgraph.models.outputs import ModelOutput
from ercgraph.registry import FUSIONS, HEADS, LOSSES
from tests.cli_helpers import train_quick_cv
from tests.components import fit, toy_setup

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "ravdess_foalnet.yaml"
MODS = ["text", "audio", "visual"]


def states(n: int = 6, dim: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {m: torch.randn(n, dim, generator=gen) for m in MODS}


def everywhere(n: int = 6) -> dict[str, torch.Tensor]:
    return {m: torch.ones(n, dtype=torch.bool) for m in MODS}


# -- cross_attention fusion ---------------------------------------------------------------------
@pytest.mark.parametrize("query", [None, "text"])
def test_cross_attention_keeps_the_state_size_and_shows_its_options(query):
    fusion = FUSIONS.create(
        {"name": "cross_attention", "query": query, "layers": 2, "heads": 2},
        modalities=MODS,
        dim=8,
    )
    assert isinstance(fusion, CrossAttentionFusion) and fusion.out_dim == 8
    assert len(fusion.blocks) == 2
    out = fusion.eval()(states(), everywhere())
    assert out.shape == (6, 8) and bool(torch.isfinite(out).all())
    assert f"query={query!r}" in repr(fusion) and "layers=2" in repr(fusion)
    assert "heads=2" in repr(fusion)


@pytest.mark.parametrize("query", [None, "text"])
def test_a_missing_modality_never_changes_the_output(query):
    torch.manual_seed(0)
    fusion = CrossAttentionFusion(MODS, 8, query=query, layers=2, heads=2).eval()
    h, present = states(), everywhere()
    present["audio"] = torch.tensor([True, False, True, False, True, False])
    present["visual"] = torch.tensor([False, False, True, True, True, True])
    with torch.no_grad():
        base = fusion(h, present)
        perturbed = dict(h)
        perturbed["audio"] = h["audio"].clone()
        perturbed["audio"][~present["audio"]] = 1e3 * torch.randn(3, 8)
        perturbed["visual"] = h["visual"].clone()
        perturbed["visual"][~present["visual"]] = float("nan")
        assert torch.equal(fusion(perturbed, present), base)
        # a present modality does reach the output (the test above is not vacuous)
        # a random move, not a uniform shift (a layer norm removes that)
        moved = dict(h, audio=h["audio"] + torch.randn(6, 8))
        changed = (fusion(moved, present) - base).abs().sum(1) > 1e-6
        assert changed.tolist() == present["audio"].tolist()


def test_an_utterance_without_its_query_modality_gets_the_mean_of_the_present_ones():
    torch.manual_seed(0)
    fusion = CrossAttentionFusion(MODS, 8, query="text", heads=4).eval()
    h, present = states(), everywhere()
    present["text"] = torch.tensor([True, False, True, False, True, True])
    present["visual"][3] = False
    with torch.no_grad():
        out = fusion(h, present)
    assert torch.allclose(out[1], (h["audio"][1] + h["visual"][1]) / 2)
    assert torch.allclose(out[3], h["audio"][3])  # only audio left
    assert not torch.allclose(out[0], (h["text"][0] + h["audio"][0] + h["visual"][0]) / 3)
    nothing = {m: torch.zeros(6, dtype=torch.bool) for m in MODS}
    assert torch.equal(fusion(h, nothing), torch.zeros(6, 8))


def test_a_query_without_anything_to_attend_to_stays_finite():
    fusion = CrossAttentionFusion(["text", "audio"], 8, query="text", heads=2)
    present = {"text": torch.ones(4, dtype=torch.bool), "audio": torch.zeros(4, dtype=torch.bool)}
    h = {"text": torch.randn(4, 8), "audio": torch.randn(4, 8)}
    out = fusion(h, present)
    assert bool(torch.isfinite(out).all())
    out.sum().backward()  # no NaN gradient either
    assert all(
        bool(torch.isfinite(p.grad).all()) for p in fusion.parameters() if p.grad is not None
    )


def test_heads_must_divide_the_state_size():
    with pytest.raises(ErcgraphError, match=r"heads=3.*dim=8"):
        CrossAttentionFusion(MODS, 8, heads=3)
    with pytest.raises(ErcgraphError, match="query 'video'"):
        CrossAttentionFusion(MODS, 8, query="video")
    with pytest.raises(ErcgraphError, match="layers"):
        CrossAttentionFusion(MODS, 8, layers=0)


def test_cross_attention_learns_a_label_that_needs_both_modalities():
    """The label is the XOR of the signs of the two modalities' first feature: neither modality
    alone, nor any linear read-out of a mean of linear projections, beats chance."""
    gen = torch.Generator().manual_seed(0)
    x = {m: torch.randn(400, 3, generator=gen) for m in ("text", "audio")}
    y = ((x["text"][:, 0] > 0) ^ (x["audio"][:, 0] > 0)).long()
    present = {m: torch.ones(200, dtype=torch.bool) for m in x}
    torch.manual_seed(0)
    project = nn.ModuleDict({m: nn.Linear(3, 16) for m in x})
    fusion = CrossAttentionFusion(["text", "audio"], 16, heads=2, dropout=0.0)
    classify = nn.Linear(16, 2)
    params = [*project.parameters(), *fusion.parameters(), *classify.parameters()]
    opt = torch.optim.Adam(params, lr=1e-2)

    def logits(rows: slice) -> torch.Tensor:
        return classify(fusion({m: project[m](x[m][rows]) for m in x}, present))

    train, test = slice(0, 200), slice(200, 400)
    for _ in range(150):
        loss = nn.functional.cross_entropy(logits(train), y[train])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        accuracy = float((logits(test).argmax(1) == y[test]).float().mean())
    assert accuracy >= 0.85


# -- emotion_alignment -------------------------------------------------------------------------
def outputs(audio, visual, present_audio=None, present_visual=None) -> ModelOutput:
    n = audio.shape[0]
    ones = torch.ones(n, dtype=torch.bool)
    return ModelOutput(
        utterance=torch.zeros(n, 1),
        nodes={"audio": audio, "visual": visual},
        inputs={},
        present={
            "audio": ones if present_audio is None else present_audio,
            "visual": ones if present_visual is None else present_visual,
        },
    )


def planted(noise: float = 0.05, seed: int = 0):
    """Three emotions, four utterances each; both modalities sit near their emotion's axis."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(3).repeat_interleave(4)
    axis = torch.eye(8)[y]
    audio = axis + noise * torch.randn(12, 8, generator=gen)
    visual = axis + noise * torch.randn(12, 8, generator=gen)
    return audio, visual, y


def test_alignment_is_lower_when_same_emotion_states_are_close_than_when_shuffled():
    audio, visual, y = planted()
    term = EmotionAlignmentLoss()
    aligned = term(outputs(audio, visual), SimpleNamespace(y=y))
    shuffled = term(outputs(audio, visual.roll(4, dims=0)), SimpleNamespace(y=y))
    assert float(aligned) < float(shuffled) - 1.0
    # the minimum of each direction is log(#positives): reached when positives share all mass
    assert float(aligned) == pytest.approx(math.log(4), abs=0.05)
    swapped = EmotionAlignmentLoss(modalities=["visual", "audio"])
    assert float(swapped(outputs(audio, visual), SimpleNamespace(y=y))) == pytest.approx(
        float(aligned)
    )


def test_alignment_ignores_unlabelled_rows_and_rows_missing_a_modality():
    audio, visual, y = planted()
    term = EmotionAlignmentLoss(temperature=0.5)
    base = term(outputs(audio, visual), SimpleNamespace(y=y))
    extra = torch.randn(4, 8)
    y2 = torch.cat([y, torch.tensor([-1, -1, 0, 1])])
    present_visual = torch.tensor([True] * 12 + [True, True, False, True])
    present_audio = torch.tensor([True] * 12 + [True, True, True, False])
    out = outputs(
        torch.cat([audio, extra]), torch.cat([visual, -extra]), present_audio, present_visual
    )
    assert torch.allclose(term(out, SimpleNamespace(y=y2)), base)


def test_alignment_has_nothing_to_score_without_two_complete_labelled_rows():
    audio, visual, y = planted()
    term = EmotionAlignmentLoss()
    assert term(outputs(audio, visual), SimpleNamespace(y=torch.full_like(y, -1))) is None
    only_one = torch.zeros(12, dtype=torch.bool)
    only_one[0] = True
    assert term(outputs(audio, visual, present_visual=only_one), SimpleNamespace(y=y)) is None


def test_alignment_modalities_default_and_errors():
    h = {"text": torch.randn(4, 8), "audio": torch.randn(4, 8)}
    present = {m: torch.ones(4, dtype=torch.bool) for m in h}
    out = ModelOutput(utterance=torch.zeros(4, 1), nodes=h, inputs={}, present=present)
    batch = SimpleNamespace(y=torch.tensor([0, 0, 1, 1]))
    # no visual here: the default pair is the model's first two modalities
    assert torch.allclose(
        EmotionAlignmentLoss()(out, batch),
        supervised_alignment(h["text"], h["audio"], batch.y, 0.1),
    )
    with pytest.raises(ErcgraphError, match="visual"):
        EmotionAlignmentLoss(modalities=["audio", "visual"])(out, batch)
    with pytest.raises(ErcgraphError, match="two distinct"):
        EmotionAlignmentLoss(modalities=["audio", "audio"])
    with pytest.raises(ErcgraphError, match="temperature"):
        EmotionAlignmentLoss(temperature=0)


def test_alignment_projection_is_learned_with_the_objective():
    audio, visual, y = planted(noise=0.5)
    objective = build_objective([{"name": "emotion_alignment", "options": {"projection": 4}}], {})
    loss, values = objective(outputs(audio, visual), SimpleNamespace(y=y))
    loss.backward()
    proj = objective.terms["emotion_alignment"].project
    assert proj[0].weight.shape == (4, 8) and proj[0].weight.grad.abs().sum() > 0
    assert "projection=4" in repr(objective)


def test_alignment_pulls_same_emotion_states_together_when_trained():
    model, batch, _ = toy_setup(heads=["emotion"])
    objective = build_objective(
        [{"name": "emotion_alignment", "options": {"modalities": ["text", "audio"]}}], {}
    )
    model.eval()
    with torch.no_grad():
        before = float(objective(model(batch), batch)[0])
    fit(model, objective, batch, 20)
    model.eval()
    with torch.no_grad():
        after = float(objective(model(batch), batch)[0])
    assert after < before - 0.3


# -- label matching -----------------------------------------------------------------------------
def on_circle(degrees: list[float]) -> torch.Tensor:
    rad = torch.tensor(degrees) * math.pi / 180
    return torch.stack([rad.cos(), rad.sin()], dim=1)


#: five utterances at these angles, labels 0 0 1 1 2; both modalities share the states
ANGLES = [0.0, 90.0, 10.0, 180.0, 80.0]
LABELS = torch.tensor([0, 0, 1, 1, 2])


def test_hard_negatives_are_the_most_similar_rows_of_another_emotion():
    s = on_circle(ANGLES)
    ok = torch.ones(5, dtype=torch.bool)
    pairs = matching_pairs(s, s, LABELS, ok, ok, hardest_positive=True)
    by_slot = {
        k: dict(zip(pairs.anchor[pairs.slot == k].tolist(), pairs.second[pairs.slot == k].tolist()))
        for k in (0, 1)
    }
    # anchor 0 (0°): other emotions at 10°, 180°, 80° -> 2; anchor 1 (90°) -> 4 (80°); ...
    assert by_slot[1] == {0: 2, 1: 4, 2: 0, 3: 1, 4: 1}
    # hardest positive: the least similar row of the same emotion (itself when alone)
    assert by_slot[0] == {0: 1, 1: 0, 2: 3, 3: 2, 4: 4}
    assert pairs.target[pairs.slot == 0].eq(1).all() and pairs.target[pairs.slot == 1].eq(0).all()
    # the second-modality anchors mirror it: their partner is on the first side
    mirrored = dict(
        zip(pairs.anchor[pairs.slot == 3].tolist(), pairs.first[pairs.slot == 3].tolist())
    )
    assert mirrored == by_slot[1]


def test_pairs_skip_unlabelled_and_missing_rows_and_random_positives_share_the_label():
    s = on_circle(ANGLES)
    y = LABELS.clone()
    y[1] = -1  # unlabelled: never an anchor nor a partner
    b_ok = torch.tensor([True, True, False, True, True])  # row 2 has no second modality
    a_ok = y >= 0
    torch.manual_seed(0)
    for _ in range(20):
        p = matching_pairs(s, s, y, a_ok, b_ok & (y >= 0))
        assert 1 not in p.first.tolist() and 1 not in p.second.tolist()
        assert 2 not in p.second.tolist()
        same = y[p.first] == y[p.second]
        assert same.tolist() == p.target.bool().tolist()
    # anchor 0: the most similar other-emotion partner with a second modality is now 4 (80°)
    neg = p.second[(p.slot == 1) & (p.anchor == 0)]
    assert neg.tolist() == [4]


def test_label_matching_head_writes_pairs_and_its_loss_trains_them():
    model, batch, _ = toy_setup(heads=["emotion", {"name": "label_matching"}])
    head = model.heads["label_matching"]
    assert isinstance(head, LabelMatchingHead) and head.modalities == ["text", "audio"]
    assert "modalities=['text', 'audio']" in repr(head)
    objective = build_objective([{"name": "label_matching"}], {})
    assert isinstance(objective.terms["label_matching"], LabelMatchingLoss)
    model.eval()
    with torch.no_grad():
        out = model(batch)
        before = float(objective(out, batch)[0])
    aux = out.aux
    assert aux["label_matching/logits"].shape == aux["label_matching/target"].shape
    assert set(aux["label_matching/slot"].unique().tolist()) == {0, 1, 2, 3}
    fit(model, objective, batch, 30)
    model.eval()
    with torch.no_grad():
        out = model(batch)
        after = float(objective(out, batch)[0])
        collected = head.collect(out, batch)
    assert after < before - 0.1
    assert collected["pred"].shape == (batch.y.numel(), 4)
    score = head.score(collected["pred"].numpy(), collected["target"].numpy())
    assert score["matching_accuracy"] > 60.0


def test_label_matching_without_labels_writes_nothing_and_scores_nothing():
    model, batch, _ = toy_setup(heads=["emotion", "label_matching"])
    batch.y = torch.full_like(batch.y, -1)
    model.eval()
    with torch.no_grad():
        out = model(batch)
    assert not any(k.startswith("label_matching") for k in out.aux)
    assert LabelMatchingLoss()(out, batch) is None
    collected = model.heads["label_matching"].collect(out, batch)
    assert model.heads["label_matching"].score(collected["pred"].numpy(), None) == {}


def test_label_matching_modalities_must_exist():
    with pytest.raises(ErcgraphError, match="visual"):
        toy_setup(heads=[{"name": "label_matching", "modalities": ["audio", "visual"]}])
    assert "label_matching" in HEADS and "label_matching" in LOSSES


# -- the shipped config -------------------------------------------------------------------------
def header_override(label: str) -> list[str]:
    """The ``--set`` arguments the config header documents after ``label``."""
    line = next(ln for ln in CONFIG.read_text().splitlines() if label in ln)
    return shlex.split(re.sub(r"^#\s*" + re.escape(label), "", line.strip()))


def train(tmp: Path, data_root: Path, *extra: str) -> tuple[dict, dict]:
    out = train_quick_cv(CONFIG, data_root, tmp, *extra)
    metrics = json.loads((out / "metrics.json").read_text())
    result = json.loads((out / "fold_0" / "seed_0" / "result.json").read_text())
    return metrics, result


def test_foalnet_config_trains_on_ravdess_with_every_loss_term_logged(tmp_path, data_root):
    metrics, result = train(tmp_path, data_root)
    assert metrics["folds_done"] == [0, 1]
    assert set(result["loss_terms"]) == {"ce", "emotion_alignment", "label_matching"}
    row = result["history"][0]
    for term in ("ce", "emotion_alignment", "label_matching"):
        assert math.isfinite(row[f"train_loss_{term}"]) and math.isfinite(row[f"dev_loss_{term}"])
    assert 0.0 <= row["dev_matching_accuracy"] <= 100.0
    assert "accuracy" in metrics["dev"] and "matching_accuracy" in metrics["dev"]


def test_the_header_switch_turns_alignment_off(tmp_path, data_root):
    override = header_override("without alignment:")
    assert override[0] == "--set"
    metrics, result = train(tmp_path, data_root, *override)
    assert set(result["loss_terms"]) == {"ce", "label_matching"}
    assert not any("emotion_alignment" in k for k in result["history"][0])
    assert "matching_accuracy" in metrics["dev"]  # the head stays; only the loss list changed
