"""Predict the emotions of new conversations with a trained run.

The input is any table the ``table`` reader can map (labels optional). Features are made the way
the run made them (the run's fine-tuned encoder when it fine-tuned one), graphs are built by the
run's builders, and the probabilities of every seed's dev-selected checkpoint are averaged.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ercgraph.config import Config, DataConfig, load_config
from ercgraph.data.features import atomic_write_bytes
from ercgraph.errors import ErcgraphError


def _run_files(run_dir: Path) -> tuple[Config, dict[str, Any], list[Path]]:
    if not (run_dir / "config.yaml").is_file():
        raise ErcgraphError(f"{str(run_dir)!r} is not a run directory (no config.yaml)")
    if not (run_dir / "model.json").is_file():
        raise ErcgraphError(
            f"{str(run_dir)!r} has no model.json; it was not trained to the point of saving a model"
        )
    cfg = load_config(run_dir / "config.yaml")
    meta = json.loads((run_dir / "model.json").read_text())
    ckpts = [run_dir / f"seed_{s}" / "best.safetensors" for s in cfg.train.seeds]
    if not any(c.is_file() for c in ckpts):
        raise ErcgraphError(
            f"{str(run_dir)!r} holds no checkpoint (seed_*/best.safetensors); "
            "train it first or resume it with --resume"
        )
    unfinished = [
        s for s in cfg.train.seeds if not (run_dir / f"seed_{s}" / "result.json").is_file()
    ]
    if unfinished:
        raise ErcgraphError(
            f"{str(run_dir)!r}: seed(s) {unfinished} did not finish (no result.json), so their "
            "checkpoints are not dev-selected yet; finish the run with --resume"
        )
    return cfg, meta, ckpts


def _feature_config(cfg: Config, run_dir: Path) -> Config:
    """The run's text settings; a fine-tuned encoder is reused, never re-trained on new data."""
    text = cfg.features.text
    if text.finetune.enabled:
        info = json.loads((run_dir / "features.json").read_text())
        path = (info.get("text") or {}).get("finetuned_path")
        if not path or not Path(path).is_dir():
            raise ErcgraphError(
                f"the run's fine-tuned text encoder {path!r} is gone (it lives in "
                "the cache); re-run training to recreate it"
            )
        ft = text.finetune
        text = dataclasses.replace(
            text,
            encoder=path,
            context_turns=ft.context_turns,
            max_length=ft.max_length,
            finetune=dataclasses.replace(ft, enabled=False),
        )
    return dataclasses.replace(cfg, features=dataclasses.replace(cfg.features, text=text))


def predict(
    run_dir: Path,
    table: Path,
    columns: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Predict every utterance of ``table``.

    Returns:
        One row per utterance: ``dialogue_id``, ``turn``, ``speaker``, ``text`` (if given),
        ``label`` (if given), ``predicted`` and ``prob_<label>`` for every class.
    """
    from safetensors.torch import load_file

    from ercgraph.data.table import read_table, read_table_file
    from ercgraph.models import build_model
    from ercgraph.train import predict_graphs, prepare

    cfg, meta, ckpts = _run_files(run_dir)
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
    pcfg = _feature_config(cfg, run_dir)
    prep = prepare(dataclasses.replace(pcfg, data=data), corpus, splits=())
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
    graphs = [g for split in prep.graphs.values() for g in split]
    probs = np.zeros((corpus.num_utterances, len(labels)))
    from torch_geometric.loader import DataLoader

    batches = list(DataLoader(graphs, batch_size=64, shuffle=False))
    rows = torch.cat([b.row for b in batches]).numpy()
    for ckpt in ckpts:
        model = build_model(cfg.model, meta["in_dims"], model_types, len(labels), cfg.multitask)
        model.load_state_dict(load_file(ckpt))
        p, _, _ = predict_graphs(model, batches, torch.device("cpu"))
        probs[rows] += p / len(ckpts)
    df = corpus.df
    out = pd.DataFrame(
        {"dialogue_id": df["dialogue_id"], "turn": df["turn"], "speaker": df["speaker"]}
    )
    if "text" in df.columns:
        out["text"] = df["text"]
    if has_label:
        out["label"] = df["label"]
    out["predicted"] = [labels[i] for i in probs.argmax(1)]
    for i, lab in enumerate(labels):
        out[f"prob_{lab}"] = probs[:, i].round(6)
    return out


def write_predictions(df: pd.DataFrame, path: Path) -> None:
    """Write the predictions CSV atomically; an existing file is never overwritten."""
    if path.exists():
        raise ErcgraphError(f"{str(path)!r} already exists; choose another --out")
    atomic_write_bytes(path, df.to_csv(index=False).encode())
