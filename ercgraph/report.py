"""Run reports: metrics (scikit-learn), mean ± std over seeds, markdown, and plots (matplotlib)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ercgraph.data.features import atomic_write_bytes

HEADLINE = ("accuracy", "weighted_f1", "macro_f1")


def score(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    labels: Sequence[str],
    exclude_label: str | None = None,
) -> dict[str, Any]:
    """Accuracy (WA), unweighted accuracy (UA, the macro recall), weighted, macro and micro F1
    (percent) and per-class precision/recall/F1/support.

    ``micro_f1`` pools every class except ``exclude_label`` (DailyDialog's micro F1 without
    ``neutral``: predictions of the excluded class count as misses of the true class, true
    excluded rows predicted as another class as false positives); without an excluded label it
    equals the accuracy.
    """
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    ids = list(range(len(labels)))
    kept = [i for i, lab in enumerate(labels) if lab != exclude_label]
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=ids, zero_division=0)
    seen = s > 0
    return {
        "accuracy": 100.0 * accuracy_score(y_true, y_pred) if len(y_true) else 0.0,
        "unweighted_accuracy": 100.0 * float(r[seen].mean()) if seen.any() else 0.0,
        "weighted_f1": 100.0
        * f1_score(y_true, y_pred, labels=ids, average="weighted", zero_division=0),
        "macro_f1": 100.0 * f1_score(y_true, y_pred, labels=ids, average="macro", zero_division=0),
        "micro_f1": 100.0 * f1_score(y_true, y_pred, labels=kept, average="micro", zero_division=0),
        "per_class": {
            lab: {
                "precision": 100.0 * p[i],
                "recall": 100.0 * r[i],
                "f1": 100.0 * f[i],
                "support": int(s[i]),
            }
            for i, lab in enumerate(labels)
        },
    }


def aggregate(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Combine per-seed scores of one split into ``{metric: {mean, std, per_seed}}``.

    Every numeric metric is aggregated (classification, sentiment, regression). ``per_class``
    holds the mean over seeds of each class's precision, recall and F1 (support is the same for
    every seed), plus ``f1_std``.
    """
    seeds = sorted(per_seed)
    out: dict[str, Any] = {}
    keys = [k for k, v in per_seed[seeds[0]].items() if isinstance(v, (int, float))]
    for key in keys:
        vals = np.array([per_seed[s][key] for s in seeds], dtype=float)
        out[key] = {
            "mean": float(vals.mean()),
            "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
            "per_seed": {str(s): float(v) for s, v in zip(seeds, vals)},
        }
    if "per_class" not in per_seed[seeds[0]]:
        return out
    labels = list(per_seed[seeds[0]]["per_class"])
    out["per_class"] = {}
    for lab in labels:
        rows = [per_seed[s]["per_class"][lab] for s in seeds]
        f1s = np.array([r["f1"] for r in rows])
        out["per_class"][lab] = {
            "precision": float(np.mean([r["precision"] for r in rows])),
            "recall": float(np.mean([r["recall"] for r in rows])),
            "f1": float(f1s.mean()),
            "f1_std": float(f1s.std(ddof=1)) if len(rows) > 1 else 0.0,
            "support": int(rows[0]["support"]),
        }
    return out


def fmt(m: dict[str, float]) -> str:
    return f"{m['mean']:.2f} ± {m['std']:.2f}"


def markdown_summary(
    metrics: dict[str, Any], title: str, extra: dict[str, Any] | None = None
) -> str:
    """The run's markdown summary: headline table, per-class F1 table, notes."""
    lines = [f"# {title}", ""]
    seeds = [str(s) for s in metrics.get("seeds", [])]
    lines += [
        f"Seeds: {', '.join(seeds)}. Model selection: best epoch by dev "
        f"{metrics.get('select_metric', 'weighted_f1')} (the test split is never used for "
        "selection). Mean ± std over seeds; accuracy and F1 are percent, CCC and Pearson "
        "correlation lie in [-1, 1], MAE is on the targets' scale.",
        "",
    ]
    shown = [k for k in metrics.get("test", {}) if k != "per_class"]
    lead = metrics.get("headline")
    if lead in shown:  # the corpus's standard metric first
        shown.remove(lead)
        shown.insert(0, lead)

    def cell(key: str, m: dict[str, float]) -> str:
        digits = 3 if key.startswith(("ccc", "pearson", "mae")) else 2
        return f"{m['mean']:.{digits}f} ± {m['std']:.{digits}f}"

    lines += ["| split | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]
    for split in ("dev", "test"):
        if split in metrics:
            m = metrics[split]
            lines.append(f"| {split} | " + " | ".join(cell(k, m[k]) for k in shown) + " |")
    for split in ("dev", "test"):
        ens = metrics.get(f"{split}_ensemble")
        if ens:
            cells = " | ".join(f"{ens[k]:.2f}" if k in ens else "" for k in shown)
            lines.append(f"| {split}, ensemble of the seeds (emotion head) | {cells} |")
    lines += _baseline_lines(metrics, shown)
    if "test" in metrics and "per_class" in metrics["test"]:
        lines += ["", "## Per-class F1 (test, mean ± std over seeds)", ""]
        pc = metrics["test"]["per_class"]
        lines += ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for lab, v in pc.items():
            lines.append(
                f"| {lab} | {v['precision']:.2f} | {v['recall']:.2f} | "
                f"{v['f1']:.2f} ± {v['f1_std']:.2f} | {v['support']} |"
            )
    if extra:
        lines += ["", "## Run facts", ""]
        lines += [f"- {k}: {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def _baseline_lines(metrics: dict[str, Any], shown: list[str]) -> list[str]:
    """The baselines' rows under the headline table (same columns), the model's Δ over each on
    the select metric, and why a baseline is missing."""
    rows, notes = [], []
    for name, b in (metrics.get("baselines") or {}).items():
        if "missing" in b:
            notes.append(f"- No {name} baseline: {b['missing']}.")
            continue
        what = f"{b['model']}, {b['param']}={b['chosen']:g} chosen on dev"
        for split in ("dev", "test"):
            scores = b.get(split) or {}
            cells = " | ".join(
                f"{scores[k]:.{3 if k.startswith(('ccc', 'pearson', 'mae')) else 2}f}"
                if isinstance(scores.get(k), float)
                else ""
                for k in shown
            )
            rows.append(f"| {split}, linear probe ({what}) | {cells} |")
        sel = b.get("select_metric")
        for split in ("dev", "test"):
            d = (b.get("delta") or {}).get(split, {}).get(sel)
            if d is not None:
                notes.append(f"- Δ {split} {sel}, model − linear probe: {d:+.2f}")
        if b.get("warning"):
            notes.append(f"- Warning: {b['warning']}.")
    if not (rows or notes):
        return []
    return rows + (["", "Baselines (same node features, no context; see ercgraph.probe):"] + notes)


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, default=str).encode())


def plot_confusion(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str], path: Path, title: str
) -> None:
    """Row-normalised confusion matrix with counts, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(y_true, y_pred, labels=list(range(len(labels))))
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(labels), 0.8 + 0.8 * len(labels)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{cm[i, j]}\n{norm[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    _save_fig(fig, path)


def plot_learning_curves(
    histories: dict[int, list[dict[str, float]]], path: Path, select_metric: str
) -> None:
    """Total loss (train and dev), every loss term (train, mean over seeds) and the dev metric
    per epoch, with each seed's selected epoch marked. Epoch ticks are integers."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(14, 4))
    for seed, hist in sorted(histories.items()):
        ep = [h["epoch"] for h in hist]
        # markers keep a one-epoch run visible (a single point draws no line)
        (line,) = a1.plot(
            ep, [h["train_loss"] for h in hist], marker=".", label=f"seed {seed} train"
        )
        a1.plot(
            ep, [h["dev_loss"] for h in hist], "--", marker=".", color=line.get_color(), label="dev"
        )
        from ercgraph.metrics import higher_is_better

        dev = [h[f"dev_{select_metric}"] for h in hist]
        a3.plot(ep, dev, marker=".", color=line.get_color(), label=f"seed {seed}")
        best = int(np.argmax(dev) if higher_is_better(select_metric) else np.argmin(dev))
        a3.plot(ep[best], dev[best], "o", color=line.get_color())
    prefix = "train_loss_"
    terms = sorted(
        {k[len(prefix) :] for h in histories.values() for r in h for k in r if k.startswith(prefix)}
    )
    for term in terms:
        by_epoch: dict[int, list[float]] = {}
        for hist in histories.values():
            for r in hist:
                v = r.get(f"train_loss_{term}")
                if v is not None and np.isfinite(v):
                    by_epoch.setdefault(r["epoch"], []).append(v)
        ep = sorted(by_epoch)
        a2.plot(ep, [np.mean(by_epoch[e]) for e in ep], marker=".", label=term)
    a1.set_title("total loss (solid train, dashed dev)")
    a2.set_title(f"loss terms, train (mean over {len(histories)} seed(s))")
    a3.set_title("dev score (dot = selected epoch)")
    a3.set_ylabel(f"dev {select_metric}")
    last = max((h["epoch"] for hist in histories.values() for h in hist), default=1)
    for ax in (a1, a2, a3):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if last <= 1:  # one epoch: one integer tick, not 0.945 ... 1.050
            ax.set_xlim(0.5, 1.5)
            ax.set_xticks([1])
    a1.set_ylabel("loss")
    if len(histories) <= 6:
        a1.legend(fontsize=7, ncol=2)
        a3.legend(fontsize=7)
    if terms:
        a2.legend(fontsize=8)
    fig.tight_layout()
    _save_fig(fig, path)


def _save_fig(fig: Any, path: Path) -> None:
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
