"""Re-score a finished run from its run directory alone (``ercgraph evaluate``).

The data is read again with the run's config; features are made the way the run made them
(its own copy of a fine-tuned encoder), standardised with the run's saved normaliser, and every
seed's dev-selected checkpoint is scored. Nothing in the run directory is imported or executed:
dotted paths in its config resolve only with ``--import`` or ``--trust``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ercgraph import decision
from ercgraph.errors import ErcgraphError


def check_labels(data_labels: list[str], run_labels: list[str], source: str) -> None:
    """Refuse data whose label vocabulary differs from the run's saved label map (a renamed,
    added or reordered label would silently shift every class index)."""
    if list(data_labels) == list(run_labels):
        return
    norm = {str(x).strip().lower() for x in run_labels}
    near = [x for x in data_labels if x not in run_labels and str(x).strip().lower() in norm]
    hint = f"; {near} differ from the run's labels only by case or whitespace" if near else ""
    raise ErcgraphError(
        f"{source}: the data's labels {list(data_labels)} differ from the run's label map "
        f"{list(run_labels)}{hint}; evaluate needs the same labels in the same order"
    )


def evaluate_run(
    run_dir: Path,
    out_name: str = "rescored.json",
    data_root: str | None = None,
    cache_dir: str | None = None,
    device: str | None = None,
) -> tuple[dict[str, Any], Path]:
    """Re-score every seed of ``run_dir`` on dev and test.

    Where the data and the cache are comes from the user, never from the run directory: its
    saved ``data_root`` and ``cache_dir`` name folders on the machine it was trained on (and a
    run from someone else could point them anywhere).

    Args:
        run_dir: the run directory.
        out_name: the JSON written into it (its folder is checked writable before any work).
        data_root: where the data is (default: ``$ERCGRAPH_DATA``).
        cache_dir: a cache folder for re-made features (default: ``$ERCGRAPH_CACHE``, else
            ``~/.cache/ercgraph``).
        device: where to score (default: the run's ``train.device`` if this machine has it,
            else the CPU).

    Returns:
        ``{split: aggregated metrics}`` and the path of the JSON written into the run directory.
    """

    import dataclasses

    from ercgraph.rundir import check_writable, read_run, run_device, run_file

    cfg, meta, ckpts = read_run(run_dir)
    out = run_file(run_dir, out_name, "the re-scored metrics")
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise ErcgraphError(f"{str(run_dir / out_name)!r} is not a plain file; remove it first")
    check_writable(out.parent, "the run directory")
    trained_root = cfg.data_root
    cfg = dataclasses.replace(cfg, data_root=data_root, cache_dir=cache_dir)
    dev = run_device(cfg.train.device, device)
    with naming_imports(cfg.imports), naming_data_root(data_root, trained_root):
        return _evaluate(run_dir, cfg, meta, ckpts, out, dev)


@contextlib.contextmanager
def naming_data_root(given: str | None, trained: str | None) -> Iterator[None]:
    """When the data is not found, say where it is looked for, and where the run was trained
    (its saved ``data_root`` is never used by itself)."""
    try:
        yield
    except ErcgraphError as exc:
        if given or not trained or "does not exist" not in str(exc):
            raise
        raise ErcgraphError(
            f"{exc}; the run was trained with its data under {trained!r}: pass --data-root (the "
            "run's saved data root is not used)"
        ) from exc


@contextlib.contextmanager
def naming_imports(imports: list[str]) -> Iterator[None]:
    """When a component of a run cannot be resolved, name the files the run was trained with
    (``--import``), which reading a run directory never imports by itself."""
    try:
        yield
    except ErcgraphError as exc:
        text = str(exc)
        if imports and ("--import" in text or "dotted path" in text or "unknown" in text):
            files = " ".join(f"--import {f}" for f in imports)
            raise ErcgraphError(f"{text}. This run was trained with: {files}") from exc
        raise


def _evaluate(run_dir, cfg, meta, ckpts, path, device):
    import dataclasses

    from ercgraph.pipeline import prepare, read_corpus
    from ercgraph.report import aggregate, write_json
    from ercgraph.rundir import (
        check_outputs,
        feature_config,
        load_normaliser,
        load_weights,
        normaliser_path,
        seed_offsets,
    )
    from ercgraph.train import eval_batches, evaluate_batches, score_heads

    cfg = feature_config(cfg, run_dir)
    normaliser = load_normaliser(run_dir, meta)  # checked before the data is read
    corpus, provided = read_corpus(cfg)
    check_labels(list(corpus.labels), list(meta["labels"]), corpus.source or corpus.name)
    del provided  # prepare() reads a pickle corpus again (features and corpus together)
    prep = prepare(
        dataclasses.replace(cfg),
        corpus if cfg.data.reader != "pickle" else None,
        normaliser=normaliser,
        head_states=meta["head_states"],
    )
    if dict(prep.store.dims()) != dict(meta["in_dims"]):
        raise ErcgraphError(
            f"features have dims {prep.store.dims()}, the run was trained on {meta['in_dims']}"
        )
    from ercgraph.models import build_model

    per_split: dict[str, dict[int, dict]] = {"dev": {}, "test": {}}
    edge_types = [tuple(et) for et in meta["edge_types"]]
    for seed, ckpt in zip(cfg.train.seeds, ckpts):
        model = build_model(
            cfg.model,
            meta["in_dims"],
            edge_types,
            meta["labels"],
            meta["heads"],
            meta["head_states"],
        ).to(device)
        load_weights(model, ckpt)
        offsets = None
        if "emotion" in model.heads:  # the seed's dev-fitted rule (decision.rule: offsets)
            offsets = seed_offsets(run_dir, cfg, seed, len(meta["labels"]))
        for split in per_split:
            arrays, _, _ = evaluate_batches(model, eval_batches(prep.graphs[split]), device)
            check_outputs(arrays, ckpt, normaliser_path(run_dir, meta))
            if offsets is not None and "emotion" in arrays:
                arrays["emotion"]["pred"] = decision.apply_offsets(
                    arrays["emotion"]["pred"], offsets
                )
            per_split[split][seed] = score_heads(model, arrays)
    rescored = {split: aggregate(v) for split, v in per_split.items()}
    write_json(path, rescored)
    return rescored, path
