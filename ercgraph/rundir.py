"""The run directory: its layout, its lock, what is written into it, and reading it back.

A run directory is self-contained: ``evaluate`` and ``predict`` need nothing from the cache and
execute nothing from it.

```
config.yaml          the resolved config
environment.json     package versions, git revision, platform
features.json        how the features were made (encoders, timings, the encoder's content hash)
model.json           labels, input dims, edge types, heads and their fitted states
normaliser.safetensors   the train-fit feature standardiser (when features.normalise is on)
encoder/             the fine-tuned text encoder (when the run fine-tuned one)
seed_<s>/            last.pt (resume), best.safetensors (dev-selected weights), result.json
metrics.json  summary.md  confusion_test.png  learning_curve.png
.lock                held while a run writes here
```
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ercgraph.config import Config, dump_config
from ercgraph.data.features import atomic_write_bytes
from ercgraph.errors import ErcgraphError

CONFIG = "config.yaml"
MODEL = "model.json"
FEATURES = "features.json"
NORMALISER = "normaliser.safetensors"
ENCODER = "encoder"
LOCK = ".lock"


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, default=str).encode())


def atomic_torch_save(obj: Any, path: Path) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


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


# -- before a run: never overwrite, only resume what matches -----------------------------------
def check_out_dir(out: Path, cfg: Config, resume: bool) -> None:
    """Never overwrite a run unless resuming it, and only resume it with the same config.

    A resumed run may change ``train.epochs`` (to train longer), ``train.seeds`` (to add seeds)
    and ``train.jobs`` (how many seeds train at once),
    and may find its data, cache and plug-in files elsewhere (``data_root``, ``cache_dir``,
    ``imports``); anything else must match the saved ``config.yaml``.
    """
    if out.exists() and not out.is_dir():
        raise ErcgraphError(f"--out {str(out)!r} is a file, not a folder; choose another --out")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise ErcgraphError(f"--out {str(out)!r} lies under the file {str(parent)!r}")
    nonempty = out.exists() and any(p.name not in (LOCK, f"{LOCK}.owner") for p in out.iterdir())
    if resume and nonempty and not (out / CONFIG).exists():
        raise ErcgraphError(
            f"--resume: {str(out)!r} is not a run directory (no config.yaml); nothing to resume"
        )
    if nonempty and not resume:
        raise ErcgraphError(
            f"run directory {str(out)!r} already exists and is not empty; "
            "pass --resume to continue it or choose another --out"
        )
    saved_path = out / CONFIG
    if resume and saved_path.exists():
        import yaml

        try:
            saved = yaml.safe_load(saved_path.read_text())
        except yaml.YAMLError as exc:
            raise ErcgraphError(f"--resume: {str(saved_path)!r} is not valid YAML") from exc
        new = yaml.safe_load(dump_config(cfg))
        for d in (saved, new):
            if isinstance(d, dict) and isinstance(d.get("train"), dict):
                d["train"].pop("epochs", None)
                d["train"].pop("seeds", None)
                d["train"].pop("jobs", None)  # how many at once, not what is trained
                d["train"].pop("baselines", None)  # what the report compares, not the model
            if isinstance(d, dict):  # where things are, not what the run is
                for key in ("data_root", "cache_dir", "out", "imports"):
                    d.pop(key, None)
        if saved != new:
            diff = sorted(
                f"{sec}.{k}" if isinstance(new[sec], dict) else sec
                for sec in new
                for k in (new[sec] if isinstance(new[sec], dict) else [None])
                if not isinstance(saved, dict)
                or (
                    saved.get(sec, {}).get(k) != new[sec][k]
                    if isinstance(new[sec], dict) and isinstance(saved.get(sec), dict)
                    else saved.get(sec) != new[sec]
                )
            )
            raise ErcgraphError(
                f"--resume: the config differs from {str(saved_path)!r} "
                f"(at {', '.join(diff) or 'top level'}); resume with the same "
                "config (only train.epochs and train.seeds may change)"
            )


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` while a run writes into ``out``; a second writer is refused, naming the
    holder (host and process id). A folder this call created and left empty (a failed start) is
    removed again, so a rerun is not blocked."""
    from filelock import FileLock, Timeout

    if out.exists() and not out.is_dir():
        raise ErcgraphError(f"--out {str(out)!r} is a file, not a folder; choose another --out")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ErcgraphError(f"cannot create the run directory {str(out)!r}: {exc}") from exc
    lock = FileLock(str(out / LOCK), timeout=0)
    owner = out / f"{LOCK}.owner"
    try:
        lock.acquire()
    except Timeout:
        holder = owner.read_text().strip() if owner.exists() else "another process"
        raise ErcgraphError(
            f"run directory {str(out)!r} is in use by {holder}; wait for it to finish or choose "
            "another --out"
        ) from None
    try:
        owner.write_text(f"pid {os.getpid()} on {socket.gethostname()}\n")
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()
        if created and {p.name for p in out.iterdir()} <= {LOCK}:
            (out / LOCK).unlink(missing_ok=True)
            out.rmdir()


# -- what a run writes before training ---------------------------------------------------------
def keep_encoder(out: Path, feature_info: dict[str, Any]) -> None:
    """Copy a fine-tuned text encoder into the run directory (``encoder/``) and record its
    content hash in ``feature_info``, so the run does not depend on the cache."""
    from ercgraph.encoders.text import encoder_fingerprint

    text = feature_info.get("text") or {}
    src = text.get("finetuned_path")
    if not src:
        return
    dest = out / ENCODER
    if not dest.is_dir():
        tmp = out / f".{ENCODER}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        os.replace(tmp, dest)
    text["encoder_sha256"] = encoder_fingerprint(str(dest))
    text["run_encoder"] = ENCODER


def write_setup(out: Path, cfg: Config, prep: Any) -> None:
    """Config, environment, feature info, model facts and normaliser, before any seed trains."""
    from ercgraph.config import effective_heads

    keep_encoder(out, prep.feature_info)
    atomic_write_bytes(out / CONFIG, dump_config(cfg).encode())
    write_json(out / "environment.json", environment())
    write_json(out / FEATURES, prep.feature_info)
    write_json(
        out / MODEL,
        {
            "labels": list(prep.corpus.labels),
            "in_dims": prep.store.dims(),
            "edge_types": [list(et) for et in prep.edge_types],
            "heads": effective_heads(cfg),
            "head_states": prep.head_states,
            "normaliser": NORMALISER if prep.normaliser is not None else None,
        },
    )
    if prep.normaliser is not None:
        prep.normaliser.save(out / NORMALISER)


# -- reading a finished run back (evaluate, predict) -------------------------------------------
def read_run(run_dir: Path) -> tuple[Config, dict[str, Any], list[Path]]:
    """The run's config, ``model.json`` and its seeds' dev-selected checkpoints.

    Dotted paths in the saved config are not imported (see
    :func:`ercgraph.registry.dotted_paths_allowed`).
    """
    from ercgraph.config import load_config

    if not (run_dir / CONFIG).is_file():
        raise ErcgraphError(f"{str(run_dir)!r} is not a run directory (no config.yaml)")
    if (run_dir / "folds.json").is_file():
        folds = sorted(p.name for p in run_dir.glob("fold_*") if p.is_dir())
        raise ErcgraphError(
            f"{str(run_dir)!r} is a cross-validation folder; open one fold's run directory, "
            f"e.g. {str(run_dir / (folds[0] if folds else 'fold_0'))!r}"
        )
    if not (run_dir / MODEL).is_file():
        raise ErcgraphError(
            f"{str(run_dir)!r} has no model.json; it was not trained to the point of saving a model"
        )
    cfg = load_config(run_dir / CONFIG)
    try:
        meta = json.loads((run_dir / MODEL).read_text())
    except ValueError as exc:
        raise ErcgraphError(f"{str(run_dir / MODEL)!r} is not valid JSON: {exc}") from exc
    if "head_states" not in meta:
        raise ErcgraphError(
            f"{str(run_dir)!r} was written by an older ercgraph (its model.json has no heads); "
            "train it again"
        )
    ckpts = [run_dir / f"seed_{s}" / "best.safetensors" for s in cfg.train.seeds]
    unfinished = [
        s
        for s, c in zip(cfg.train.seeds, ckpts)
        if not c.is_file() or not (c.parent / "result.json").is_file()
    ]
    if unfinished:
        raise ErcgraphError(
            f"{str(run_dir)!r}: seed(s) {unfinished} did not finish (no result.json or "
            "best.safetensors), so their checkpoints are not dev-selected yet; finish the run "
            "with ercgraph train --resume --out RUN_DIR"
        )
    return cfg, meta, ckpts


def load_normaliser(run_dir: Path, meta: dict[str, Any]) -> Any:
    from ercgraph.data.normalise import Standardiser

    if not meta.get("normaliser"):
        return None
    return Standardiser.load(run_dir / meta["normaliser"])


def feature_config(cfg: Config, run_dir: Path) -> Config:
    """The run's feature settings for new data: a fine-tuned encoder is the run's own copy
    (``encoder/``), reused as is and never re-trained."""
    import dataclasses

    text = cfg.features.text
    if not text.finetune.enabled:
        return cfg
    info = json.loads((run_dir / FEATURES).read_text()).get("text") or {}
    path = run_dir / ENCODER
    if not path.is_dir():
        raise ErcgraphError(
            f"the run's fine-tuned text encoder is gone: {str(path)!r} is missing (content hash "
            f"{info.get('encoder_sha256', 'unknown')}); restore that folder or train again"
        )
    ft = text.finetune
    text = dataclasses.replace(
        text,
        encoder=str(path.resolve()),
        context_turns=ft.context_turns,
        future_turns=ft.future_turns,
        pool=ft.pool,
        max_length=ft.max_length,
        finetune=dataclasses.replace(ft, enabled=False),
    )
    return dataclasses.replace(cfg, features=dataclasses.replace(cfg.features, text=text))


def load_weights(model: Any, path: Path) -> None:
    """Load a ``best.safetensors`` into ``model`` with an error naming the file when it is
    truncated, corrupt or from another model."""
    from safetensors.torch import load_file

    try:
        state = load_file(path)
    except Exception as exc:
        raise ErcgraphError(f"checkpoint {str(path)!r} is corrupt or truncated: {exc}") from exc
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ErcgraphError(f"checkpoint {str(path)!r} does not fit this model: {first}") from exc
