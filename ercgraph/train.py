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

import dataclasses
import json
import logging
import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ercgraph.config import Config, effective_heads, effective_loss
from ercgraph.data.features import atomic_write_bytes
from ercgraph.distributed import Session
from ercgraph.errors import ErcgraphError
from ercgraph.losses.objective import add_second_view
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

__all__ = ["Callback", "Prepared", "evaluate_batches", "fit_seed", "prepare", "run"]


# -- callbacks --------------------------------------------------------------------------------
class Callback:
    """What a run tells the outside while it trains: tracking (:mod:`ercgraph.tracking`) and a
    sweep's pruner listen here. Every method does nothing unless overridden; they run on the
    process that trains the seed (rank 0 under torchrun), so a callback that must see every
    seed in one process needs ``train.jobs: 1``. An exception raised by ``epoch_end`` ends the
    run after that epoch's checkpoint is written (a pruned sweep trial)."""

    def run_start(self, cfg: Config, out: Path) -> None:
        """Before the first seed, once the data are prepared."""

    def seed_start(self, seed: int, seed_dir: Path, history: list[dict[str, float]]) -> None:
        """Before a seed's first epoch; ``history`` holds the epochs a resume restored."""

    def epoch_end(self, seed: int, row: dict[str, float]) -> None:
        """After each epoch: ``row`` is the history row ``result.json`` will hold."""

    def seed_end(self, seed: int, result: dict[str, Any]) -> None:
        """After a seed's ``result.json`` is written."""

    def run_end(self, metrics: dict[str, Any]) -> None:
        """After ``metrics.json`` is written."""


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


def make_objective(cfg: Config, prep: Prepared, sampler: Any = None) -> nn.Module:
    """The loss terms, built with the training split's facts (and the sampler's utterance
    weights when it gives them: ``two_stage`` with ``reweight``)."""
    from ercgraph.losses import build_objective

    counts = class_counts(prep.graphs["train"], len(prep.corpus.labels))
    context = {
        "class_counts": counts,
        "num_classes": len(prep.corpus.labels),
        "labels": list(prep.corpus.labels),
    }
    weights = getattr(sampler, "class_weights", lambda: None)()
    if weights is not None:
        terms = [t.name for t in effective_loss(cfg)]
        if "ce" not in terms:
            raise ErcgraphError(
                f"sampler.options.reweight passes utterance weights to the 'ce' loss, but the "
                f"loss terms are {terms}; add ce or set reweight: false"
            )
        context["utterance_class_weights"] = weights
    return build_objective(effective_loss(cfg), context)


def class_counts(graphs: Any, num_classes: int) -> torch.Tensor:
    from ercgraph.graphs.flat import labels_of

    labels = labels_of(graphs)
    y = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)
    return torch.bincount(y[y >= 0], minlength=num_classes).float()


def eval_batches(graphs: Any, batch_size: int = 64) -> list:
    """The batches of a split in order (collated once, reused every epoch)."""
    from ercgraph.graphs.flat import batches

    return list(batches(graphs, batch_size))


class TrainLoader:
    """One epoch of training batches: the sampler's dialogue order cut into global batches of
    ``batch_size`` dialogues (the last may be smaller), collated from the GraphSet.

    Across ``world`` ranks every rank draws the same order (the sampler's generator is seeded
    alike) and takes its own contiguous share of each global batch, so any sampler is rank-aware
    and a step sees the dialogues a one-process step would. A rank whose share is empty (a last
    batch with fewer dialogues than ranks) gets a padding dialogue that carries no weight.
    With fewer batches than ``min_steps`` (``train.min_steps``) in one pass over the dialogues,
    the epoch makes whole further passes, each in a new sampler order, until it has at least
    that many. Yields ``(batch, padding)``.
    """

    def __init__(
        self,
        graphs: Any,
        sampler: Any,
        batch_size: int,
        rank: int = 0,
        world: int = 1,
        min_steps: int = 0,
    ) -> None:
        self.graphs, self.sampler, self.batch_size = graphs, sampler, batch_size
        self.rank, self.world, self.min_steps = rank, world, min_steps

    def __iter__(self) -> Iterator[tuple[Any, bool]]:
        # torch's DataLoader drew one number from the global generator per epoch (its workers'
        # base seed); the same draw keeps runs bit-identical to those of earlier versions
        torch.empty((), dtype=torch.int64).random_()
        order = torch.as_tensor(list(self.sampler), dtype=torch.long)
        # too few batches for ``min_steps``: further passes, each in a new sampler order, cut
        # so that no global batch straddles two passes
        per_pass = -(-int(order.numel()) // self.batch_size)
        if 0 < per_pass < self.min_steps:
            passes = [order]
            for _ in range(-(-self.min_steps // per_pass) - 1):
                passes.append(torch.as_tensor(list(self.sampler), dtype=torch.long))
            for chunk in passes:
                yield from self._cut(chunk)
            return
        yield from self._cut(order)

    def _cut(self, order: torch.Tensor) -> Iterator[tuple[Any, bool]]:
        from ercgraph.graphs.flat import batches

        if self.world == 1:
            yield from ((b, False) for b in batches(self.graphs, self.batch_size, order=order))
            return
        for lo in range(0, int(order.numel()), self.batch_size):
            chunk = order[lo : lo + self.batch_size]
            share = torch.tensor_split(chunk, self.world)[self.rank]
            padding = share.numel() == 0
            if padding:
                share = chunk[self.rank % chunk.numel() :][:1]
            yield next(batches(self.graphs, len(share), order=share)), padding


def _train_loader(
    cfg: Config, prep: Prepared, seed: int, sess: Session | None = None
) -> tuple[TrainLoader, torch.Generator]:
    """The training loader with the configured dialogue sampler and its seeded generator."""
    from ercgraph.graphs.flat import labels_of
    from ercgraph.registry import SAMPLERS

    gen = torch.Generator().manual_seed(seed)
    graphs = prep.graphs["train"]
    sampler = SAMPLERS.create(
        {"name": cfg.sampler.name, **cfg.sampler.options},
        dialogue_labels=labels_of(graphs),
        num_classes=len(prep.corpus.labels),
        generator=gen,
    )
    sess = sess or Session()
    loader = TrainLoader(
        graphs, sampler, cfg.train.batch_size, sess.rank, sess.world, cfg.train.min_steps
    )
    return loader, gen


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
class TrainStep(nn.Module):
    """Model and objective as one module: ``forward(batch)`` returns ``(out, loss, values)``.

    The unit :class:`~torch.nn.parallel.DistributedDataParallel` wraps, so the objective's own
    parameters (learned loss weights) are averaged across ranks like the model's. Under DDP a
    step without a labelled utterance on this rank returns a zero loss tied to every parameter
    (every rank must join the gradient all-reduce).
    """

    def __init__(self, model: nn.Module, objective: nn.Module, distributed: bool = False) -> None:
        super().__init__()
        self.model, self.objective, self.distributed = model, objective, distributed

    def forward(self, batch: Any) -> tuple[Any, torch.Tensor | None, dict[str, float]]:
        out = self.model(batch)
        if self.training and getattr(self.objective, "views", 1) > 1:
            add_second_view(out, self.model(batch))
        loss, values = self.objective(out, batch)
        if loss is None and self.distributed:
            loss = 0.0 * sum(p.sum() for p in self.parameters() if p.requires_grad)
        return out, loss, values


def _weight(batch: Any, padding: bool) -> int:
    """What a rank's loss is weighted by across ranks: its labelled utterances."""
    if padding:
        return 0
    y = getattr(batch, "y", None)
    return int((y >= 0).sum()) if y is not None else int(batch.row.numel())


def fit_seed(
    cfg: Config,
    prep: Prepared,
    seed: int,
    seed_dir: Path,
    resume: bool,
    sess: Session | None = None,
    callbacks: Sequence[Callback] = (),
    score_test: bool = True,
) -> dict[str, Any]:
    """Train one seed with dev-split model selection; returns the seed's result dict.

    ``callbacks`` (see :class:`Callback`) hear of the seed's start, every epoch's history row
    and its result, on rank 0 only. ``score_test=False`` scores dev alone (the result has no
    ``test`` entries), as a sweep's trials do.

    Under torchrun (``sess.world > 1``) the model is wrapped in DistributedDataParallel and each
    rank trains on its share of every global batch of ``train.batch_size`` dialogues (see
    :class:`TrainLoader`). Each rank's loss is scaled by its share of the step's labelled
    utterances (times the world size, as DDP averages gradients), so a step's gradient is the
    utterance mean a one-process step takes. Every rank scores the whole dev split (identical
    replicas, so identical decisions; rank 0's are broadcast all the same); only rank 0 writes.
    """
    from safetensors.torch import save

    sess = sess or Session()
    main = sess.is_main
    result_path = seed_dir / "result.json"
    ckpt = seed_dir / "last.pt"
    if resume and result_path.exists():
        finished = read_result(result_path)
        last = finished["history"][-1]["epoch"] if finished["history"] else 0
        if finished.get("stopped_early") or last >= cfg.train.epochs or not ckpt.exists():
            log.info("seed %d already finished; reusing %s", seed, result_path)
            return finished
        log.info("seed %d: training on from epoch %d to %d", seed, last, cfg.train.epochs)
    if main:
        seed_dir.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.train.device)
    if sess.active and device.type == "cuda":
        device = torch.device("cuda", sess.local_rank)
    set_seed(seed)
    model = make_model(cfg, prep).to(device)
    train_loader, train_gen = _train_loader(cfg, prep, seed, sess)  # its own generator
    objective = make_objective(cfg, prep, train_loader.sampler).to(device)
    step = TrainStep(model, objective, sess.active)
    if sess.active:
        from ercgraph.distributed import ddp

        step = ddp(step, device)  # heads and modalities may sit out a step: see there
        if sess.rank > 0:  # dropout masks differ across ranks; rank 0 draws as one process
            torch.manual_seed(seed * 1_000_003 + sess.rank)
    params = list(model.parameters()) + list(objective.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    dev_batches = eval_batches(prep.graphs["dev"])
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
        torch.set_rng_state(_rank_rng(state, sess))
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        train_gen.set_state(state["loader_rng"])
        history, best, best_epoch = state["history"], state["best"], state["best_epoch"]
        start, stopped = state["epoch"] + 1, state.get("stopped", False)
        log.info("seed %d: resuming after epoch %d", seed, state["epoch"])
    if main:
        for cb in callbacks:
            cb.seed_start(seed, seed_dir, history)

    for epoch in range(start, cfg.train.epochs + 1):
        if stopped:  # early-stopped before the interruption: never train past that point
            break
        t0 = time.perf_counter()
        step.train()
        sums: dict[str, float] = {}
        n = steps = 0
        for batch, padding in train_loader:
            batch = batch.to(device)
            weight = _weight(batch, padding)
            if sess.active:
                total = torch.tensor([weight], dtype=torch.float64, device=device)
                torch.distributed.all_reduce(total)
                if float(total) == 0:  # no rank has a labelled utterance: all skip alike
                    continue
            _, loss, values = step(batch)
            if loss is None:
                continue
            scaled = loss * (weight * sess.world / float(total)) if sess.active else loss
            opt.zero_grad()
            scaled.backward()
            if cfg.train.grad_clip:
                nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)
            opt.step()
            steps += 1
            size = 0 if padding else int(batch.row.numel())
            n += size
            sums["total"] = sums.get("total", 0.0) + loss.item() * size
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v * size
        if sess.active:  # the epoch's training losses over every rank's utterances
            parts = sess.gather((sums, n))
            n = sum(part[1] for part in parts)
            sums = {k: sum(part[0].get(k, 0.0) for part in parts) for k in parts[0][0]}
        epoch_s = time.perf_counter() - t0
        arrays, dev_losses, _ = evaluate_batches(model, dev_batches, device, objective)
        dev = score_heads(model, arrays)
        row: dict[str, float] = {
            "epoch": epoch,
            "train_loss": sums.get("total", 0.0) / max(n, 1),
            "dev_loss": dev_losses.get("total", float("nan")),
            "epoch_s": epoch_s,
            "steps": steps,
        }
        for k in objective.terms:
            row[f"train_loss_{k}"] = sums.get(k, float("nan")) / max(n, 1)
            if k in dev_losses:
                row[f"dev_loss_{k}"] = dev_losses[k]
        row.update({f"dev_{k}": v for k, v in dev.items() if isinstance(v, float | int)})
        row["lr"] = float(opt.param_groups[0]["lr"])
        row = sess.broadcast(row)  # identical replicas; rank 0's row decides for all
        history.append(row)
        if sign * row[f"dev_{metric}"] > best:
            best, best_epoch = sign * row[f"dev_{metric}"], epoch
            if main:
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
        if sess.active:
            state["rank_rng"] = sess.gather(torch.get_rng_state())
        if main:
            atomic_torch_save(state, ckpt)
            for cb in callbacks:  # after the checkpoint: a callback may end the seed (pruning)
                cb.epoch_end(seed, row)
        if state["stopped"]:
            log.info(
                "seed %d: no dev improvement for %d epochs; stopping", seed, cfg.train.patience
            )
            stopped = True
            break

    sess.barrier()  # best.safetensors is complete before anyone reads it
    if not main:  # the result is rank 0's
        return sess.broadcast(None)
    load_weights(model, seed_dir / "best.safetensors")
    result: dict[str, Any] = {
        "seed": seed,
        "best_epoch": best_epoch,
        "stopped_early": stopped,
        "history": history,
        "loss_terms": {k: objective.weights[k] for k in objective.terms},
    }
    splits = ("dev", "test") if score_test else ("dev",)
    scored = {
        split: evaluate_batches(model, eval_batches(prep.graphs[split]), device) for split in splits
    }
    offsets = None
    if cfg.decision.rule == "offsets" and "emotion" in scored["dev"][0]:
        from ercgraph import decision

        dev_em = scored["dev"][0]["emotion"]
        result["decision"] = decision.fit_offsets(
            dev_em["pred"],
            dev_em["target"],
            cfg.decision.objective,
            cfg.decision.max_weighted_f1_drop,
        )
        decision.save(seed_dir, result["decision"])
        offsets = result["decision"]["offsets"]
    for split in splits:
        arrays, _, rows = scored[split]
        if offsets is not None:  # the argmax scores stay beside the rule's, for comparison
            result[f"{split}_argmax"] = score_heads(model, arrays)
            em = arrays["emotion"]
            em["pred"] = decision.apply_offsets(em["pred"], offsets)
        result[split] = score_heads(model, arrays)
        if "emotion" in arrays:
            em = arrays["emotion"]
            result[f"{split}_pred"] = em["pred"].argmax(1).tolist()
            result[f"{split}_true"] = em["target"].tolist()
            result[f"{split}_probs"] = np.round(em["pred"], 6).tolist()
            result[f"{split}_rows"] = rows.tolist()
    write_json(result_path, result)
    for cb in callbacks:
        cb.seed_end(seed, result)
    return sess.broadcast(result)


def _rank_rng(state: dict[str, Any], sess: Session) -> torch.Tensor:
    """This rank's saved RNG state (a checkpoint of another world size: rank 0's for rank 0,
    a fresh stream for the others, with a warning)."""
    saved = state.get("rank_rng")
    if not sess.active:
        return state["torch_rng"]
    if saved is not None and len(saved) == sess.world:
        return saved[sess.rank]
    if sess.rank > 0:
        log.warning(
            "the checkpoint was written by %s processes, this run has %d: rank %d starts a fresh "
            "dropout stream",
            len(saved) if saved is not None else 1,
            sess.world,
            sess.rank,
        )
        return torch.Generator().manual_seed(int(state["epoch"]) * 7919 + sess.rank).get_state()
    return state["torch_rng"]


def _load_checkpoint(path: Path) -> dict[str, Any]:
    """``last.pt`` with ``weights_only=True``; a truncated or foreign file is a clear error, and
    a refused one names what was refused (never suggesting ``weights_only=False``)."""
    import pickle

    from ercgraph.data.safe_pickle import weights_only_error

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, OSError) as exc:
        refused = weights_only_error(
            str(path),
            exc,
            "checkpoint",
            "an ercgraph checkpoint holds tensors and plain data only (crafted, or not an "
            "ercgraph checkpoint?); delete that seed folder to retrain it",
        )
        if refused is not None:
            raise refused from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ErcgraphError(
            f"checkpoint {str(path)!r} cannot be loaded safely (truncated, corrupt or not an "
            f"ercgraph checkpoint): {first}; delete that seed folder to retrain it"
        ) from exc


def read_result(path: Path) -> dict[str, Any]:
    """A finished seed's ``result.json`` (a resume reuses it), or a one-line error naming the
    file and what to do."""
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
        history = result["history"]
        if history and not isinstance(history[-1]["epoch"], int):
            raise TypeError("epoch is not an integer")
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        why = "not valid JSON" if isinstance(exc, ValueError) else f"unreadable ({exc!r})"
        raise ErcgraphError(
            f"--resume: {str(path)!r} is {why}, so the seed's result is lost; delete the folder "
            f"{str(path.parent)!r} to train that seed again"
        ) from None
    return result


def _epochs_trained(seed_dir: Path) -> tuple[int, Path | None]:
    """How many epochs a seed folder holds (its ``result.json``, else its ``last.pt``), and the
    file that says so."""
    result, ckpt = seed_dir / "result.json", seed_dir / "last.pt"
    if result.exists():
        history = read_result(result)["history"]
        return (history[-1]["epoch"] if history else 0), result
    if ckpt.exists():
        return int(_load_checkpoint(ckpt)["epoch"]), ckpt
    return 0, None


def check_resume(out: Path, cfg: Config) -> None:
    """Before a resume does any work: every seed folder's record reads, and no seed has trained
    more epochs than ``train.epochs`` asks for. A shorter run is refused rather than recorded:
    the rewritten ``config.yaml`` would no longer describe the seeds' results."""
    for seed_dir in sorted(out.glob("seed_*"), key=lambda p: (len(p.name), p.name)):
        if not seed_dir.is_dir():
            continue
        done, source = _epochs_trained(seed_dir)
        if done > cfg.train.epochs:
            raise ErcgraphError(
                f"--resume: {seed_dir.name} has already trained {done} epochs ({str(source)!r}), "
                f"more than train.epochs {cfg.train.epochs}; a run is not shortened after the "
                f"fact (its config.yaml would no longer match its results): resume with "
                f"train.epochs >= {done}, or train into another --out"
            )


# -- the run ----------------------------------------------------------------------------------
def run(
    cfg: Config,
    out: Path,
    resume: bool = False,
    prep: Prepared | None = None,
    sess: Session | None = None,
    callbacks: Sequence[Callback] = (),
    score_test: bool = True,
) -> dict[str, Any]:
    """Train every seed in ``cfg.train.seeds`` and write the run directory.

    ``callbacks`` hear of the run (see :class:`Callback`); ``score_test=False`` leaves the test
    split unscored by the model and its baselines (a sweep's trials: test is scored once, for
    the best trial, by :func:`ercgraph.evaluate.evaluate_run`).

    The whole config is checked before any feature is read; the run directory is locked while
    the run writes into it.

    Under torchrun (``sess``, see :mod:`ercgraph.distributed`) every rank checks the config and
    the world size (refused when larger than the training dialogues), the configs' hashes are
    compared, rank 0 locks the run directory and prepares the data first (extracting and caching
    what is missing), then the other ranks prepare from the cache; each seed is trained by all
    ranks together, and only rank 0 writes.

    Returns:
        The metrics dict written to ``metrics.json``.
    """
    from contextlib import ExitStack

    from ercgraph import tracking

    sess = sess or Session()
    check_config(cfg)
    if prep is not None:  # prepared elsewhere (a sweep's shared corpus): the body's needs too
        from ercgraph.pipeline import check_context

        check_context(cfg, prep.corpus)
    if sess.active:
        if cfg.train.jobs > 1:
            raise ErcgraphError(
                "train.jobs > 1 runs seeds in forked processes; under torchrun the ranks already "
                "share each seed: set train.jobs to 1 (or drop --jobs)"
            )
        sess.check_same(dataclasses.asdict(cfg), "configs")
    sess.on_main(lambda: check_out_dir(out, cfg, resume))
    with ExitStack() as stack:
        sess.on_main(lambda: stack.enter_context(locked(out)))
        # trackers first: a later callback that ends the run in epoch_end (a pruned trial)
        # finds that epoch already logged; their files are closed however the run ends
        trackers = tracking.from_config(cfg, out)
        for tracker in trackers:
            stack.callback(tracker.close)
        callbacks = [*trackers, *callbacks]
        sess.on_main(lambda: check_out_dir(out, cfg, resume))  # again, now that we hold the lock
        if resume:
            sess.on_main(lambda: check_resume(out, cfg))
        if prep is None:
            prep = _prepare_ranked(cfg, sess)
        if sess.is_main:
            write_setup(out, cfg, prep)
            for cb in callbacks:
                cb.run_start(cfg, out)
        t_train = time.perf_counter()
        threads = torch.get_num_threads()
        try:
            if cfg.train.threads:
                torch.set_num_threads(cfg.train.threads)
            if cfg.train.jobs > 1 and len(cfg.train.seeds) > 1:
                results = fit_seeds_in_parallel(cfg, prep, out, resume, callbacks, score_test)
            else:
                results = {
                    s: fit_seed(
                        cfg, prep, s, out / f"seed_{s}", resume, sess, callbacks, score_test
                    )
                    for s in cfg.train.seeds
                }
        finally:
            torch.set_num_threads(threads)
        train_s = time.perf_counter() - t_train
        if not sess.is_main:
            return sess.broadcast(None)
        baselines = fit_baselines(cfg, prep, score_test)
        metrics = summarise(cfg, prep, results, out, baselines)
        metrics["timings"] = {**prep.timings, "train_s": train_s}
        for name, b in metrics.get("baselines", {}).items():
            if "missing" in b:
                log.warning("no %s baseline for this run: %s", name, b["missing"])
            elif b.get("warning"):
                log.warning("%s", b["warning"])
        if sess.active:
            metrics["world_size"] = sess.world
        write_json(out / "metrics.json", metrics)
        for cb in callbacks:
            cb.run_end(metrics)
    return sess.broadcast(metrics)


def _prepare_ranked(cfg: Config, sess: Session) -> Prepared:
    """``prepare`` on one process; under torchrun rank 0 first (it fills the caches), then the
    others from the cache. The world size is checked against the training dialogues before any
    feature is read."""
    if not sess.active:
        return prepare(cfg)
    from ercgraph.distributed import corpus_fingerprint, features_fingerprint
    from ercgraph.pipeline import read_corpus

    corpus, provided = read_corpus(cfg)
    # each rank may read its own ERCGRAPH_DATA, which the config hash does not see: the same
    # corpus everywhere, before any rank extracts or refuses anything on its own
    sess.check_same_data(corpus_fingerprint(corpus), "corpora")
    train = corpus.df.loc[corpus.df["split"] == "train", "dialogue_id"].nunique()
    sess.check_world(int(train), "training dialogues")
    prep = sess.on_main(lambda: prepare(cfg, corpus, features=provided))
    if not sess.is_main:
        prep = prepare(cfg, corpus, features=provided)
    sess.check_same_data(features_fingerprint(prep.store), "features")  # before the model
    return prep


def _fit_seed_job(shared: tuple, i: int) -> dict[str, Any]:
    cfg, prep, out, resume, callbacks, score_test = shared
    seed = cfg.train.seeds[i]
    return fit_seed(cfg, prep, seed, out / f"seed_{seed}", resume, None, callbacks, score_test)


def fit_seeds_in_parallel(
    cfg: Config,
    prep: Prepared,
    out: Path,
    resume: bool,
    callbacks: Sequence[Callback] = (),
    score_test: bool = True,
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
        _fit_seed_job,
        (cfg, prep, out, resume, tuple(callbacks), score_test),
        len(seeds),
        cfg.train.jobs,
        cfg.train.threads or 1,
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


def fit_baselines(
    cfg: Config, prep: Prepared, score_test: bool = True
) -> dict[str, dict[str, Any]]:
    """The baselines of ``train.baselines`` (today the linear probe, :mod:`ercgraph.probe`),
    fitted on the run's node features after its seeds have trained; each is a result dict or
    ``{"missing": reason}``."""
    if "probe" not in cfg.train.baselines:
        return {}
    from ercgraph.probe import fit_probe

    heads = make_model(cfg, prep).heads  # the heads' own scoring, so every metric key matches
    t0 = time.perf_counter()
    probe = fit_probe(cfg, prep, dict(heads.items()), score_test)
    log.info("linear probe fitted in %.1f s", time.perf_counter() - t0)
    return {"probe": probe}


def summarise(
    cfg: Config,
    prep: Prepared,
    results: dict[int, dict],
    out: Path,
    baselines: dict[str, dict[str, Any]] | None = None,
) -> dict:
    """metrics.json content, summary.md, confusion matrix and learning curves; ``baselines``
    (see :func:`fit_baselines`) join the metrics with the model's Δ over each."""
    from ercgraph.probe import compare

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
        if not all(split in r for r in results.values()):  # test unscored (a sweep's trial)
            continue
        metrics[split] = aggregate({s: r[split] for s, r in results.items()})
        if all(f"{split}_argmax" in r for r in results.values()):  # beside a dev-fitted rule
            metrics[f"{split}_argmax"] = aggregate(
                {s: r[f"{split}_argmax"] for s, r in results.items()}
            )
        ens = ensemble(results, split, labels, cfg.metrics.exclude_label)
        if ens is not None:
            metrics[f"{split}_ensemble"] = ens
    if baselines:
        metrics["baselines"] = {
            name: b if "missing" in b else {**b, **compare(metrics, b)}
            for name, b in baselines.items()
        }
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
