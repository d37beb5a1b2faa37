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
tensorboard/         seed_<s>/ and run/ event files (when train.log_to lists tensorboard)
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
    and ``train.jobs`` (how many seeds train at once), may switch ``train.baselines`` and
    ``train.log_to`` (what is reported beside the model, and where its curves go),
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
    if saved_path.is_symlink():  # a resume would read through it, then replace it
        raise ErcgraphError(
            f"{str(saved_path)!r} is a symlink (to {os.readlink(saved_path)!r}); a run's "
            "config.yaml must be a plain file inside it: replace the link by the file"
        )
    if resume and nonempty:
        # every folder a resume writes into (a cross-validation's folds too), before any work
        inner = [*out.glob("seed_*"), *out.glob("fold_*"), *out.glob("fold_*/seed_*")]
        for folder in [out, *sorted(p for p in inner if p.is_dir())]:
            check_writable(folder, "--resume: the run folder")
    if resume and saved_path.exists():
        from ercgraph.config import read_yaml

        try:
            text = saved_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ErcgraphError(f"--resume: cannot read {str(saved_path)!r}: {exc}") from None
        saved = read_yaml(text, f"--resume: {str(saved_path)!r}")
        fill_legacy(saved)
        new = read_yaml(dump_config(cfg), "the resolved config")
        for d in (saved, new):
            if isinstance(d, dict) and isinstance(d.get("train"), dict):
                d["train"].pop("epochs", None)
                d["train"].pop("seeds", None)
                d["train"].pop("jobs", None)  # how many at once, not what is trained
                d["train"].pop("baselines", None)  # what the report compares, not the model
                d["train"].pop("log_to", None)  # where the curves are also written, ditto
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


#: config keys added after runs were saved, with the value a run saved without them trained
#: with: a resume of such a run continues as it began
LEGACY = {("train", "min_steps"): 0}


def fill_legacy(raw: Any) -> list[str]:
    """Add the :data:`LEGACY` value of every key a saved config (raw YAML) lacks; returns the
    dotted keys filled."""
    filled = []
    if not isinstance(raw, dict):
        return filled
    for (section, key), value in LEGACY.items():
        part = raw.get(section)
        if isinstance(part, dict) and key not in part:
            part[key] = value
            filled.append(f"{section}.{key}")
    return filled


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
    except OSError as exc:  # a read-only folder or file system
        raise ErcgraphError(
            f"cannot lock the run directory {str(out)!r} ({exc.strerror or exc}); make it "
            "writable or choose another --out"
        ) from None
    try:
        try:
            owner.write_text(f"pid {os.getpid()} on {socket.gethostname()}\n")
        except OSError as exc:
            raise ErcgraphError(
                f"cannot write in the run directory {str(out)!r} ({exc.strerror or exc}); make "
                "it writable or choose another --out"
            ) from None
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
    content hashes in ``feature_info`` (``encoder_files``: the SHA-256 of every file;
    ``encoder_sha256``: the quick fingerprint older runs recorded), so the run does not depend
    on the cache and a changed copy is noticed."""
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
    # every file in full: what evaluate and predict check before they load the encoder
    text["encoder_files"] = encoder_files(dest)
    text["run_encoder"] = ENCODER


def write_setup(out: Path, cfg: Config, prep: Any) -> None:
    """Config, environment, feature info, model facts and normaliser, before any seed trains."""
    from ercgraph.config import effective_heads

    keep_encoder(out, prep.feature_info)
    if (out / CONFIG).is_symlink():  # refused before the run started; never replaced
        raise ErcgraphError(f"{str(out / CONFIG)!r} is a symlink; nothing was written")
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
# A run directory may come from someone else, so everything read from it is data, checked
# before use: every file it names lies inside it (no absolute path, no "..", no symlink out),
# the values it loads are finite, its encoder is the one it recorded and holds no pickle, and
# where things live on this machine (data root, cache) comes from the user, never from it.

#: model.json keys evaluate and predict need, and the type each must have
MODEL_KEYS: dict[str, type] = {
    "labels": list,
    "in_dims": dict,
    "edge_types": list,
    "heads": list,
    "head_states": dict,
}
#: weights formats that are pickles (loading one can run code): never in a run's encoder
PICKLED_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".h5")


def run_file(run_dir: Path, rel: Any, key: str) -> Path:
    """The path of a file or folder the run names, which must lie inside the run directory.

    Args:
        run_dir: the run directory.
        rel: the name the run gives (relative to ``run_dir``).
        key: where the name comes from, for the error (e.g. ``model.json "normaliser"``).

    Returns:
        The resolved path (it may not exist).

    Raises:
        ErcgraphError: for a name that is not a relative path, contains ``..``, or resolves
            (through a symlink) outside the run directory.
    """
    if not isinstance(rel, str) or not rel.strip():
        raise ErcgraphError(f"{str(run_dir)!r}: {key} must name a file in the run, got {rel!r}")
    if Path(rel).is_absolute() or ".." in Path(rel).parts or "\\" in rel:
        raise ErcgraphError(
            f"{str(run_dir)!r}: {key} is {rel!r}; a run may only name files inside itself "
            "(a relative path without '..')"
        )
    root = run_dir.resolve()
    path = (run_dir / rel).resolve()
    if not path.is_relative_to(root):
        raise ErcgraphError(
            f"{str(run_dir / rel)!r} ({key}) resolves to {str(path)!r}, outside the run "
            "directory (a symlink?); a run may only use files inside itself"
        )
    return path


def run_config(run_dir: Path, config: Path) -> bool:
    """Whether ``config`` (a ``-c`` given to ``train --resume``) came with the run directory:
    it lies inside the run once symlinks are followed (``RUN/./seed_0/../config.yaml``, the run
    reached through a symlink), or the way to it follows a symlink that lies inside the run
    (which the run chose, wherever it leads), or it is the run's ``config.yaml`` under another
    name (a hard link). The path is walked the way the system resolves it, one component at a
    time; a path that merely passes the run's folder by name (``RUN/../mine.yaml``) is the
    user's."""
    root = run_dir.resolve()
    current = Path(config.anchor) if config.is_absolute() else Path.cwd()
    pending = list(config.parts[1:] if config.is_absolute() else config.parts)
    links = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            current = current.parent
            continue
        step = current / part
        if not step.is_symlink():
            current = step
            continue
        if current.is_relative_to(root):  # a link the run holds: where it leads is the run's
            return True
        links += 1
        if links > 40:  # a loop: the system would refuse it too; refuse it as the run's
            return True
        target = Path(os.readlink(step))
        if target.is_absolute():
            current = Path(target.anchor)
            pending = list(target.parts[1:]) + pending
        else:
            pending = list(target.parts) + pending
    if current.is_relative_to(root):
        return True
    saved = run_dir / CONFIG
    try:
        return saved.is_file() and current.is_file() and os.path.samefile(saved, current)
    except OSError:
        return False


def read_run(run_dir: Path) -> tuple[Config, dict[str, Any], list[Path]]:
    """The run's config, ``model.json`` and its seeds' dev-selected checkpoints.

    Dotted paths in the saved config are not imported (see
    :func:`ercgraph.registry.dotted_paths_allowed`). The config's ``data_root`` and
    ``cache_dir`` are where the run was trained; callers replace them with the user's.
    """
    from ercgraph.config import load_config

    if not run_dir.is_dir():
        raise ErcgraphError(f"{str(run_dir)!r} is not a run directory (not a folder)")
    config = run_file(run_dir, CONFIG, "the config")
    if not config.is_file():
        raise ErcgraphError(f"{str(run_dir)!r} is not a run directory (no config.yaml)")
    if (run_dir / "folds.json").is_file():
        folds = sorted(p.name for p in run_dir.glob("fold_*") if p.is_dir())
        raise ErcgraphError(
            f"{str(run_dir)!r} is a cross-validation folder; open one fold's run directory, "
            f"e.g. {str(run_dir / (folds[0] if folds else 'fold_0'))!r}"
        )
    model = run_file(run_dir, MODEL, "the model facts")
    if not model.is_file():
        raise ErcgraphError(
            f"{str(run_dir)!r} has no model.json; it was not trained to the point of saving a model"
        )
    cfg = load_config(config)
    meta = read_model_json(run_dir)
    ckpts = [
        run_file(run_dir, f"seed_{s}/best.safetensors", f"seed {s}'s checkpoint")
        for s in cfg.train.seeds
    ]
    unfinished = [
        s
        for s, c in zip(cfg.train.seeds, ckpts)
        if not c.is_file()
        or not run_file(run_dir, f"seed_{s}/result.json", f"seed {s}'s result").is_file()
    ]
    if unfinished:
        raise ErcgraphError(
            f"{str(run_dir)!r}: seed(s) {unfinished} did not finish (no result.json or "
            "best.safetensors), so their checkpoints are not dev-selected yet; finish the run "
            f"with ercgraph train --resume --out {str(run_dir)!r} (add -c YOUR_CONFIG, or "
            "--import FILE / --trust, if the run uses plug-ins)"
        )
    return cfg, meta, ckpts


def read_model_json(run_dir: Path) -> dict[str, Any]:
    """``model.json``, with every key evaluate and predict read checked for presence and type."""
    path = run_file(run_dir, MODEL, "the model facts")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ErcgraphError(f"{str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise ErcgraphError(f"{str(path)!r} must hold a JSON object")
    if "head_states" not in meta:
        raise ErcgraphError(
            f"{str(run_dir)!r} was written by an older ercgraph (its model.json has no heads); "
            "train it again"
        )
    for key, kind in MODEL_KEYS.items():
        if key not in meta:
            raise ErcgraphError(f"{str(path)!r} has no {key!r}; the run is incomplete")
        if not isinstance(meta[key], kind):
            raise ErcgraphError(
                f"{str(path)!r}: {key!r} must be a JSON {kind.__name__.replace('dict', 'object')},"
                f" got {type(meta[key]).__name__}"
            )
    labels = meta["labels"]
    if not labels or not all(isinstance(x, str) for x in labels) or len(set(labels)) < len(labels):
        raise ErcgraphError(f"{str(path)!r}: 'labels' must be distinct strings, got {labels!r}")
    for m, dim in meta["in_dims"].items():
        if isinstance(dim, bool) or not isinstance(dim, int) or not 0 < dim <= 2**31 - 1:
            raise ErcgraphError(f"{str(path)!r}: in_dims[{m!r}] must be a positive integer")
    for et in meta["edge_types"]:
        if not (isinstance(et, list) and len(et) == 3 and all(isinstance(x, str) for x in et)):
            raise ErcgraphError(
                f"{str(path)!r}: each edge type must be [source, relation, target], got {et!r}"
            )
    return meta


def load_normaliser(run_dir: Path, meta: dict[str, Any]) -> Any:
    """The run's saved normaliser (None when it has none), checked against the model's input
    dimensions: a modality without statistics, or of another length, is an error."""
    from ercgraph.data.normalise import Standardiser

    if not meta.get("normaliser"):
        return None
    path = run_file(run_dir, meta["normaliser"], 'model.json "normaliser"')
    norm = Standardiser.load(path)
    for m, dim in meta["in_dims"].items():
        if m not in norm.mean:
            raise ErcgraphError(
                f"normaliser {str(path)!r} has no statistics for modality {m!r} (model.json "
                f"in_dims has {sorted(meta['in_dims'])})"
            )
        if norm.mean[m].numel() != dim:
            raise ErcgraphError(
                f"normaliser {str(path)!r}: mean/{m} has {norm.mean[m].numel()} values, the "
                f"model takes {dim}-d {m} features (model.json in_dims)"
            )
    return norm


def read_features_json(run_dir: Path) -> dict[str, Any]:
    """``features.json`` (how the run made its features), or an error naming it."""
    path = run_file(run_dir, FEATURES, "the feature record")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ErcgraphError(f"{str(path)!r} is missing; the run is incomplete") from None
    except (OSError, ValueError) as exc:
        raise ErcgraphError(f"{str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(info, dict):
        raise ErcgraphError(f"{str(path)!r} must hold a JSON object")
    return info


def encoder_files(folder: Path) -> dict[str, str]:
    """``relative path → SHA-256`` of every file in ``folder`` (what a run records of its
    fine-tuned encoder)."""
    from ercgraph.data.features import sha256_file

    return {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def check_encoder(run_dir: Path, info: dict[str, Any]) -> Path:
    """The run's fine-tuned encoder folder, checked before anything loads it.

    It must be a plain folder inside the run holding plain files, none of them a pickle
    (``pytorch_model.bin`` and the like: the encoder loads from safetensors only), and its
    content must be what ``features.json`` recorded: every file's SHA-256 (``encoder_files``),
    or for runs that recorded only that, the quick fingerprint (``encoder_sha256``).

    Raises:
        ErcgraphError: naming the file or folder and, for a changed encoder, both hashes.
    """
    from ercgraph.encoders.text import encoder_fingerprint

    folder = run_file(run_dir, ENCODER, "the fine-tuned text encoder")
    shown = str(run_dir / ENCODER)
    if not folder.is_dir():
        raise ErcgraphError(
            f"the run's fine-tuned text encoder is gone: {shown!r} is missing (content hash "
            f"{info.get('encoder_sha256', 'unknown')}); restore that folder or train again"
        )
    if (run_dir / ENCODER).is_symlink():
        raise ErcgraphError(f"{shown!r} is a symlink; the run's encoder must be a plain folder")
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_symlink():
            raise ErcgraphError(
                f"{shown}/{rel} is a symlink; the run's encoder holds plain files only"
            )
        if p.is_file() and p.suffix.lower() in PICKLED_SUFFIXES:
            raise ErcgraphError(
                f"{shown}/{rel} is a pickled weights file, which can run code when loaded; the "
                "run's encoder is loaded from safetensors only: delete that file"
            )
    recorded = info.get("encoder_files")
    if isinstance(recorded, dict):
        found = encoder_files(folder)
        extra = sorted(set(found) - set(recorded))
        gone = sorted(set(recorded) - set(found))
        if extra or gone:
            raise ErcgraphError(
                f"{shown!r} does not hold the files features.json recorded (encoder_files): "
                f"{'unrecorded ' + str(extra) if extra else ''}"
                f"{'; ' if extra and gone else ''}{'missing ' + str(gone) if gone else ''}"
            )
        for name, digest in recorded.items():
            if found[name] != digest:
                raise ErcgraphError(
                    f"{shown}/{name} has content hash {found[name]}, but features.json recorded "
                    f"{digest}; the run's encoder was changed: restore it or train again"
                )
    elif info.get("encoder_sha256"):
        now = encoder_fingerprint(str(folder))
        if now != info["encoder_sha256"]:
            raise ErcgraphError(
                f"{shown!r} has content hash {now}, but features.json recorded "
                f"{info['encoder_sha256']} (encoder_sha256); the run's encoder was changed: "
                "restore it or train again"
            )
    else:
        raise ErcgraphError(
            f"{str(run_dir / FEATURES)!r} records no content hash of the run's encoder "
            "(encoder_files or encoder_sha256); it cannot be checked, so it is not used"
        )
    return folder


def feature_config(cfg: Config, run_dir: Path) -> Config:
    """The run's feature settings for new data: a fine-tuned encoder is the run's own copy
    (``encoder/``, checked by :func:`check_encoder`), reused as is and never re-trained."""
    import dataclasses

    text = cfg.features.text
    if not text.finetune.enabled or "text" not in cfg.features.modalities:
        return cfg
    info = read_features_json(run_dir).get("text") or {}
    if not isinstance(info, dict):
        raise ErcgraphError(f"{str(run_dir / FEATURES)!r}: 'text' must be a JSON object")
    path = check_encoder(run_dir, info)
    ft = text.finetune
    text = dataclasses.replace(
        text,
        encoder=str(path),
        context_turns=ft.context_turns,
        future_turns=ft.future_turns,
        pool=ft.pool,
        max_length=ft.max_length,
        finetune=dataclasses.replace(ft, enabled=False),
    )
    return dataclasses.replace(cfg, features=dataclasses.replace(cfg.features, text=text))


def load_weights(model: Any, path: Path) -> None:
    """Load a ``best.safetensors`` into ``model`` with an error naming the file when it is
    truncated, corrupt, or from another model, and naming the tensor when its dtype is not the
    model's (an int64 copy would be truncated silently, a bf16 one loses precision) or it holds
    a NaN, an infinite value, or one beyond
    :data:`~ercgraph.data.normalise.MAX_MAGNITUDE` (no trained weight is that large)."""
    import torch
    from safetensors.torch import load_file

    from ercgraph.data.normalise import MAX_MAGNITUDE

    try:
        state = load_file(path)
    except Exception as exc:
        raise ErcgraphError(f"checkpoint {str(path)!r} is corrupt or truncated: {exc}") from exc
    expected = model.state_dict()
    for key, value in state.items():
        want = expected.get(key)
        if want is not None and value.dtype != want.dtype:
            raise ErcgraphError(
                f"checkpoint {str(path)!r}: tensor {key!r} is {str(value.dtype).split('.')[-1]}, "
                f"the model's parameter is {str(want.dtype).split('.')[-1]}"
            )
        if not value.is_floating_point():
            continue
        if not bool(torch.isfinite(value).all()):
            raise ErcgraphError(
                f"checkpoint {str(path)!r}: tensor {key!r} holds NaN or infinite values"
            )
        if value.numel() and float(value.abs().max()) > MAX_MAGNITUDE:
            raise ErcgraphError(
                f"checkpoint {str(path)!r}: tensor {key!r} holds values beyond "
                f"±{MAX_MAGNITUDE:.3g} (no trained weight is that large)"
            )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ErcgraphError(f"checkpoint {str(path)!r} does not fit this model: {first}") from exc


#: the heads whose outputs evaluate scores and predict writes as probabilities or values (other
#: heads mark what they did not predict with NaN on purpose)
REPORTED_HEADS = ("emotion", "sentiment", "regression")


def check_outputs(arrays: dict[str, dict[str, Any]], ckpt: Path, normaliser: Path | None) -> None:
    """Refuse non-finite outputs of one checkpoint (``evaluate_batches`` arrays): values that
    pass every check on their own (a tiny std, large weights) can still overflow together,
    and a NaN probability would become an empty CSV cell and an arbitrary class.

    Raises:
        ErcgraphError: naming how many rows, the checkpoint and the normaliser.
    """
    import numpy as np

    bad = None
    for name in REPORTED_HEADS:
        pred = (arrays.get(name) or {}).get("pred")
        if pred is None or not np.issubdtype(pred.dtype, np.floating) or not len(pred):
            continue
        rows = ~np.isfinite(pred.reshape(len(pred), -1)).all(axis=1)
        bad = rows if bad is None else bad | rows
    if bad is not None and bad.any():
        norm = f"normaliser {str(normaliser)!r}" if normaliser else "no normaliser"
        raise ErcgraphError(
            f"the model's outputs are not finite for {int(bad.sum())} rows: its weights or "
            f"normaliser hold extreme values (checkpoint {str(ckpt)!r}, {norm})"
        )


def normaliser_path(run_dir: Path, meta: dict[str, Any]) -> Path | None:
    """The run's normaliser file (None when it has none), inside the run."""
    if not meta.get("normaliser"):
        return None
    return run_file(run_dir, meta["normaliser"], 'model.json "normaliser"')


def seed_offsets(run_dir: Path, cfg: Config, seed: int, num_classes: int) -> list[float] | None:
    """The decision offsets of one seed (``seed_<s>/decision.json``), for a run with an emotion
    head: required with ``decision.rule: offsets``, refused with ``argmax`` (the run never
    wrote one, so it is not the run's). None means plain argmax."""
    from ercgraph import decision

    path = run_file(run_dir, f"seed_{seed}/{decision.FILE}", f"seed {seed}'s decision rule")
    if cfg.decision.rule != "offsets":
        if path.exists():
            raise ErcgraphError(
                f"{str(path)!r} exists, but the run's config has decision.rule: "
                f"{cfg.decision.rule}, which saves none; remove the file or restore the config"
            )
        return None
    if not path.is_file():
        raise ErcgraphError(
            f"{str(path)!r} is missing: the run was trained with decision.rule: offsets, and "
            "without its dev-fitted offsets its predictions would be plain argmax; restore it "
            "or train again"
        )
    return decision.load(run_dir / f"seed_{seed}", num_classes, required=True)


def run_device(saved: str, asked: str | None) -> Any:
    """Where to score a run: ``asked`` (``--device``; refused when not available here), else
    the run's ``train.device`` when it is available here, else the CPU (with a warning)."""
    import logging

    import torch

    def available(name: str) -> bool:
        if name.startswith("cuda"):
            return torch.cuda.is_available()
        if name == "mps":
            return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
        return name in ("cpu", "auto")

    def parse(name: str, what: str) -> str:
        name = str(name).strip()
        ok = name in ("auto", "cpu", "mps", "cuda") or (
            name.startswith("cuda:") and name[5:].isdigit()
        )
        if not ok:
            raise ErcgraphError(f"{what} must be auto, cpu, mps or cuda[:N], got {name!r}")
        return name

    if asked is not None:
        name = parse(asked, "--device")
        if not available(name):
            raise ErcgraphError(f"--device {name}: not available on this machine")
    else:
        name = parse(saved, "the run's train.device")
        if not available(name):
            logging.getLogger(__name__).warning(
                "the run was trained on %s, which this machine does not have; scoring on the "
                "CPU (choose with --device)",
                name,
            )
            name = "cpu"
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def check_writable(folder: Path, what: str) -> None:
    """Refuse, before any work, an output folder that cannot take a new file: one that is a
    file or lies under one, is read-only, or where a probe file cannot be created (``os.access``
    is not enough: network file systems and ACLs can say yes and refuse the write)."""
    import tempfile

    probe_dir = folder
    while not probe_dir.exists():
        if probe_dir.parent == probe_dir:
            break
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        if probe_dir == folder:
            raise ErcgraphError(f"{what} {str(folder)!r} is a file, not a folder")
        raise ErcgraphError(
            f"{what} {str(folder)!r} lies under {str(probe_dir)!r}, which is a file, not a folder"
        )
    shown = f"{what} {str(folder)!r}" + ("" if probe_dir == folder else f" ({str(probe_dir)!r})")
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise ErcgraphError(f"{shown} is read-only; choose a folder you can write to")
    try:
        fd, name = tempfile.mkstemp(dir=probe_dir, prefix=".ercgraph-probe.")
    except OSError as exc:
        raise ErcgraphError(f"{shown} cannot be written: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(name)
