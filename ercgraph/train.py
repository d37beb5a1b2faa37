"""The training recipe: config → pipeline (corpus, features, normaliser, graphs) → model →
fit with dev selection → test evaluation → report. Reads top to bottom; holds no globals.

Each seed trains in its own folder ``seed_<s>/`` of the run directory. After every epoch a
checkpoint (model, objective, optimiser, RNG and history) is written atomically to ``last.pt``;
the weights of the best epoch by the dev metric go to ``best.safetensors``; a finished seed
writes ``result.json``. ``resume=True`` skips finished seeds and continues an interrupted one
from its last checkpoint. The pipeline lives in :mod:`ercgraph.pipeline`, the run-directory
policy in :mod:`ercgraph.rundir`.
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ercgraph.config import Config, effective_heads, effective_loss
from ercgraph.data.features import atomic_write_bytes
from ercgraph.errors import ErcgraphError
from ercgraph.pipeline import Prepared, check_config, prepare
from ercgraph.report import (
    aggregate,
    markdown_summary,
    plot_confusion,
    plot_learning_curves,
)
from ercgraph.rundir import (
    atomic_torch_save,
    check_out_dir,
    load_weights,
    locked,
    write_json,
    write_setup,
)

log = logging.getLogger(__name__)

__all__ = ["Prepared", "evaluate_batches", "fit_seed", "prepare", "run"]


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


def make_model(cfg: Config, prep: Prepared) -> nn.Module:
    from ercgraph.models import build_model

    return build_model(
        cfg.model,
        prep.store.dims(),
        prep.edge_types,
        prep.corpus.labels,
        effective_heads(cfg),
        prep.head_states,
    )


def make_objective(cfg: Config, prep: Prepared) -> nn.Module:
    from ercgraph.losses import build_objective

    counts = class_counts(prep.graphs["train"], len(prep.corpus.labels))
    context = {
        "class_counts": counts,
        "num_classes": len(prep.corpus.labels),
        "labels": list(prep.corpus.labels),
    }
    return build_objective(effective_loss(cfg), context)


def class_counts(graphs: list, num_classes: int) -> torch.Tensor:
    y = torch.cat([g.y for g in graphs])
    return torch.bincount(y[y >= 0], minlength=num_classes).float()


def _loader(graphs: list, batch_size: int, shuffle: bool, seed: int = 0):
    from torch_geometric.loader import DataLoader

    gen = torch.Generator().manual_seed(seed)
    return DataLoader(graphs, batch_size=batch_size, shuffle=shuffle, generator=gen)


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


# -- evaluation ---------------------------------------------------------------------------------
@torch.no_grad()
def evaluate_batches(
    model: nn.Module, batches: list, device: torch.device, objective: nn.Module | None = None
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, float], np.ndarray]:
    """Run the model over pre-collated batches.

    Returns:
        head name → ``{"pred", "target"}`` arrays in batch order; the mean of each loss term
        (weighted by utterances) and ``total``; the Corpus rows in batch order.
    """
    model.eval()
    collected: dict[str, dict[str, list]] = {}
    sums: dict[str, float] = {}
    rows, n_total = [], 0
    for batch in batches:
        batch = batch.to(device)
        out = model(batch)
        n = int(batch.row.numel())
        n_total += n
        rows.append(batch.row.cpu())
        for name, head in model.heads.items():
            for key, value in head.collect(out, batch).items():
                collected.setdefault(name, {}).setdefault(key, []).append(value.cpu())
        if objective is not None:
            total, values = objective(out, batch)
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v * n
            if total is not None:
                sums["total"] = sums.get("total", 0.0) + float(total) * n
    arrays = {
        name: {k: torch.cat(v).numpy() for k, v in parts.items()}
        for name, parts in collected.items()
    }
    losses = {k: v / max(n_total, 1) for k, v in sums.items()}
    return arrays, losses, torch.cat(rows).numpy() if rows else np.zeros(0, dtype=np.int64)


def score_heads(model: nn.Module, arrays: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    """Every head's metrics for one split, in one flat dict (the emotion head's per-class table
    under ``per_class``)."""
    scores: dict[str, Any] = {}
    for name, head in model.heads.items():
        if name in arrays and "pred" in arrays[name]:
            scores.update(head.score(arrays[name]["pred"], arrays[name]["target"]))
    return scores


# -- one seed ---------------------------------------------------------------------------------
def fit_seed(
    cfg: Config, prep: Prepared, seed: int, seed_dir: Path, resume: bool
) -> dict[str, Any]:
    """Train one seed with dev-split model selection; returns the seed's result dict."""
    from safetensors.torch import save

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
    model = make_model(cfg, prep).to(device)
    objective = make_objective(cfg, prep).to(device)
    params = list(model.parameters()) + list(objective.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    train_loader, train_gen = _train_loader(cfg, prep, seed)
    dev_batches = list(_loader(prep.graphs["dev"], 64, False))
    from ercgraph.metrics import higher_is_better

    metric = cfg.train.select_metric
    sign = 1.0 if higher_is_better(metric) else -1.0  # best holds the signed value
    history: list[dict[str, float]] = []
    best, best_epoch, start, stopped = -float("inf"), -1, 1, False
    if resume and ckpt.exists():
        state = _load_checkpoint(ckpt)
        model.load_state_dict(state["model"])
        objective.load_state_dict(state["objective"])
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
        sums: dict[str, float] = {}
        n = 0
        for batch in train_loader:
            batch = batch.to(device)
            out = model(batch)
            loss, values = objective(out, batch)
            if loss is None:
                continue
            opt.zero_grad()
            loss.backward()
            if cfg.train.grad_clip:
                nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)
            opt.step()
            size = int(batch.row.numel())
            n += size
            sums["total"] = sums.get("total", 0.0) + loss.item() * size
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v * size
        epoch_s = time.perf_counter() - t0
        arrays, dev_losses, _ = evaluate_batches(model, dev_batches, device, objective)
        dev = score_heads(model, arrays)
        row: dict[str, float] = {
            "epoch": epoch,
            "train_loss": sums.get("total", 0.0) / max(n, 1),
            "dev_loss": dev_losses.get("total", float("nan")),
            "epoch_s": epoch_s,
        }
        for k in objective.terms:
            row[f"train_loss_{k}"] = sums.get(k, float("nan")) / max(n, 1)
            if k in dev_losses:
                row[f"dev_loss_{k}"] = dev_losses[k]
        row.update({f"dev_{k}": v for k, v in dev.items() if isinstance(v, float | int)})
        history.append(row)
        if sign * row[f"dev_{metric}"] > best:
            best, best_epoch = sign * row[f"dev_{metric}"], epoch
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
            sign * best,
            best_epoch,
            epoch_s,
        )
        state = {
            "model": model.state_dict(),
            "objective": objective.state_dict(),
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
        atomic_torch_save(state, ckpt)
        if state["stopped"]:
            log.info(
                "seed %d: no dev improvement for %d epochs; stopping", seed, cfg.train.patience
            )
            stopped = True
            break

    load_weights(model, seed_dir / "best.safetensors")
    result: dict[str, Any] = {
        "seed": seed,
        "best_epoch": best_epoch,
        "stopped_early": stopped,
        "history": history,
        "loss_terms": {k: objective.weights[k] for k in objective.terms},
    }
    for split in ("dev", "test"):
        batches = list(_loader(prep.graphs[split], 64, False))
        arrays, _, rows = evaluate_batches(model, batches, device)
        result[split] = score_heads(model, arrays)
        if "emotion" in arrays:
            em = arrays["emotion"]
            result[f"{split}_pred"] = em["pred"].argmax(1).tolist()
            result[f"{split}_true"] = em["target"].tolist()
            result[f"{split}_probs"] = np.round(em["pred"], 6).tolist()
            result[f"{split}_rows"] = rows.tolist()
    write_json(result_path, result)
    return result


def _load_checkpoint(path: Path) -> dict[str, Any]:
    """``last.pt`` with ``weights_only=True``; a truncated or foreign file is a clear error."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ErcgraphError(
            f"checkpoint {str(path)!r} cannot be loaded safely (truncated, corrupt or not an "
            f"ercgraph checkpoint): {first}; delete that seed folder to retrain it"
        ) from exc


# -- the run ----------------------------------------------------------------------------------
def run(
    cfg: Config, out: Path, resume: bool = False, prep: Prepared | None = None
) -> dict[str, Any]:
    """Train every seed in ``cfg.train.seeds`` and write the run directory.

    The whole config is checked before any feature is read; the run directory is locked while
    the run writes into it.

    Returns:
        The metrics dict written to ``metrics.json``.
    """
    check_config(cfg)
    check_out_dir(out, cfg, resume)
    with locked(out):
        check_out_dir(out, cfg, resume)  # again, now that no other writer can interfere
        if prep is None:
            prep = prepare(cfg)
        write_setup(out, cfg, prep)
        t_train = time.perf_counter()
        threads = torch.get_num_threads()
        try:
            if cfg.train.threads:
                torch.set_num_threads(cfg.train.threads)
            if cfg.train.jobs > 1 and len(cfg.train.seeds) > 1:
                results = fit_seeds_in_parallel(cfg, prep, out, resume)
            else:
                results = {
                    s: fit_seed(cfg, prep, s, out / f"seed_{s}", resume) for s in cfg.train.seeds
                }
        finally:
            torch.set_num_threads(threads)
        train_s = time.perf_counter() - t_train
        metrics = summarise(cfg, prep, results, out)
        metrics["timings"] = {**prep.timings, "train_s": train_s}
        write_json(out / "metrics.json", metrics)
    return metrics


def _fit_seed_job(shared: tuple[Config, Prepared, Path, bool], i: int) -> dict[str, Any]:
    cfg, prep, out, resume = shared
    seed = cfg.train.seeds[i]
    return fit_seed(cfg, prep, seed, out / f"seed_{seed}", resume)


def fit_seeds_in_parallel(
    cfg: Config, prep: Prepared, out: Path, resume: bool
) -> dict[int, dict[str, Any]]:
    """Every seed of ``cfg.train.seeds`` in its own worker process, ``train.jobs`` at a time
    (:func:`ercgraph.parallel.fork_map`).

    Seeds are independent: each seeds its own generators, writes only its ``seed_<s>/`` folder
    and returns its result dict, so the results equal a serial run's (each worker uses
    ``train.threads`` threads, as a serial run does). The parent then writes everything shared
    (metrics, plots), as in a serial run.
    """
    from ercgraph.parallel import fork_map, start_method

    seeds = list(cfg.train.seeds)
    log.info(
        "training %d seeds, %d at once (%s workers)",
        len(seeds),
        min(cfg.train.jobs, len(seeds)),
        start_method(),
    )
    results = fork_map(
        _fit_seed_job, (cfg, prep, out, resume), len(seeds), cfg.train.jobs, cfg.train.threads or 1
    )
    return dict(zip(seeds, results, strict=True))


def ensemble(
    results: dict[int, dict], split: str, labels: list[str], exclude_label: str | None = None
) -> dict[str, Any] | None:
    """Scores of the seeds' averaged emotion probabilities (the ensemble ``predict`` uses)."""
    from ercgraph.report import score

    runs = [r for r in results.values() if f"{split}_probs" in r]
    if not runs or len(runs) != len(results):
        return None
    probs = np.mean([np.asarray(r[f"{split}_probs"]) for r in runs], axis=0)
    y = np.asarray(runs[0][f"{split}_true"])
    keep = y >= 0
    return score(y[keep], probs[keep].argmax(1), labels, exclude_label)


def summarise(cfg: Config, prep: Prepared, results: dict[int, dict], out: Path) -> dict:
    """metrics.json content, summary.md, confusion matrix and learning curves."""
    labels = list(prep.corpus.labels)
    first = next(iter(results.values()))
    metrics: dict[str, Any] = {
        "select_metric": cfg.train.select_metric,
        "headline": cfg.metrics.headline or cfg.train.select_metric,
        "seeds": list(results),
        "labels": labels,
        "heads": [h if isinstance(h, str) else h["name"] for h in effective_heads(cfg)],
        "loss_terms": first.get("loss_terms", {}),
        "edge_types": ["|".join(et) for et in prep.edge_types],
        "best_epochs": {str(s): r["best_epoch"] for s, r in results.items()},
    }
    for split in ("dev", "test"):
        metrics[split] = aggregate({s: r[split] for s, r in results.items()})
        ens = ensemble(results, split, labels, cfg.metrics.exclude_label)
        if ens is not None:
            metrics[f"{split}_ensemble"] = ens
    metrics["loss_at_best_epoch"] = _losses_at_best(results)
    epoch_s = [h["epoch_s"] for r in results.values() for h in r["history"]]
    metrics["epoch_s_mean"] = float(np.mean(epoch_s)) if epoch_s else None
    if all("test_true" in r for r in results.values()):
        y_true = np.concatenate([r["test_true"] for r in results.values()])
        y_pred = np.concatenate([r["test_pred"] for r in results.values()])
        keep = y_true >= 0
        plot_confusion(
            y_true[keep],
            y_pred[keep],
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
        "heads": ", ".join(metrics["heads"]),
        "loss": " + ".join(f"{w:g}×{k}" for k, w in metrics["loss_terms"].items()),
        "edge types": ", ".join(metrics["edge_types"]) or "none",
        "best epochs": metrics["best_epochs"],
        "train dialogues / dev / test": "/".join(
            str(len(prep.graphs[s])) for s in ("train", "dev", "test")
        ),
    }
    title = f"ercgraph run: {prep.corpus.name}, {cfg.model.name}"
    atomic_write_bytes(out / "summary.md", markdown_summary(metrics, title, extra).encode())
    return metrics


def _losses_at_best(results: dict[int, dict]) -> dict[str, dict[str, float]]:
    """Each loss term's train and dev value at every seed's selected epoch, mean ± std."""
    per: dict[str, list[float]] = {}
    for r in results.values():
        rows = [h for h in r["history"] if h["epoch"] == r["best_epoch"]]
        if not rows:
            continue
        for k, v in rows[0].items():
            if k.startswith(("train_loss", "dev_loss")):
                per.setdefault(k, []).append(float(v))
    return {
        k: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0}
        for k, v in per.items()
    }
