"""Decision rules fitted on the dev split: per-class logit offsets.

A classifier trained on imbalanced data predicts the majority classes too often; moving each
class's decision boundary is where much of the literature's minority-class gain comes from,
often silently. Here it is an explicit, honest option (``decision.rule: offsets``): after a
seed's best epoch is chosen, offsets ``b`` are fitted on the **dev** predictions and labels only,
then applied to dev and test alike (``argmax(log p + b)``). Test never picks anything.

The fit is coordinate ascent over a grid: for each class in turn, every offset of
``decision.grid`` is tried with the others held, and the one with the best dev objective is kept
(ties go to the offset nearest zero); ``decision.rounds`` passes over the classes. The objective
is ``decision.objective`` (``macro_f1`` or ``weighted_f1``) on dev; with
``decision.max_weighted_f1_drop`` set, offsets that cost more than that many points of dev
weighted F1 against plain argmax are not allowed (the trade-off is chosen on dev too).

Our reading of "thresholds tuned on dev": additive offsets in log-probability space (the same
family as logit adjustment, fitted rather than derived from class priors). The offsets of each
seed are saved in ``seed_<s>/decision.json``; ``evaluate`` and ``predict`` apply them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ercgraph.errors import ErcgraphError

RULES = ("argmax", "offsets")
OBJECTIVES = ("macro_f1", "weighted_f1")
FILE = "decision.json"


def _f1s(y: np.ndarray, pred: np.ndarray, k: int) -> tuple[float, float]:
    """(macro F1, weighted F1) in percent, from one confusion count (fast: no sklearn)."""
    conf = np.bincount(y * k + pred, minlength=k * k).reshape(k, k).astype(float)
    tp = np.diag(conf)
    support = conf.sum(1)
    predicted = conf.sum(0)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
    present = support > 0
    macro = float(f1[present].mean()) if present.any() else 0.0
    weighted = float((f1 * support).sum() / max(support.sum(), 1))
    return 100 * macro, 100 * weighted


def fit_offsets(
    probs: np.ndarray,
    labels: np.ndarray,
    objective: str = "macro_f1",
    max_weighted_f1_drop: float | None = None,
    grid: tuple[float, float, float] = (-3.0, 3.0, 0.1),
    rounds: int = 3,
) -> dict[str, Any]:
    """Per-class offsets on log-probabilities that maximise ``objective`` on these rows.

    Args:
        probs: ``[N, K]`` class probabilities (dev).
        labels: ``[N]`` label ids (``-1`` rows are ignored).
        objective: ``macro_f1`` or ``weighted_f1``.
        max_weighted_f1_drop: the most points of weighted F1 the offsets may cost against
            argmax on these rows (``None``: no limit).
        grid: ``(low, high, step)`` of the offsets tried.
        rounds: passes over the classes.

    Returns:
        ``{"offsets": [K floats], "before": {...}, "after": {...}}`` (macro and weighted F1 on
        these rows without and with the offsets).
    """
    if objective not in OBJECTIVES:
        raise ErcgraphError(
            f"decision.objective must be one of {list(OBJECTIVES)}, got {objective!r}"
        )
    keep = labels >= 0
    y, logp = labels[keep].astype(np.int64), np.log(np.clip(probs[keep], 1e-12, None))
    k = probs.shape[1]
    if not keep.any():
        raise ErcgraphError("decision rule: the dev split has no labelled utterance to fit on")
    lo, hi, step = grid
    values = np.round(np.arange(lo, hi + step / 2, step), 6)
    values = values[np.argsort(np.abs(values), kind="stable")]  # ties: nearest zero first
    base_macro, base_weighted = _f1s(y, logp.argmax(1), k)
    floor = None if max_weighted_f1_drop is None else base_weighted - max_weighted_f1_drop
    which = 0 if objective == "macro_f1" else 1
    offsets = np.zeros(k)
    best = (base_macro, base_weighted)[which]
    for _ in range(rounds):
        changed = False
        for c in range(k):
            keep_value = offsets[c]
            for v in values:
                offsets[c] = v
                scores = _f1s(y, (logp + offsets).argmax(1), k)
                if floor is not None and scores[1] < floor:
                    continue
                if scores[which] > best + 1e-9:
                    best, keep_value, changed = scores[which], v, True
            offsets[c] = keep_value
        if not changed:
            break
    after = _f1s(y, (logp + offsets).argmax(1), k)
    return {
        "offsets": [float(v) for v in offsets],
        "objective": objective,
        "max_weighted_f1_drop": max_weighted_f1_drop,
        "dev_before": {"macro_f1": base_macro, "weighted_f1": base_weighted},
        "dev_after": {"macro_f1": after[0], "weighted_f1": after[1]},
    }


def apply_offsets(probs: np.ndarray, offsets: list[float] | np.ndarray) -> np.ndarray:
    """Probabilities after the offsets: ``softmax(log p + b)`` (argmax = the adjusted rule)."""
    z = np.log(np.clip(probs, 1e-12, None)) + np.asarray(offsets)[None, :]
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def save(seed_dir: Path, decision: dict[str, Any]) -> None:
    from ercgraph.rundir import write_json

    write_json(seed_dir / FILE, decision)


def load(seed_dir: Path, num_classes: int, required: bool = False) -> list[float] | None:
    """The offsets a seed saved, or None when it saved none (plain argmax).

    Args:
        seed_dir: the seed's folder in the run directory.
        num_classes: how many offsets the file must hold.
        required: the run was trained with ``decision.rule: offsets``, so a missing file is an
            error, not plain argmax (``evaluate`` and ``predict`` pass it).

    Raises:
        ErcgraphError: naming the file, when it is required and missing, not valid JSON, or
            holds a wrong number of offsets or a non-finite one.
    """
    path = seed_dir / FILE
    if not path.exists():
        if required:
            raise ErcgraphError(
                f"{str(path)!r} is missing, but the run was trained with decision.rule: offsets; "
                "restore the file or train again"
            )
        return None
    try:
        offsets = json.loads(path.read_text())["offsets"]
        values = [float(v) for v in offsets]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ErcgraphError(f"{str(path)!r} is not a readable decision file: {exc}") from exc
    if len(values) != num_classes or not all(np.isfinite(values)):
        raise ErcgraphError(
            f"{str(path)!r} holds {len(values)} offsets for {num_classes} classes (or non-finite "
            "ones); restore the file or train again"
        )
    return values
