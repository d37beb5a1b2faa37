"""Fine-tuning of a text encoder on the training split, with dialogue context.

The encoder (any transformers ``AutoModel``) gets a linear emotion classifier on its mean-pooled
output and is trained on the TRAIN split with cross-entropy, AdamW and a linear warm-up
(10 % of the steps) then linear decay. After every epoch the weighted F1 on the DEV split is
measured, and the encoder weights of the best dev epoch are kept; the test split is never read.

With ``finetune.targets`` (dimensional corpora such as EmoBank), the head is a linear regressor
onto those columns instead, standardised with the training rows' mean and std, trained with
``1 - CCC`` averaged over the columns (the CCC loss of the regression head), and the epoch with
the best mean dev CCC is kept.
The encoder and its tokenizer are then saved with ``save_pretrained`` into the output folder
(atomically: a temporary folder beside it, then a rename), together with ``finetune.json``
(settings, per-epoch scores, best epoch) and the classifier head (``classifier_head.safetensors``).

A folder whose ``finetune.json`` holds the same settings (base model fingerprint, fine-tuning
config, token limit and a fingerprint of the train and dev rows *with their labels*) is reused
as is.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ercgraph.config import FinetuneConfig
from ercgraph.encoders.context import build_encoder_inputs, check_window
from ercgraph.encoders.text import TextEncoder, encoder_fingerprint, resolve_model
from ercgraph.errors import ErcgraphError
from ercgraph.losses.objective import add_second_view, build_objective
from ercgraph.losses.regression import ccc_loss

if TYPE_CHECKING:
    from ercgraph.data.corpus import Corpus

log = logging.getLogger(__name__)

SCHEDULES = ("linear", "cosine", "constant")
GRAD_CLIP = 1.0
#: Inputs are shuffled, then sorted by length inside pools of this many batches, so that each
#: batch is padded little while the batch order stays random.
SORT_POOL_BATCHES = 50


def finetune_settings(
    corpus: Corpus, model_name_or_path: str, ft: FinetuneConfig, max_length: int | None = None
) -> dict[str, Any]:
    """Everything a fine-tuned encoder depends on (its reuse key)."""
    model = resolve_model(model_name_or_path)
    return {
        "base_model": model,
        "base_model_fingerprint": encoder_fingerprint(model),
        "finetune": finetune_key(ft),
        "max_length": int(max_length if max_length is not None else ft.max_length),
        "corpus": _fit_fingerprint(corpus, ft.targets),
        "labels": list(corpus.labels),
        "warmup_fraction": ft.warmup_fraction,
        "grad_clip": GRAD_CLIP,
        "pooling": "mean",
    }


#: Fine-tuning keys added after encoders were first cached, with the value every earlier
#: encoder was trained with: they enter the reuse key only when they differ from it, so an
#: encoder fine-tuned before they existed keeps its key (whatever today's defaults are).
_LATER_KEYS: dict[str, Any] = {
    "future_turns": 0,
    "pool": "all",
    "schedule": "linear",
    "warmup_fraction": 0.1,
    "layer_decay": 1.0,
    "loss": [{"name": "ce", "weight": 1.0, "options": {}}],
}


def finetune_key(ft: FinetuneConfig, with_enabled: bool = False) -> dict[str, Any]:
    """The fine-tuning settings as a plain dict (``enabled`` dropped unless asked for, later
    keys dropped where they hold the value earlier encoders were trained with)."""
    cfg = dataclasses.asdict(ft)
    if not with_enabled:
        cfg.pop("enabled", None)
    for key, before in _LATER_KEYS.items():
        if cfg.get(key) == before:
            cfg.pop(key, None)
    if ft.targets is not None:  # regression trains with the CCC loss: the terms do not apply
        cfg.pop("loss", None)
    return cfg


def check_finetune(ft: FinetuneConfig) -> None:
    """Refuse fine-tuning settings out of range, naming the key."""
    where = "features.text.finetune"
    if ft.epochs < 1 or ft.batch_size < 1 or not ft.lr > 0:
        raise ErcgraphError(
            f"config: {where}: epochs and batch_size must be >= 1 and lr > 0, got "
            f"epochs={ft.epochs}, batch_size={ft.batch_size}, lr={ft.lr}"
        )
    check_window(ft.context_turns, ft.future_turns, ft.pool, where)
    if ft.schedule not in SCHEDULES:
        raise ErcgraphError(
            f"config: {where}.schedule must be one of {list(SCHEDULES)}, got {ft.schedule!r}"
        )
    if not 0.0 <= ft.warmup_fraction < 1.0:
        raise ErcgraphError(
            f"config: {where}.warmup_fraction must be >= 0 and < 1, got {ft.warmup_fraction}"
        )
    if not 0.0 < ft.layer_decay <= 1.0:
        raise ErcgraphError(
            f"config: {where}.layer_decay must be > 0 and <= 1, got {ft.layer_decay}"
        )
    if ft.targets is None:
        from ercgraph.registry import LOSSES

        for i, term in enumerate(ft.loss):
            need = set(getattr(LOSSES.get(term.name), "REQUIRES", ())) - {"logits", "utterance"}
            if need:
                raise ErcgraphError(
                    f"config: {where}.loss[{i}] ({term.name!r}) reads {sorted(need)}, which "
                    "fine-tuning does not produce (it gives the utterance vector and the "
                    "emotion logits)"
                )
            if term.weight < 0:
                raise ErcgraphError(
                    f"config: {where}.loss[{i}].weight must be >= 0, got {term.weight}"
                )


def _layer_of(name: str, num_layers: int) -> int:
    """The depth of a parameter: 0 for embeddings, ``i + 1`` for transformer layer ``i``,
    ``num_layers + 1`` for everything above (pooler)."""
    import re

    m = re.search(r"\.(?:layer|layers|h|block)\.(\d+)\.", f".{name}")
    if m:
        return int(m.group(1)) + 1
    if "embed" in name:
        return 0
    return num_layers + 1


def param_groups(
    model: torch.nn.Module, head: torch.nn.Module, ft: FinetuneConfig
) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices only, and the layer-wise learning rate
    ``lr * layer_decay ** (L + 1 - depth)`` (the head and pooler at ``lr``)."""
    num_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    groups: dict[tuple[int, bool], list[torch.nn.Parameter]] = {}
    named = [(n, p, _layer_of(n, num_layers)) for n, p in model.named_parameters()]
    named += [(f"head.{n}", p, num_layers + 1) for n, p in head.named_parameters()]
    for _, p, depth in named:
        if p.requires_grad:
            groups.setdefault((depth, p.dim() >= 2), []).append(p)
    out = []
    for (depth, decay), params in sorted(groups.items()):
        out.append(
            {
                "params": params,
                "weight_decay": ft.weight_decay if decay else 0.0,
                "lr": ft.lr * ft.layer_decay ** (num_layers + 1 - depth),
            }
        )
    return out


def _fit_fingerprint(corpus: Corpus, targets: list[str] | None = None) -> str:
    """A hash of the rows fine-tuning reads: train and dev, with their labels (and the
    regression ``targets`` columns).

    The test split is left out on purpose: fine-tuning never reads it, so the same fine-tuned
    encoder serves corpora that differ only in their test rows.
    """
    import hashlib

    import pandas as pd

    df = corpus.df[corpus.df["split"].isin(["train", "dev"])]
    h = hashlib.sha256()
    extra = [c for c in targets or [] if c in df.columns]
    for col in ("split", "dialogue_id", "turn", "speaker", "text", "label", *extra):
        if col in df.columns:
            h.update(col.encode())
            h.update(
                pd.util.hash_pandas_object(df[col].astype(str), index=False).to_numpy().tobytes()
            )
    return h.hexdigest()[:16]


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def _read_report(out_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out_dir / "finetune.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _weights_readable(out_dir: Path) -> bool:
    """Whether every safetensors file of a saved fine-tuned encoder (at least one) opens; a
    truncated or overwritten file is logged and the encoder is fine-tuned again."""
    from safetensors import safe_open

    files = sorted(out_dir.glob("*.safetensors"))
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as fh:
                fh.keys()
        except Exception as exc:  # safetensors raises its own error types
            log.warning("fine-tuned encoder %s is corrupt (%s); fine-tuning it again", path, exc)
            return False
    return bool(files)


def _batches(lengths: np.ndarray, batch_size: int, gen: torch.Generator) -> list[np.ndarray]:
    """Shuffled, length-bucketed batches of row positions."""
    perm = torch.randperm(len(lengths), generator=gen).numpy()
    pool = batch_size * SORT_POOL_BATCHES
    batches = []
    for start in range(0, len(perm), pool):
        chunk = perm[start : start + pool]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    order = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i] for i in order]


def finetune_text_encoder(
    corpus: Corpus,
    model_name_or_path: str,
    ft: FinetuneConfig,
    out_dir: Path,
    max_length: int | None = None,
    *,
    device: str | None = None,
    progress: bool = True,
) -> Path:
    """Fine-tune a text encoder on the corpus's train split and save it (or reuse a saved one).

    Args:
        corpus: Needs ``text`` and labels on the train split (or, with ``ft.targets``, values
            in those columns); the dev split (if any) selects the best epoch by weighted F1 (or
            by mean CCC over the target columns).
        model_name_or_path: Base encoder (``default``, a local folder or a hub id).
        ft: Epochs, learning rate, batch size, context turns, weight decay, seed and the
            regression targets (None: classify the label).
        out_dir: Folder to write (``save_pretrained`` layout plus ``finetune.json``).
        max_length: Token limit per input; ``None`` uses ``ft.max_length``.
        device: ``cpu``, ``cuda``, ...; ``None`` picks CUDA when available.
        progress: Show tqdm progress bars.

    Returns:
        ``out_dir``, loadable with ``AutoModel.from_pretrained``.

    Raises:
        ErcgraphError: on a bad config, no labelled training rows (no training values of a
            target column, a target that is not a number), or a model that cannot load.
    """
    from sklearn.metrics import f1_score

    from ercgraph.progress import Progress

    out_dir = Path(out_dir)
    check_finetune(ft)
    settings = _jsonable(finetune_settings(corpus, model_name_or_path, ft, max_length))
    report = _read_report(out_dir)
    if (
        report is not None
        and report.get("settings") == settings
        and (out_dir / "config.json").is_file()
        and _weights_readable(out_dir)
    ):
        log.info(
            "reusing fine-tuned text encoder %s (best dev epoch %s)",
            out_dir,
            report.get("best_epoch"),
        )
        return out_dir

    split = corpus.df["split"].to_numpy()
    regress = ft.targets is not None
    if regress:
        y_all, mean, std = _regression_targets(corpus, list(ft.targets))
        labelled = ~np.isnan(y_all).all(1)
        labels = None
    else:
        labels = corpus.label_ids()
        labelled = labels >= 0
    train_rows = np.flatnonzero((split == "train") & labelled)
    dev_rows = np.flatnonzero((split == "dev") & labelled)
    if regress:
        dev_rows = _scorable_dev(y_all, dev_rows)
    if len(train_rows) == 0:
        what = f"values in {list(ft.targets)}" if regress else "labelled rows"
        hint = (
            ""
            if regress
            else " (a corpus without labels can regress its columns instead: set "
            "features.text.finetune.targets)"
        )
        raise ErcgraphError(
            f"{corpus.source or corpus.name}: fine-tuning needs {what} in the 'train' split; "
            f"found none{hint}"
        )

    t0 = time.perf_counter()
    seed = int(ft.seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)

    enc = TextEncoder(
        settings["base_model"],
        pooling="mean",
        max_length=settings["max_length"],
        batch_size=max(ft.batch_size, 32),
        truncation_side="left",
        normalize=False,
        device=device,
        progress=progress,
    )
    inputs = build_encoder_inputs(corpus, enc, ft.context_turns, ft.future_turns, ft.pool)
    ids, spans = inputs.ids, inputs.spans
    lengths = np.array([len(x) for x in ids])
    out_dim = len(ft.targets) if regress else corpus.num_classes
    head = torch.nn.Linear(enc.dim, out_dim).to(enc.device)
    params = list(enc.model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(param_groups(enc.model, head, ft), lr=ft.lr)
    steps_per_epoch = -(-len(train_rows) // ft.batch_size)
    total = steps_per_epoch * ft.epochs
    sched = _scheduler(opt, ft, total)
    objective = None
    if regress:
        y = torch.as_tensor((y_all - mean) / std, dtype=torch.float32)
    else:
        y = torch.as_tensor(labels)
        counts = torch.bincount(y[train_rows], minlength=corpus.num_classes).float()
        objective = build_objective(
            ft.loss,
            {
                "class_counts": counts,
                "num_classes": corpus.num_classes,
                "labels": list(corpus.labels),
            },
        ).to(enc.device)
    dev_inputs = inputs.take(dev_rows)

    history: list[dict[str, Any]] = []
    best_score, best_epoch, best_state = -1.0, None, None
    with Progress(total, "fine-tuning text encoder", unit="step", enabled=progress) as bar:
        for epoch in range(1, ft.epochs + 1):
            enc.model.train()
            head.train()
            if objective is not None:
                objective.train()
            losses = []
            term_sums: dict[str, float] = {}
            for pos in _batches(lengths[train_rows], ft.batch_size, gen):
                rows = train_rows[pos]
                batch = enc.collate(
                    [ids[i] for i in rows], None if spans is None else [spans[i] for i in rows]
                )
                if regress:
                    loss = ccc_loss(head(enc.forward_batch(batch)), y[rows].to(enc.device))
                else:
                    target = SimpleNamespace(y=y[rows].to(enc.device))
                    out = _output(enc, head, batch)
                    if objective.views > 1:
                        add_second_view(out, _output(enc, head, batch))
                    loss, values = objective(out, target)
                    for k, v in values.items():
                        term_sums[k] = term_sums.get(k, 0.0) + v
                    if loss is None:
                        continue
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{np.mean(losses[-20:]):.3f}")
            record: dict[str, Any] = {"epoch": epoch, "train_loss": float(np.mean(losses))}
            if len(term_sums) > 1:
                record["train_terms"] = {k: v / max(len(losses), 1) for k, v in term_sums.items()}
            if len(dev_rows):
                head.eval()
                emb = enc.encode_ids(dev_inputs.ids, dev_inputs.spans, desc=f"dev epoch {epoch}")
                with torch.no_grad():
                    out = head(emb.to(enc.device)).cpu()
                if regress:
                    score = _mean_ccc(out.numpy(), y[dev_rows].numpy())
                    record["dev_ccc"] = score
                else:
                    score = float(
                        f1_score(labels[dev_rows], out.argmax(-1).numpy(), average="weighted")
                    )
                    record["dev_weighted_f1"] = score
                if score > best_score:
                    best_score, best_epoch = score, epoch
                    best_state = _snapshot(enc.model, head)
            log.info("fine-tuning epoch %d: %s", epoch, record)
            history.append(record)
    if best_state is None:
        log.warning("no labelled dev split: keeping the last fine-tuning epoch")
        best_epoch, best_state = ft.epochs, _snapshot(enc.model, head)
    enc.model.load_state_dict(best_state[0])
    head.load_state_dict(best_state[1])

    report = {
        "settings": settings,
        "epochs": history,
        "best_epoch": best_epoch,
        f"best_dev_{'ccc' if regress else 'weighted_f1'}": best_score if len(dev_rows) else None,
        "selection": (
            f"dev {'mean CCC' if regress else 'weighted F1'}"
            if len(dev_rows)
            else "last epoch (no dev split)"
        ),
        "train_utterances": int(len(train_rows)),
        **(
            {"targets": list(ft.targets), "target_mean": mean.tolist(), "target_std": std.tolist()}
            if regress
            else {}
        ),
        "dev_utterances": int(len(dev_rows)),
        "inputs": inputs.stats,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    _save_atomically(out_dir, enc, head, report)
    log.info("fine-tuned text encoder saved to %s (best dev epoch %s)", out_dir, best_epoch)
    return out_dir


def _output(enc: TextEncoder, head: torch.nn.Module, batch: dict[str, torch.Tensor]) -> Any:
    """One forward pass as the :class:`ModelOutput` loss terms read (utterance and logits)."""
    from ercgraph.models.outputs import ModelOutput

    vec = enc.forward_batch(batch)
    return ModelOutput(utterance=vec, nodes={}, inputs={}, present={}, logits=head(vec))


def _scheduler(opt: torch.optim.Optimizer, ft: FinetuneConfig, total: int) -> Any:
    from transformers import (
        get_constant_schedule_with_warmup,
        get_cosine_schedule_with_warmup,
        get_linear_schedule_with_warmup,
    )

    warmup = int(ft.warmup_fraction * total)
    if ft.schedule == "cosine":
        return get_cosine_schedule_with_warmup(opt, warmup, total)
    if ft.schedule == "constant":
        return get_constant_schedule_with_warmup(opt, warmup)
    return get_linear_schedule_with_warmup(opt, warmup, total)


def _regression_targets(corpus: Corpus, names: list[str]) -> tuple[np.ndarray, ...]:
    """The ``[N, D]`` target columns (NaN where missing) and their training mean and std.

    Raises:
        ErcgraphError: a column that is absent, holds a value that is not a number (named by
            row), or has fewer than 2 values on the training split.
    """
    import pandas as pd

    where = corpus.source or corpus.name
    missing = [n for n in names if n not in corpus.df.columns]
    if not names or missing:
        raise ErcgraphError(
            f"features.text.finetune.targets: {where} has no column(s) {missing or names}; "
            f"found {sorted(corpus.df.columns)} (map them with data.columns)"
        )
    train = (corpus.df["split"] == "train").to_numpy()
    cols = []
    for name in names:
        raw = corpus.df[name]
        col = pd.to_numeric(raw, errors="coerce")
        bad = np.flatnonzero((col.isna() & raw.notna()).to_numpy())
        if len(bad):
            raise ErcgraphError(
                f"{where}: row {int(bad[0])}, column {name!r}: expected a number for "
                f"fine-tuning, got {raw.iloc[bad[0]]!r}"
            )
        if int(col[train].notna().sum()) < 2:
            raise ErcgraphError(
                f"{where}: column {name!r} has fewer than 2 values on the 'train' split; "
                "fine-tuning cannot learn it (drop it from features.text.finetune.targets)"
            )
        cols.append(col.to_numpy(dtype=float))
    y = np.stack(cols, 1)
    mean, std = np.nanmean(y[train], 0), np.nanstd(y[train], 0)
    return y, mean, np.where(std > 0, std, 1.0)


def _mean_ccc(pred: np.ndarray, target: np.ndarray) -> float:
    from ercgraph.metrics import ccc

    cols = [j for j in range(target.shape[1]) if (~np.isnan(target[:, j])).sum() >= 2]
    keep = [~np.isnan(target[:, j]) for j in cols]
    return float(np.mean([ccc(pred[k, j], target[k, j]) for j, k in zip(cols, keep)]))


def _scorable_dev(y: np.ndarray, dev_rows: np.ndarray) -> np.ndarray:
    """The dev rows, or none when no target column has 2 dev values (nothing to select on)."""
    ok = (~np.isnan(y[dev_rows])).sum(0) >= 2
    return dev_rows if ok.any() else dev_rows[:0]


def _snapshot(model: torch.nn.Module, head: torch.nn.Module) -> tuple[dict, dict]:
    return (
        {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        {k: v.detach().cpu().clone() for k, v in head.state_dict().items()},
    )


def _save_atomically(
    out_dir: Path, enc: TextEncoder, head: torch.nn.Module, report: dict[str, Any]
) -> None:
    """Write into a temporary sibling folder, then swap it in with renames."""
    from safetensors.torch import save_file

    from ercgraph.data.features import replace_dir, write_error

    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    except OSError as exc:  # a full or read-only disk: one line, not a traceback
        raise write_error(out_dir, exc) from exc
    try:
        enc.model.save_pretrained(tmp)
        enc.tokenizer.save_pretrained(tmp)
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()},
            str(tmp / "classifier_head.safetensors"),
        )
        (tmp / "finetune.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
        replace_dir(tmp, out_dir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise write_error(out_dir, exc) from exc
        raise
