"""Evaluation protocols: the reader's fixed split, or cross-validation by group.

``protocol.name: group_kfold`` (see :class:`~ercgraph.config.ProtocolConfig`) turns one corpus
into folds. Every labelled row joins the pool, whatever split the reader gave it; the sorted
values of the grouping column (``protocol.group``: session, speaker, actor ...) are cut into
``folds`` contiguous blocks (null: one block per group, leave-one-group-out). Fold ``k`` tests
on block ``k``; its dev split holds ``dev_groups`` groups of the training side, taken from block
``k+1`` onwards (cyclically), so dev never touches the test block; the other groups train.
Unlabelled rows stay unlabelled.

Cost is folds × one run and no more: the corpus is read and its features are loaded (or
extracted) once; each fold re-splits the same rows (:meth:`Corpus.with_splits`, row order
kept), so the graph edges come from one cache entry, and only what must be fitted on the fold's
training split (the feature normaliser, the heads' states) is refitted.

The run directory holds ``config.yaml``, ``folds.json`` (each fold's test, dev and train groups
and sizes), one complete run directory per fold (``fold_<k>/``, which ``evaluate`` and
``predict`` open as any run), and ``metrics.json`` / ``summary.md`` with every metric as
mean ± std over folds (each fold's figure being its mean over seeds) and the per-fold figures.
``folds=[k, ...]`` runs only those folds (a fold re-run alone); ``resume`` continues an
interrupted cross-validation, reusing finished folds. The aggregate covers the folds finished so
far and says which are missing.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ercgraph.config import Config, dump_config
from ercgraph.data.corpus import Corpus
from ercgraph.data.features import FeatureStore, atomic_write_bytes
from ercgraph.errors import ErcgraphError

log = logging.getLogger(__name__)

FOLDS_FILE = "folds.json"


@dataclass
class Fold:
    """One fold: its number and the groups of its test, dev and train sides."""

    index: int
    test: list[str]
    dev: list[str]
    train: list[str]

    def split_of(self) -> dict[str, str]:
        """group → split name."""
        out = {g: "train" for g in self.train}
        out.update({g: "dev" for g in self.dev})
        out.update({g: "test" for g in self.test})
        return out


def _natural_key(value: str) -> tuple:
    """Sort ``actor2`` before ``actor10`` and ``2`` before ``10``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", value))


def group_values(corpus: Corpus, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Each row's group (str) and the mask of the pooled (labelled) rows.

    Raises:
        ErcgraphError: the column is absent, empty in a pooled row, or a dialogue spans groups.
    """
    df = corpus.df
    if column not in df.columns:
        raise ErcgraphError(
            f"protocol.group: {corpus.source or corpus.name} has no column {column!r}; its "
            f"columns are {sorted(df.columns)}"
        )
    pooled = df["split"].isin(["train", "dev", "test"]).to_numpy()
    raw = df[column]
    missing = pooled & (raw.isna() | (raw.astype(str).str.strip() == "")).to_numpy()
    if missing.any():
        first = int(np.flatnonzero(missing)[0])
        raise ErcgraphError(
            f"protocol.group: column {column!r} is empty in {int(missing.sum())} of "
            f"{int(pooled.sum())} rows (first: row {first}, dialogue "
            f"{df['dialogue_id'].iloc[first]!r}); every row needs a group"
        )
    groups = raw.astype(str).str.strip().to_numpy()
    per_dialogue = (
        df.loc[pooled].assign(_g=groups[pooled]).groupby("dialogue_id", sort=False)["_g"].nunique()
    )
    if (per_dialogue > 1).any():
        d = per_dialogue[per_dialogue > 1].index[0]
        found = sorted(set(groups[(df["dialogue_id"] == d).to_numpy()]))
        raise ErcgraphError(
            f"protocol.group: dialogue {d!r} spans several {column!r} groups {found}; a dialogue "
            "must lie in one group (group by a column that is constant per dialogue, e.g. "
            "session rather than speaker)"
        )
    return groups, pooled


def make_folds(
    groups: list[str], folds: int | None, dev_groups: int | None, column: str
) -> list[Fold]:
    """Cut the sorted groups into contiguous test blocks and pick each fold's dev groups.

    Raises:
        ErcgraphError: fewer groups than folds, or too few left for dev and train.
    """
    ordered = sorted(set(groups), key=_natural_key)
    n = len(ordered)
    k = n if folds is None else folds
    if n < 2 or k > n:
        raise ErcgraphError(
            f"protocol.group: column {column!r} has {n} group(s) "
            f"({', '.join(ordered[:10])}{' ...' if n > 10 else ''}) but protocol.folds is {k}; "
            "there must be at least as many groups as folds, and at least 2"
        )
    blocks = [list(b) for b in np.array_split(np.array(ordered, dtype=object), k)]
    n_dev = dev_groups if dev_groups is not None else max(1, round(n / k))
    out = []
    for i, test in enumerate(blocks):
        rest = [g for j in range(1, k) for g in blocks[(i + j) % k]]
        if n_dev >= len(rest):
            raise ErcgraphError(
                f"protocol: fold {i} leaves {len(rest)} {column!r} group(s) outside its test "
                f"block, too few for {n_dev} dev group(s) and at least one training group; "
                "lower protocol.dev_groups or protocol.folds"
            )
        out.append(Fold(i, [str(g) for g in test], rest[:n_dev], rest[n_dev:]))
    return out


def fold_corpus(corpus: Corpus, groups: np.ndarray, pooled: np.ndarray, fold: Fold) -> Corpus:
    """The corpus re-split for one fold (same rows, same order)."""
    split_of = fold.split_of()
    split = np.where(pooled, [split_of.get(g, "unlabelled") for g in groups], corpus.df["split"])
    return corpus.with_splits(split)


def _fold_store(store: FeatureStore) -> FeatureStore:
    """The store made once for the whole corpus, handed to a fold (same rows, same order): its
    manifests drop the corpus fingerprint, which hashes the reader's split."""
    manifest = {m: {**v, "corpus": None} for m, v in store.manifest.items()}
    return FeatureStore(dict(store.features), dict(store.present), manifest)


def _fold_config(cfg: Config, index: int) -> Config:
    """What fold ``index``'s run directory records: the config with ``protocol.fold`` set, so
    ``evaluate`` and ``predict`` re-split the corpus as this fold."""
    import dataclasses

    return dataclasses.replace(cfg, protocol=dataclasses.replace(cfg.protocol, fold=index))


def apply_protocol(cfg: Config, corpus: Corpus) -> Corpus:
    """The corpus as one fold of ``cfg`` when ``protocol.fold`` is set, else unchanged."""
    p = cfg.protocol
    if p.name != "group_kfold" or p.fold is None:
        return corpus
    groups, pooled = group_values(corpus, p.group)
    folds = make_folds(list(groups[pooled]), p.folds, p.dev_groups, p.group)
    if p.fold >= len(folds):
        raise ErcgraphError(f"protocol.fold {p.fold}: the protocol has folds 0..{len(folds) - 1}")
    return fold_corpus(corpus, groups, pooled, folds[p.fold])


def run_cv(
    cfg: Config,
    out: Path,
    resume: bool = False,
    only: list[int] | None = None,
    callbacks: Sequence[Any] = (),
    score_test: bool = True,
) -> dict[str, Any]:
    """Cross-validate: every fold (or the folds in ``only``) is a full run in ``out/fold_<k>``.

    ``callbacks`` and ``score_test`` are given to every fold's :func:`ercgraph.train.run` (a
    sweep's trial: its callbacks hear each fold as one run, in fold order; with
    ``score_test=False`` no fold scores test and the aggregate has no ``test``).

    Returns:
        The aggregate written to ``out/metrics.json``.
    """
    import dataclasses

    from ercgraph.pipeline import check_config, fit_heads, load_features, prepare, read_corpus
    from ercgraph.rundir import check_out_dir, locked
    from ercgraph.train import run

    if cfg.protocol.fold is not None:  # a saved fold's config: run that fold alone
        only = sorted(set(only or []) | {cfg.protocol.fold})
        cfg = dataclasses.replace(cfg, protocol=dataclasses.replace(cfg.protocol, fold=None))
    check_config(cfg)
    check_out_dir(out, cfg, resume)
    with locked(out):
        check_out_dir(out, cfg, resume)
        t0 = time.perf_counter()
        corpus, provided = read_corpus(cfg)
        groups, pooled = group_values(corpus, cfg.protocol.group)
        folds = make_folds(
            list(groups[pooled]), cfg.protocol.folds, cfg.protocol.dev_groups, cfg.protocol.group
        )
        if only:
            bad = [k for k in only if not 0 <= k < len(folds)]
            if bad:
                raise ErcgraphError(f"--fold {bad[0]}: the protocol has folds 0..{len(folds) - 1}")
        # bad head options and feature files fail here, before the folder holds anything
        fit_heads(cfg, fold_corpus(corpus, groups, pooled, folds[0]))
        read_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        store, _ = load_features(cfg, corpus, provided)
        features_s = time.perf_counter() - t0
        _write_text(out / "config.yaml", dump_config(cfg))
        _write_folds(out, cfg, folds, corpus, groups, pooled)
        shared = _fold_store(store)
        per_fold: dict[int, dict[str, Any]] = {}
        for fold in folds:
            fold_dir = out / f"fold_{fold.index}"
            if only and fold.index not in only:
                if (fold_dir / "metrics.json").exists():
                    per_fold[fold.index] = json.loads((fold_dir / "metrics.json").read_text())
                continue
            log.info(
                "fold %d/%d: test %s, dev %s (%s)",
                fold.index + 1,
                len(folds),
                fold.test,
                fold.dev,
                cfg.protocol.group,
            )
            if resume and (fold_dir / "metrics.json").exists():
                done = json.loads((fold_dir / "metrics.json").read_text())
                if sorted(map(int, done.get("seeds", []))) == sorted(cfg.train.seeds):
                    log.info("fold %d already finished; reusing it", fold.index)
                    per_fold[fold.index] = done
                    continue
            fold_cfg = _fold_config(cfg, fold.index)
            fc = fold_corpus(corpus, groups, pooled, fold)
            prep = prepare(fold_cfg, corpus=fc, features=shared)
            per_fold[fold.index] = run(
                fold_cfg,
                fold_dir,
                resume=resume,
                prep=prep,
                callbacks=callbacks,
                score_test=score_test,
            )
        metrics = aggregate_folds(cfg, folds, per_fold)
        metrics["timings"] = {"read_s": read_s, "features_s": features_s}
        from ercgraph.rundir import write_json

        write_json(out / "metrics.json", metrics)
        _write_text(out / "summary.md", cv_summary(cfg, metrics, corpus))
    return metrics


def _write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _write_folds(
    out: Path,
    cfg: Config,
    folds: list[Fold],
    corpus: Corpus,
    groups: np.ndarray,
    pooled: np.ndarray,
) -> None:
    """``folds.json``: the groups and sizes of each fold (refusing a resume whose folds moved)."""
    dialogues = corpus.df["dialogue_id"].to_numpy()
    rows = []
    for f in folds:
        side = {}
        for name, gs in (("test", f.test), ("dev", f.dev), ("train", f.train)):
            mask = pooled & np.isin(groups, gs)
            side[name] = {
                "groups": gs,
                "utterances": int(mask.sum()),
                "dialogues": int(len(set(dialogues[mask]))),
            }
        rows.append({"fold": f.index, **side})
    doc = {"group": cfg.protocol.group, "folds": rows}
    path = out / FOLDS_FILE
    if path.exists():
        old = json.loads(path.read_text())
        if old != doc:
            raise ErcgraphError(
                f"{str(path)!r}: the folds of this run differ from the ones the corpus gives now "
                "(the data changed?); start a new run directory"
            )
        return
    _write_text(path, json.dumps(doc, indent=2))


def aggregate_folds(
    cfg: Config, folds: list[Fold], per_fold: dict[int, dict[str, Any]]
) -> dict[str, Any]:
    """Every numeric metric as mean ± std over folds, each fold's figure being its mean over
    seeds; ``per_fold`` keeps the fold figures, ``per_class`` the class F1 mean over folds."""
    done = sorted(per_fold)
    out: dict[str, Any] = {
        "protocol": "group_kfold",
        "group": cfg.protocol.group,
        "folds": len(folds),
        "folds_done": done,
        "folds_missing": [f.index for f in folds if f.index not in per_fold],
        "seeds": list(cfg.train.seeds),
        "select_metric": cfg.train.select_metric,
        "headline": cfg.metrics.headline or cfg.train.select_metric,
        "labels": next(iter(per_fold.values()))["labels"] if per_fold else [],
    }
    for split in ("dev", "test"):
        agg: dict[str, Any] = {}
        if not done:
            out[split] = agg
            continue
        if split not in per_fold[done[0]]:  # folds trained without scoring test (a sweep)
            continue
        first = per_fold[done[0]][split]
        for key, value in first.items():
            if key == "per_class" or not isinstance(value, dict) or "mean" not in value:
                continue
            vals = np.array([per_fold[k][split][key]["mean"] for k in done], dtype=float)
            agg[key] = {
                "mean": float(vals.mean()),
                "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
                "per_fold": {str(k): float(v) for k, v in zip(done, vals)},
            }
        if "per_class" in first:
            agg["per_class"] = {}
            for lab in first["per_class"]:
                f1 = np.array([per_fold[k][split]["per_class"][lab]["f1"] for k in done])
                agg["per_class"][lab] = {
                    "f1": float(f1.mean()),
                    "f1_std": float(f1.std(ddof=1)) if len(f1) > 1 else 0.0,
                    "support": int(
                        sum(per_fold[k][split]["per_class"][lab]["support"] for k in done)
                    ),
                }
        out[split] = agg
    out["epoch_s_mean"] = (
        float(
            np.mean([per_fold[k]["epoch_s_mean"] for k in done if per_fold[k].get("epoch_s_mean")])
        )
        if done
        else None
    )
    return out


def cv_summary(cfg: Config, metrics: dict[str, Any], corpus: Corpus) -> str:
    """The cross-validation's markdown summary: the headline metric first, per-fold figures."""
    scored = [s for s in ("dev", "test") if s in metrics]
    test = metrics[scored[-1]]  # dev when test was not scored (a sweep's trial)
    lead = metrics["headline"]
    shown = [k for k in test if k != "per_class"]
    if lead in shown:
        shown.remove(lead)
        shown.insert(0, lead)
    digits = {k: 3 if k.startswith(("ccc", "pearson", "mae")) else 2 for k in shown}
    lines = [
        f"# ercgraph cross-validation: {corpus.name}, {cfg.model.name}",
        "",
        f"{metrics['folds']} folds by {metrics['group']!r} (test groups held out, dev groups from "
        f"the training side), seeds {metrics['seeds']}; epoch selected on dev "
        f"{metrics['select_metric']}. Each fold's figure is its mean over seeds; mean ± std is "
        "over folds.",
        "",
    ]
    if metrics["folds_missing"]:
        lines += [f"**Incomplete:** folds {metrics['folds_missing']} have not run yet.", ""]
    lines += ["| | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]
    for split in scored:
        m = metrics[split]
        cells = " | ".join(
            f"{m[k]['mean']:.{digits[k]}f} ± {m[k]['std']:.{digits[k]}f}" for k in shown if k in m
        )
        lines.append(f"| {split} | {cells} |")
    side = scored[-1]
    lines += ["", f"## Per fold ({side} {lead})", "", f"| fold | {side} {lead} |", "|---|---|"]
    for k, v in test.get(lead, {}).get("per_fold", {}).items():
        lines.append(f"| {k} | {v:.{digits.get(lead, 2)}f} |")
    if "per_class" in test:
        lines += ["", f"## Per-class F1 ({side}, mean ± std over folds)", ""]
        lines += ["| class | F1 | support (all folds) |", "|---|---|---|"]
        for lab, v in test["per_class"].items():
            lines.append(f"| {lab} | {v['f1']:.2f} ± {v['f1_std']:.2f} | {v['support']} |")
    return "\n".join(lines) + "\n"
