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
) -> tuple[dict[str, Any], Path]:
    """Re-score every seed of ``run_dir`` on dev and test.

    Args:
        run_dir: the run directory.
        out_name: the JSON written into it.
        data_root: where the data is now (default: the run's, else ``$ERCGRAPH_DATA``).
        cache_dir: a cache folder for re-made features (default: the run's, else the usual).

    Returns:
        ``{split: aggregated metrics}`` and the path of the JSON written into the run directory.
    """

    import dataclasses

    from ercgraph.rundir import read_run

    cfg, meta, ckpts = read_run(run_dir)
    cfg = dataclasses.replace(
        cfg, data_root=data_root or cfg.data_root, cache_dir=cache_dir or cfg.cache_dir
    )
    with naming_imports(cfg.imports):
        return _evaluate(run_dir, cfg, meta, ckpts, out_name)


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


def _evaluate(run_dir, cfg, meta, ckpts, out_name):
    import dataclasses

    from ercgraph import decision
    from ercgraph.pipeline import prepare, read_corpus
    from ercgraph.report import aggregate, write_json
    from ercgraph.rundir import feature_config, load_normaliser, load_weights
    from ercgraph.train import eval_batches, evaluate_batches, pick_device, score_heads

    cfg = feature_config(cfg, run_dir)
    corpus, provided = read_corpus(cfg)
    check_labels(list(corpus.labels), list(meta["labels"]), corpus.source or corpus.name)
    del provided  # prepare() reads a pickle corpus again (features and corpus together)
    prep = prepare(
        dataclasses.replace(cfg),
        corpus if cfg.data.reader != "pickle" else None,
        normaliser=load_normaliser(run_dir, meta),
        head_states=meta["head_states"],
    )
    if dict(prep.store.dims()) != dict(meta["in_dims"]):
        raise ErcgraphError(
            f"features have dims {prep.store.dims()}, the run was trained on {meta['in_dims']}"
        )
    from ercgraph.models import build_model

    device = pick_device(cfg.train.device)
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
        offsets = decision.load(Path(ckpt).parent, len(meta["labels"]))
        for split in per_split:
            arrays, _, _ = evaluate_batches(model, eval_batches(prep.graphs[split]), device)
            if offsets is not None and "emotion" in arrays:  # the seed's dev-fitted rule
                arrays["emotion"]["pred"] = decision.apply_offsets(
                    arrays["emotion"]["pred"], offsets
                )
            per_split[split][seed] = score_heads(model, arrays)
    rescored = {split: aggregate(v) for split, v in per_split.items()}
    path = run_dir / out_name
    write_json(path, rescored)
    return rescored, path
