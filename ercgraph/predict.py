"""Predict the emotions of new conversations with a trained run.

The input is any table the ``table`` reader can map (labels optional). Features are made the way
the run made them (the run's fine-tuned encoder when it fine-tuned one), graphs are built by the
run's builders, and the probabilities of every seed's dev-selected checkpoint are averaged.
"""

from __future__ import annotations

import dataclasses
import re
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
    features: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Predict every utterance of ``table``.

    Args:
        run_dir: the trained run.
        table: the conversations (any layout the ``table`` reader maps).
        columns: ``{field: column}`` of the table (``--column``).
        options: table reader options (``encoding``, ``format``).
        cache_dir: a cache folder for made features (default: ``$ERCGRAPH_CACHE``, else
            ``~/.cache/ercgraph``; the run's saved one is never used).
        features: ``{modality: array file}`` for every modality the run read from a file
            (``features.files``): the new table's own features (``--features``), in the format
            the run's ``features.files`` section describes; the training file is never reused.

    Returns:
        One row per utterance: ``dialogue_id``, ``turn``, ``speaker``, ``text`` (if given),
        ``label`` (if given), ``predicted`` and ``prob_<label>`` for every class (with an
        emotion head), ``sentiment_predicted`` (sentiment head) and ``pred_<dimension>``
        (regression head); every value is the mean over the run's seeds.
    """
    from ercgraph.evaluate import naming_imports
    from ercgraph.rundir import read_run

    cfg, meta, ckpts = read_run(run_dir)
    # where things live is the user's to say: the run's saved folders are another machine's
    cfg = dataclasses.replace(cfg, data_root=None, cache_dir=cache_dir)
    cfg = with_feature_files(cfg, run_dir, features or {})
    try:
        with naming_imports(cfg.imports):
            return _predict(run_dir, table, columns, options, cfg, meta, ckpts)
    except ErcgraphError as exc:
        hinted = predict_hints(str(exc))
        if hinted == str(exc):
            raise
        raise ErcgraphError(hinted) from exc


def predict_hints(message: str) -> str:
    """An error message with config keys that ``predict`` cannot set replaced by the options
    that set the same thing (``data.columns.speaker`` → ``--column speaker=<column>``)."""
    message = re.sub(r"\bdata\.columns\.(\w+)", r"--column \1=<column>", message)
    message = message.replace("data.options.encoding", "--encoding")
    message = message.replace("data.options.format", "--format")
    return re.sub(r"\bfeatures\.files\.(\w+)\.path\b", r"--features \1=FILE", message)


def with_feature_files(cfg: Any, run_dir: Path, given: dict[str, str]) -> Any:
    """The run's config with every ``features.files`` modality read from the file the user gave
    for the new table (its ``key``, ``columns``, ``id_column`` and ``id_key`` stay the run's:
    the new file has the training file's layout).

    Raises:
        ErcgraphError: when a modality the run read from a file has none given, or a file is
            given for a modality the run did not read from a file.
    """
    need = [m for m in cfg.features.modalities if m in cfg.features.files]
    extra = sorted(set(given) - set(need))
    if extra:
        raise ErcgraphError(
            f"--features {extra[0]}=...: the run {str(run_dir)!r} reads no {extra[0]!r} features "
            f"from a file (it reads {need or 'none'} from files)"
        )
    missing = [m for m in need if m not in given]
    if missing:
        flags = " ".join(f"--features {m}=FILE" for m in missing)
        raise ErcgraphError(
            f"the run {str(run_dir)!r} read modality(ies) {missing} from feature files "
            f"(features.files), which hold the training rows only; give the new table's own: "
            f"{flags}"
        )
    files = {
        m: dataclasses.replace(
            cfg.features.files[m], path=str(Path(given[m]).expanduser().absolute())
        )
        for m in need
    }
    return dataclasses.replace(cfg, features=dataclasses.replace(cfg.features, files=files))


def output_path(run_dir: Path, table: Path, out: str | None) -> Path:
    """Where the predictions go, checked before any work: ``out``, else
    ``<run>/predictions/<table>.csv``. An existing file is never overwritten, the folder must
    be writable, and inside the run neither ``predictions/`` nor the file may be a symlink or
    lead outside it."""
    from ercgraph.rundir import check_writable, run_file

    if out:
        path = Path(out)
    else:
        name = f"{Path(table).stem}.csv"
        folder = run_dir / "predictions"
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise ErcgraphError(
                f"{str(folder)!r} is a symlink or a file; predict writes only into a plain "
                "predictions/ folder inside the run (or pass --out)"
            )
        run_file(run_dir, f"predictions/{name}", "the predictions file")
        path = folder / name
    if path.is_symlink() or path.exists():
        raise ErcgraphError(f"{str(path)!r} already exists; choose another --out")
    check_writable(path.parent, "the output folder")
    return path


def _predict(run_dir, table, columns, options, cfg, meta, ckpts) -> pd.DataFrame:
    from ercgraph import decision
    from ercgraph.data.table import read_table, read_table_file
    from ercgraph.models import build_model
    from ercgraph.pipeline import prepare
    from ercgraph.rundir import (
        check_outputs,
        feature_config,
        load_normaliser,
        load_weights,
        normaliser_path,
        seed_offsets,
    )
    from ercgraph.train import eval_batches, evaluate_batches

    labels = meta["labels"]
    if cfg.data.reader == "pickle":
        raise ErcgraphError(
            f"{str(run_dir)!r} was trained on features read from a pickle "
            f"({cfg.data.path}); predict can only remake features it extracts itself "
            "(text, audio, visual encoders)"
        )
    # the run's own files are checked before the table is read or any feature is made
    pcfg = feature_config(cfg, run_dir)
    normaliser = load_normaliser(run_dir, meta)
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
    prep = prepare(
        dataclasses.replace(pcfg, data=data),
        corpus,
        splits=(),
        normaliser=normaliser,
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
    for seed, ckpt in zip(cfg.train.seeds, ckpts):
        model = build_model(
            cfg.model, meta["in_dims"], model_types, labels, meta["heads"], meta["head_states"]
        )
        load_weights(model, ckpt)
        heads = model.heads
        arrays, _, rows = evaluate_batches(model, batches, torch.device("cpu"))
        check_outputs(arrays, ckpt, normaliser_path(run_dir, meta))
        offsets = None
        if "emotion" in model.heads:  # the seed's dev-fitted rule (decision.rule: offsets)
            offsets = seed_offsets(run_dir, cfg, seed, len(labels))
        if offsets is not None and "emotion" in arrays:
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


def write_predictions(df: pd.DataFrame, path: Path, run_dir: Path | None = None) -> None:
    """Write the predictions CSV atomically; an existing file is never overwritten. With
    ``run_dir`` (the default place, inside the run) its folder is checked again, so a symlink
    put there while predicting is not followed."""
    if run_dir is not None:
        from ercgraph.rundir import run_file

        if path.parent.is_symlink():
            raise ErcgraphError(f"{str(path.parent)!r} is a symlink; nothing was written")
        run_file(run_dir, f"{path.parent.name}/{path.name}", "the predictions file")
    if path.is_symlink() or path.exists():
        raise ErcgraphError(f"{str(path)!r} already exists; choose another --out")
    atomic_write_bytes(path, df.to_csv(index=False).encode())
