"""The training recipe: config → corpus → features → graphs → model → fit (dev selection) →
test evaluation → report. Reads top to bottom; holds no globals.

Each seed trains in its own folder ``seed_<s>/`` of the run directory. After every epoch a
checkpoint (model, optimiser, RNG and history) is written atomically to ``last.pt``; the weights
of the best epoch by the dev metric go to ``best.safetensors``; a finished seed writes
``result.json``. ``resume=True`` skips finished seeds and continues an interrupted one from its
last checkpoint.
"""

from __future__ import annotations

import json
import logging
import platform
import random
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ercgraph.config import Config, cache_dir, dump_config
from ercgraph.data.corpus import Corpus
from ercgraph.data.features import FeatureStore, atomic_write_bytes
from ercgraph.errors import ErcgraphError
from ercgraph.report import (
    aggregate,
    markdown_summary,
    plot_confusion,
    plot_learning_curves,
    score,
    write_json,
)

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Everything the model needs, built once and shared by all seeds (and ablation variants)."""

    corpus: Corpus
    store: FeatureStore
    graphs: dict[str, list]  # split → list of HeteroData
    edge_types: list[tuple[str, str, str]]
    timings: dict[str, float]
    feature_info: dict[str, Any]


# -- setup ------------------------------------------------------------------------------------
def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ErcgraphError(f"train.device is {name!r} but CUDA is not available here")
    return torch.device(name)


def load_features(
    cfg: Config, corpus: Corpus, provided: FeatureStore | None = None
) -> tuple[FeatureStore, dict[str, Any]]:
    """The FeatureStore for every configured modality.

    A modality the reader already provided (a feature pickle) is taken from ``provided``; text is
    otherwise extracted (or reused from the cache) with the configured encoder.
    """
    from ercgraph.encoders.extract import extract_text_features

    store: FeatureStore | None = None
    info: dict[str, Any] = {}
    for modality in cfg.features.modalities:
        if provided is not None and modality in provided.features:
            made = provided.manifest.get(modality, {})
            if made.get("corpus") not in (None, corpus.fingerprint()):
                raise ErcgraphError(
                    f"features for {modality!r} from {made.get('file')} were "
                    "made for another corpus (fingerprint differs)"
                )
            part = FeatureStore(
                {modality: provided.features[modality]},
                {modality: provided.present[modality]},
                {modality: made},
            )
            info[modality] = {"source": made.get("encoder", "reader"), "reused": True}
        elif modality == "text":
            part, info["text"] = extract_text_features(corpus, cfg.features.text, cache_dir(cfg))
        elif modality in ("audio", "visual"):
            from ercgraph.encoders.media_extract import extract_media_features

            part, info[modality] = extract_media_features(
                corpus, modality, getattr(cfg.features, modality), cache_dir(cfg)
            )
        else:
            have = sorted(provided.features) if provided is not None else []
            raise ErcgraphError(
                f"features.modalities: no feature source for modality {modality!r}; the reader "
                f"provides {have or 'none'}; text, audio and visual can be extracted"
            )
        store = part if store is None else store.merge(part)
    if store is None:
        raise ErcgraphError("features.modalities is empty; name at least one modality")
    store.check_rows(corpus.num_utterances, "features")
    return store, info


def prepare(
    cfg: Config, corpus: Corpus | None = None, splits: tuple[str, ...] = ("train", "dev", "test")
) -> Prepared:
    """Corpus, features and graphs (each cached on disk where deterministic).

    Args:
        cfg: the run config.
        corpus: an already loaded corpus (``predict``); default: read ``cfg.data``.
        splits: the splits that must be present.
    """
    from ercgraph.config import data_root
    from ercgraph.data.load import load_corpus
    from ercgraph.graphs.build import build_graphs

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    provided = None
    if corpus is None and cfg.data.reader == "pickle":
        from ercgraph.data.pickles import read_pickle_features

        corpus, provided = read_pickle_features(cfg.data, data_root(cfg))
    elif corpus is None:
        corpus = load_corpus(cfg)
    timings["read_s"] = time.perf_counter() - t0
    for split in splits:
        if split not in corpus.splits:
            raise ErcgraphError(
                f"{corpus.source or corpus.name}: the corpus has no {split!r} "
                f"split (found {corpus.splits}); this needs {list(splits)}"
            )
    t0 = time.perf_counter()
    store, info = load_features(cfg, corpus, provided)
    timings["features_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    graphs = build_graphs(corpus, store, cfg.graph.builders, cfg.graph.edge_types, cache_dir(cfg))
    timings["graphs_s"] = time.perf_counter() - t0
    if not graphs:
        raise ErcgraphError("no dialogue graphs were built")
    edge_types = sorted(graphs[0].edge_types)
    by_split: dict[str, list] = {s: [] for s in corpus.splits}
    first_split = corpus.df.groupby("dialogue_id", sort=False)["split"].first()
    for g in graphs:
        by_split[first_split[g.dialogue_id]].append(g)
    return Prepared(corpus, store, by_split, edge_types, timings, info)


# -- one seed ---------------------------------------------------------------------------------
def _loader(graphs: list, batch_size: int, shuffle: bool, seed: int = 0):
    from torch_geometric.loader import DataLoader

    gen = torch.Generator().manual_seed(seed)
    return DataLoader(graphs, batch_size=batch_size, shuffle=shuffle, generator=gen)


@torch.no_grad()
def predict_graphs(
    model: nn.Module, batches: list, device: torch.device, loss_fn: nn.Module | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Probabilities, labels and mean loss over pre-collated batches."""
    model.eval()
    probs, ys, total, n = [], [], 0.0, 0
    for batch in batches:
        batch = batch.to(device)
        logits = model(batch)
        if loss_fn is not None:
            labelled = batch.y >= 0
            if labelled.any():
                total += float(loss_fn(logits[labelled], batch.y[labelled])) * int(labelled.sum())
                n += int(labelled.sum())
        probs.append(torch.softmax(logits, -1).cpu())
        ys.append(batch.y.cpu())
    return torch.cat(probs).numpy(), torch.cat(ys).numpy(), total / max(n, 1)


def _train_loader(cfg: Config, prep: Prepared, seed: int):
    """The training loader with the configured dialogue sampler and its seeded generator."""
    from torch_geometric.loader import DataLoader

    from ercgraph.registry import SAMPLERS

    gen = torch.Generator().manual_seed(seed)
    graphs = prep.graphs["train"]
    sampler = SAMPLERS.create(
        {"name": cfg.sampler.name, **cfg.sampler.options},
        dialogue_labels=[g.y for g in graphs],
        num_classes=len(prep.corpus.labels),
        generator=gen,
    )
    return DataLoader(graphs, batch_size=cfg.train.batch_size, sampler=sampler), gen


def class_counts(graphs: list, num_classes: int) -> torch.Tensor:
    y = torch.cat([g.y for g in graphs])
    return torch.bincount(y[y >= 0], minlength=num_classes).float()


def fit_seed(
    cfg: Config, prep: Prepared, seed: int, seed_dir: Path, resume: bool
) -> dict[str, Any]:
    """Train one seed with dev-split model selection; returns the seed's result dict."""
    from safetensors.torch import load_file, save

    from ercgraph.models import build_model
    from ercgraph.registry import LOSSES

    result_path = seed_dir / "result.json"
    ckpt = seed_dir / "last.pt"
    if resume and result_path.exists():
        finished = json.loads(result_path.read_text())
        last = finished["history"][-1]["epoch"] if finished["history"] else 0
        if finished.get("stopped_early") or last >= cfg.train.epochs or not ckpt.exists():
            log.info("seed %d already finished; reusing %s", seed, result_path)
            return finished
        log.info("seed %d: training on from epoch %d to %d", seed, last, cfg.train.epochs)
    seed_dir.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.train.device)
    set_seed(seed)
    labels = prep.corpus.labels
    model = build_model(
        cfg.model, prep.store.dims(), prep.edge_types, len(labels), cfg.multitask
    ).to(device)
    counts = class_counts(prep.graphs["train"], len(labels))
    loss_fn = LOSSES.create({"name": cfg.loss.name, **cfg.loss.options}, class_counts=counts).to(
        device
    )
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay
    )
    train_loader, train_gen = _train_loader(cfg, prep, seed)
    dev_batches = list(_loader(prep.graphs["dev"], 64, False))
    metric = cfg.train.select_metric
    history: list[dict[str, float]] = []
    best, best_epoch, start, stopped = -1.0, -1, 1, False
    if resume and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        train_gen.set_state(state["loader_rng"])
        history, best, best_epoch = state["history"], state["best"], state["best_epoch"]
        start, stopped = state["epoch"] + 1, state.get("stopped", False)
        log.info("seed %d: resuming after epoch %d", seed, state["epoch"])

    for epoch in range(start, cfg.train.epochs + 1):
        if stopped:  # early-stopped before the interruption: never train past that point
            break
        t0 = time.perf_counter()
        model.train()
        total, n = 0.0, 0
        for batch in train_loader:
            batch = batch.to(device)
            aux: dict[str, torch.Tensor] = {}
            logits = model(batch, aux) if cfg.multitask.enabled else model(batch)
            labelled = batch.y >= 0
            loss = loss_fn(logits[labelled], batch.y[labelled])
            if "reconstruction" in aux:
                loss = loss + cfg.multitask.weight * aux["reconstruction"]
            opt.zero_grad()
            loss.backward()
            if cfg.train.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            opt.step()
            total += loss.item() * int(labelled.sum())
            n += int(labelled.sum())
        epoch_s = time.perf_counter() - t0
        probs, y, dev_loss = predict_graphs(model, dev_batches, device, loss_fn)
        dev = score(y, probs.argmax(1), labels)
        row = {
            "epoch": epoch,
            "train_loss": total / max(n, 1),
            "dev_loss": dev_loss,
            "epoch_s": epoch_s,
            **{f"dev_{k}": dev[k] for k in ("accuracy", "weighted_f1", "macro_f1")},
        }
        history.append(row)
        if row[f"dev_{metric}"] > best:
            best, best_epoch = row[f"dev_{metric}"], epoch
            atomic_write_bytes(
                seed_dir / "best.safetensors",
                save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}),
            )
        log.info(
            "seed %d epoch %d: loss %.4f dev %s %.2f (best %.2f @ %d) %.1fs",
            seed,
            epoch,
            row["train_loss"],
            metric,
            row[f"dev_{metric}"],
            best,
            best_epoch,
            epoch_s,
        )
        state = {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "epoch": epoch,
            "history": history,
            "best": best,
            "best_epoch": best_epoch,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
            "loader_rng": train_gen.get_state(),
            "stopped": epoch - best_epoch >= cfg.train.patience,
        }
        _atomic_torch_save(state, ckpt)
        if state["stopped"]:
            log.info(
                "seed %d: no dev improvement for %d epochs; stopping", seed, cfg.train.patience
            )
            stopped = True
            break

    model.load_state_dict(load_file(seed_dir / "best.safetensors"))
    result: dict[str, Any] = {
        "seed": seed,
        "best_epoch": best_epoch,
        "stopped_early": stopped,
        "history": history,
    }
    for split in ("dev", "test"):
        probs, y, _ = predict_graphs(model, list(_loader(prep.graphs[split], 64, False)), device)
        result[split] = score(y, probs.argmax(1), labels)
        result[f"{split}_pred"] = probs.argmax(1).tolist()
        result[f"{split}_true"] = y.tolist()
    write_json(result_path, result)
    return result


def _atomic_torch_save(obj: Any, path: Path) -> None:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


# -- the run ----------------------------------------------------------------------------------
def environment() -> dict[str, Any]:
    """Package versions and git revision, saved with every run."""
    import importlib.metadata as md

    versions = {}
    for pkg in (
        "ercgraph",
        "torch",
        "torch-geometric",
        "transformers",
        "torchaudio",
        "numpy",
        "pandas",
        "scikit-learn",
        "safetensors",
    ):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    try:
        rev = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                cwd=Path(__file__).parent,
                timeout=5,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        rev = None
    return {
        "versions": versions,
        "git_revision": rev,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def check_out_dir(out: Path, cfg: Config, resume: bool) -> None:
    """Never overwrite a run unless resuming it, and only resume it with the same config.

    A resumed run may change ``train.epochs`` (to train longer) and ``train.seeds`` (to add seeds);
    anything else must match the saved ``config.yaml``.
    """
    from ercgraph.report import HEADLINE

    if cfg.train.select_metric not in HEADLINE:
        raise ErcgraphError(
            f"train.select_metric must be one of {list(HEADLINE)}, got {cfg.train.select_metric!r}"
        )
    if resume and out.exists() and any(out.iterdir()) and not (out / "config.yaml").exists():
        raise ErcgraphError(
            f"--resume: {str(out)!r} is not a run directory (no config.yaml); nothing to resume"
        )
    if out.exists() and any(out.iterdir()) and not resume:
        raise ErcgraphError(
            f"run directory {str(out)!r} already exists and is not empty; "
            "pass --resume to continue it or choose another --out"
        )
    saved_path = out / "config.yaml"
    if resume and saved_path.exists():
        import yaml

        saved = yaml.safe_load(saved_path.read_text())
        new = yaml.safe_load(dump_config(cfg))
        for d in (saved, new):
            d["train"].pop("epochs", None)
            d["train"].pop("seeds", None)
        if saved != new:
            diff = sorted(
                f"{sec}.{k}"
                for sec in new
                if isinstance(new[sec], dict)
                for k in new[sec]
                if saved.get(sec, {}).get(k) != new[sec][k]
            )
            raise ErcgraphError(
                f"--resume: the config differs from {str(saved_path)!r} "
                f"(at {', '.join(diff) or 'top level'}); resume with the same "
                "config (only train.epochs and train.seeds may change)"
            )


def run(
    cfg: Config, out: Path, resume: bool = False, prep: Prepared | None = None
) -> dict[str, Any]:
    """Train every seed in ``cfg.train.seeds`` and write the run directory.

    Returns:
        The metrics dict written to ``metrics.json``.
    """
    check_out_dir(out, cfg, resume)
    if prep is None:
        prep = prepare(cfg)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "config.yaml", dump_config(cfg).encode())
    write_json(out / "environment.json", environment())
    write_json(out / "features.json", prep.feature_info)
    write_json(
        out / "model.json",
        {
            "labels": list(prep.corpus.labels),
            "in_dims": prep.store.dims(),
            "edge_types": [list(et) for et in prep.edge_types],
        },
    )
    t_train = time.perf_counter()
    threads = torch.get_num_threads()
    try:
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        results = {s: fit_seed(cfg, prep, s, out / f"seed_{s}", resume) for s in cfg.train.seeds}
    finally:
        torch.set_num_threads(threads)
    train_s = time.perf_counter() - t_train
    metrics = summarise(cfg, prep, results, out)
    metrics["timings"] = {**prep.timings, "train_s": train_s}
    write_json(out / "metrics.json", metrics)
    return metrics


def summarise(cfg: Config, prep: Prepared, results: dict[int, dict], out: Path) -> dict:
    """metrics.json content, summary.md, confusion matrix and learning curves."""
    labels = list(prep.corpus.labels)
    metrics: dict[str, Any] = {
        "select_metric": cfg.train.select_metric,
        "seeds": list(results),
        "labels": labels,
        "edge_types": ["|".join(et) for et in prep.edge_types],
        "best_epochs": {str(s): r["best_epoch"] for s, r in results.items()},
    }
    for split in ("dev", "test"):
        metrics[split] = aggregate({s: r[split] for s, r in results.items()})
    epoch_s = [h["epoch_s"] for r in results.values() for h in r["history"]]
    metrics["epoch_s_mean"] = float(np.mean(epoch_s)) if epoch_s else None
    y_true = np.concatenate([r["test_true"] for r in results.values()])
    y_pred = np.concatenate([r["test_pred"] for r in results.values()])
    plot_confusion(
        y_true,
        y_pred,
        labels,
        out / "confusion_test.png",
        f"test confusion, pooled over {len(results)} seed(s)",
    )
    plot_learning_curves(
        {s: r["history"] for s, r in results.items()},
        out / "learning_curve.png",
        cfg.train.select_metric,
    )
    extra = {
        "model": cfg.model.name,
        "edge types": ", ".join(metrics["edge_types"]) or "none",
        "best epochs": metrics["best_epochs"],
        "train dialogues / dev / test": "/".join(
            str(len(prep.graphs[s])) for s in ("train", "dev", "test")
        ),
    }
    title = f"ercgraph run: {prep.corpus.name}, {cfg.model.name}"
    atomic_write_bytes(out / "summary.md", markdown_summary(metrics, title, extra).encode())
    return metrics


def evaluate_run(run_dir: Path) -> dict[str, Any]:
    """Re-score a saved run from its config and best checkpoints; writes ``rescored.json``."""
    from safetensors.torch import load_file

    from ercgraph.config import load_config
    from ercgraph.models import build_model

    cfg_path = run_dir / "config.yaml"
    if not cfg_path.exists():
        raise ErcgraphError(f"{str(run_dir)!r} is not a run directory (no config.yaml)")
    cfg = load_config(cfg_path)
    prep = prepare(cfg)
    device = pick_device(cfg.train.device)
    per_split: dict[str, dict[int, dict]] = {"dev": {}, "test": {}}
    for seed in cfg.train.seeds:
        weights = run_dir / f"seed_{seed}" / "best.safetensors"
        if not weights.exists() or not (weights.parent / "result.json").exists():
            raise ErcgraphError(
                f"{str(weights.parent)!r}: seed {seed} did not finish (no result.json); "
                "finish the run with --resume"
            )
        model = build_model(
            cfg.model, prep.store.dims(), prep.edge_types, len(prep.corpus.labels), cfg.multitask
        ).to(device)
        model.load_state_dict(load_file(weights))
        for split in per_split:
            probs, y, _ = predict_graphs(
                model, list(_loader(prep.graphs[split], 64, False)), device
            )
            per_split[split][seed] = score(y, probs.argmax(1), prep.corpus.labels)
    rescored = {split: aggregate(v) for split, v in per_split.items()}
    write_json(run_dir / "rescored.json", rescored)
    return rescored
