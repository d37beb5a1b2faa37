"""Predict the emotions of new conversations with a trained run.

The input is any table the ``table`` reader can map (labels optional). Features are made the way
the run made them (the run's fine-tuned encoder when it fine-tuned one), graphs are built by the
run's builders, and the probabilities of every seed's dev-selected checkpoint are averaged.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ercgraph.config import DataConfig
from ercgraph.data.features import atomic_write_bytes
from ercgraph.errors import ErcgraphError


def predict(
    run_dir: Path,
    table: Path,
    columns: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    cache_dir: str | None = None,
) -> pd.DataFrame:
    """Predict every utterance of ``table``.

    Returns:
        One row per utterance: ``dialogue_id``, ``turn``, ``speaker``, ``text`` (if given),
        ``label`` (if given), ``predicted`` and ``prob_<label>`` for every class (with an
        emotion head), ``sentiment_predicted`` (sentiment head) and ``pred_<dimension>``
        (regression head); every value is the mean over the run's seeds.
    """
    from ercgraph.evaluate import naming_imports
    from ercgraph.rundir import read_run

    cfg, meta, ckpts = read_run(run_dir)
    if cache_dir:
        cfg = dataclasses.replace(cfg, cache_dir=cache_dir)
    with naming_imports(cfg.imports):
        return _predict(run_dir, table, columns, options, cfg, meta, ckpts)


def _predict(run_dir, table, columns, options, cfg, meta, ckpts) -> pd.DataFrame:
    from ercgraph import decision
    from ercgraph.data.table import read_table, read_table_file
    from ercgraph.models import build_model
    from ercgraph.pipeline import prepare
    from ercgraph.rundir import feature_config, load_normaliser, load_weights
    from ercgraph.train import eval_batches, evaluate_batches

    labels = meta["labels"]
    if not Path(table).is_file():
        raise ErcgraphError(f"no such input table {str(table)!r}")
    columns = dict(columns or {})
    opts = dict(options or {})
    header = list(read_table_file(Path(table), opts.get("format")).df.columns)
    has_label = "label" in columns or "label" in header
    if has_label and "split" not in columns and "split" not in header:
        opts.setdefault("split", "test")  # labelled rows are scored, never trained on
    data = DataConfig(
        reader="table",
        path=str(Path(table).resolve()),
        columns=columns or None,
        labels=labels,
        options=opts,
    )
    corpus = read_table(data, None)
    for need in ("text",):
        if need in cfg.features.modalities and need not in corpus.df.columns:
            raise ErcgraphError(
                f"{table}: the model needs a {need!r} column (map it with "
                f"--column {need}=<your column>); the file has {header}"
            )
    if cfg.data.reader == "pickle":
        raise ErcgraphError(
            f"{str(run_dir)!r} was trained on features read from a pickle "
            f"({cfg.data.path}); predict can only remake features it extracts itself "
            "(text, audio, visual encoders)"
        )
    pcfg = feature_config(cfg, run_dir)
    prep = prepare(
        dataclasses.replace(pcfg, data=data),
        corpus,
        splits=(),
        normaliser=load_normaliser(run_dir, meta),
        head_states=meta["head_states"],
    )
    if dict(prep.store.dims()) != dict(meta["in_dims"]):
        raise ErcgraphError(
            f"features of {table} have dims {prep.store.dims()}, the model was trained on "
            f"{meta['in_dims']}; predict makes features the way the run made them, which failed"
        )
    model_types = [tuple(et) for et in meta["edge_types"]]
    if sorted(prep.edge_types) != sorted(model_types):
        raise ErcgraphError(
            f"graphs of {table} have edge types {prep.edge_types}, the model expects {model_types}"
        )
    batches = [b for split in prep.graphs.values() for b in eval_batches(split)]
    sums: dict[str, np.ndarray] = {}
    heads = None
    for ckpt in ckpts:
        model = build_model(
            cfg.model, meta["in_dims"], model_types, labels, meta["heads"], meta["head_states"]
        )
        load_weights(model, ckpt)
        heads = model.heads
        arrays, _, rows = evaluate_batches(model, batches, torch.device("cpu"))
        offsets = decision.load(Path(ckpt).parent, len(labels))
        if offsets is not None and "emotion" in arrays:  # the seed's dev-fitted rule
            arrays["emotion"]["pred"] = decision.apply_offsets(arrays["emotion"]["pred"], offsets)
        for name, parts in arrays.items():
            if name not in sums:
                sums[name] = np.zeros((corpus.num_utterances, *parts["pred"].shape[1:]))
            sums[name][rows] += parts["pred"] / len(ckpts)
    df = corpus.df
    out = pd.DataFrame(
        {"dialogue_id": df["dialogue_id"], "turn": df["turn"], "speaker": df["speaker"]}
    )
    if "text" in df.columns:
        out["text"] = df["text"]
    if has_label:
        out["label"] = df["label"]
    if "emotion" in sums:
        probs = sums["emotion"]
        out["predicted"] = [labels[i] for i in probs.argmax(1)]
        for i, lab in enumerate(labels):
            out[f"prob_{lab}"] = probs[:, i].round(6)
    if "sentiment" in sums and heads is not None:
        names = heads["sentiment"].labels
        out["sentiment_predicted"] = [names[i] for i in sums["sentiment"].argmax(1)]
    if "regression" in sums and heads is not None:
        for j, name in enumerate(heads["regression"].names):
            out[f"pred_{name}"] = sums["regression"][:, j].round(6)
    return out


def write_predictions(df: pd.DataFrame, path: Path) -> None:
    """Write the predictions CSV atomically; an existing file is never overwritten."""
    if path.exists():
        raise ErcgraphError(f"{str(path)!r} already exists; choose another --out")
    atomic_write_bytes(path, df.to_csv(index=False).encode())
