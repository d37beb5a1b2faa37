"""Small helpers shared by the bench scripts: timing, memory, results JSON, a linear probe and
markdown tables.

A bench script compares against a baseline measured in the same run and writes the whole table
of that one invocation with :func:`write_result` (the only writer of ``bench/results/*.json``:
it adds the git revision, package versions, thread counts, start time and command line). The
README tables are generated from those files by ``bench/readme_tables.py``. Import this module
as ``from common import ...`` when running ``python bench/<script>.py`` (the script's folder is
on ``sys.path``) or as ``bench.common`` from the repository root.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"


def data_root() -> Path:
    """The shared data folder: ``$ERCGRAPH_DATA``, else ``<repo>/../shared/data``.

    Raises:
        SystemExit: with a clear message when the folder does not exist.
    """
    value = os.environ.get("ERCGRAPH_DATA")
    root = Path(value).expanduser() if value else REPO.parent / "shared" / "data"
    if not root.is_absolute() and not root.is_dir():
        root = REPO / root
    if not root.is_dir():
        raise SystemExit(f"data folder {str(root)!r} not found: set ERCGRAPH_DATA")
    return root.resolve()


def best_of(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> tuple[float, Any]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times; return (best seconds, result).

    The minimum is the least noisy estimate of the cost on a shared machine.
    """
    result = None
    for _ in range(warmup):
        result = fn()
    best = math.inf
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def current_rss_mb() -> float:
    """Current resident memory of this process, in MiB (psutil)."""
    import psutil

    return psutil.Process().memory_info().rss / (1024 * 1024)


#: Distributions whose versions every result records (``None`` when not installed).
PACKAGES = (
    "torch",
    "torch-geometric",
    "transformers",
    "numpy",
    "pandas",
    "scikit-learn",
    "ercgraph",
)
#: Keys :func:`write_result` owns; a payload may not set them.
RESERVED_KEYS = frozenset(
    {
        "bench",
        "started",
        "finished",
        "command",
        "git_revision",
        "dirty",
        "dirty_paths",
        "packages",
        "threads",
        "python",
        "platform",
    }
)


def _process_start() -> str:
    """ISO time this process started (psutil), else the time this module was imported."""
    try:
        import psutil

        stamp = psutil.Process().create_time()
    except Exception:  # psutil missing or the platform hides the start time
        stamp = time.time()
    return datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="seconds")


#: When this bench process started; recorded once, at import, as ``started`` in every result.
STARTED = _process_start()


def started() -> str:
    """The ISO start time of this process, as written to ``started`` by :func:`write_result`."""
    return STARTED


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """``git_revision`` (full sha of HEAD), ``dirty`` and ``dirty_paths`` (``git status
    --porcelain``); ``None`` values outside a git checkout."""
    sha = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain")
    paths = None if status is None else [line[3:] for line in status.splitlines() if line]
    return {
        "git_revision": sha.strip() if sha else None,
        "dirty": None if paths is None else bool(paths),
        "dirty_paths": paths,
    }


def package_versions() -> dict[str, str | None]:
    """Installed versions of :data:`PACKAGES` (importlib.metadata; ``None`` when missing)."""
    out: dict[str, str | None] = {}
    for dist in PACKAGES:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def thread_counts() -> dict[str, int | None]:
    """torch's intra-op threads (``None`` when the script did not import torch) and CPUs."""
    torch = sys.modules.get("torch")
    return {
        "torch": torch.get_num_threads() if torch is not None else None,
        "cpu_count": os.cpu_count(),
    }


def run_metadata() -> dict[str, Any]:
    """What :func:`write_result` records about the run besides its payload."""
    return {
        "started": STARTED,
        "finished": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": [sys.executable, *sys.argv],
        **git_state(),
        "packages": package_versions(),
        "threads": thread_counts(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_result(name: str, payload: Mapping[str, Any], results_dir: Path | None = None) -> Path:
    """Write one run's whole result to ``<results_dir>/<name>.json`` (atomically).

    The only way bench scripts write results. The file holds the payload of this invocation and
    nothing older (a re-run replaces it, rows are never merged across runs), plus
    :func:`run_metadata`: ``started`` (process start, ISO), ``finished``, ``command``
    (``sys.executable`` + ``sys.argv``), ``git_revision`` / ``dirty`` / ``dirty_paths``,
    ``packages``, ``threads``, ``python`` and ``platform``.

    Args:
        name: The file stem, e.g. ``meld_text`` (a subset of variants gets its own name).
        payload: The measured data (JSON-serialisable; other objects are written with ``str``).
        results_dir: Default ``bench/results``.

    Returns:
        The path written.

    Raises:
        ValueError: if the payload sets a key the metadata owns (:data:`RESERVED_KEYS`).
    """
    clash = sorted(RESERVED_KEYS & set(payload))
    if clash:
        raise ValueError(f"write_result({name!r}): payload may not set {clash}")
    out = {"bench": name, **run_metadata(), **payload}
    path = (results_dir or RESULTS_DIR) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(out, indent=2, default=str) + "\n").encode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def linear_probe(
    train_x: Any,
    train_y: Any,
    dev_x: Any,
    dev_y: Any,
    test_x: Any,
    test_y: Any,
    Cs: Sequence[float] = (0.01, 0.1, 1, 10),
    label_names: Sequence[str] | None = None,
    max_iter: int = 5000,
) -> dict[str, Any]:
    """A linear probe on fixed features: the context-free baseline of a table row.

    Features are standardised with a scaler fitted on train only; a multinomial logistic
    regression (no class weights) is fitted on train for each ``C``; the ``C`` with the best dev
    weighted F1 is kept (the first on ties) and test is scored once, with that model.

    Args:
        train_x, dev_x, test_x: ``[N, F]`` features (numpy arrays or CPU tensors).
        train_y, dev_y, test_y: ``[N]`` integer labels.
        Cs: Inverse regularisation strengths to try.
        label_names: Name of class ``k`` for the per-class keys (default: the label itself).
        max_iter: lbfgs iterations; ``converged`` in the result says whether it sufficed.

    Returns:
        ``accuracy``, ``weighted_f1``, ``macro_f1``, ``unweighted_accuracy`` (the macro recall
        over the classes test holds; test, percent), ``per_class_f1``
        (``{label: test F1 percent}`` over the labels seen in train, dev or test), ``C`` (the
        chosen one), ``dev_weighted_f1`` (``{C: dev weighted F1}``) and ``converged``.
    """
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, recall_score
    from sklearn.preprocessing import StandardScaler

    def arr(a: Any) -> np.ndarray:
        return np.asarray(a.detach().cpu() if hasattr(a, "detach") else a)

    train_x, dev_x, test_x = (arr(a).astype(np.float64) for a in (train_x, dev_x, test_x))
    train_y, dev_y, test_y = (arr(a).ravel() for a in (train_y, dev_y, test_y))
    if not Cs:
        raise ValueError("linear_probe: Cs is empty")
    scaler = StandardScaler().fit(train_x)
    train_z, dev_z, test_z = (scaler.transform(a) for a in (train_x, dev_x, test_x))
    dev_scores: dict[float, float] = {}
    best = None
    for c in Cs:
        clf = LogisticRegression(C=c, max_iter=max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(train_z, train_y)
        score = 100 * f1_score(dev_y, clf.predict(dev_z), average="weighted", zero_division=0)
        dev_scores[c] = float(score)
        if best is None or score > dev_scores[best[0]]:
            best = (c, clf)
    chosen, clf = best
    converged = bool(np.all(clf.n_iter_ < max_iter))
    pred = clf.predict(test_z)
    labels = np.unique(np.concatenate([train_y, dev_y, test_y]))
    per_class = f1_score(test_y, pred, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": float(100 * accuracy_score(test_y, pred)),
        "weighted_f1": float(100 * f1_score(test_y, pred, average="weighted", zero_division=0)),
        "macro_f1": float(100 * f1_score(test_y, pred, average="macro", zero_division=0)),
        "unweighted_accuracy": float(
            100 * recall_score(test_y, pred, labels=np.unique(test_y), average="macro")
        ),
        "per_class_f1": {
            (label_names[int(k)] if label_names is not None else str(k.item())): float(100 * f)
            for k, f in zip(labels, per_class)
        },
        "C": chosen,
        "dev_weighted_f1": dev_scores,
        "converged": converged,
    }


def _cell(value: Any, floatfmt: str) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return format(value, floatfmt)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def markdown_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Mapping[str, str] | Sequence[str] | None = None,
    floatfmt: str = ".4g",
) -> str:
    """Render rows as a GitHub markdown table.

    Args:
        rows: One mapping per row.
        columns: Keys to show, or a mapping key -> header (default: the first row's keys).
        floatfmt: ``format`` spec for floats (ints get thousands separators).
    """
    if columns is None:
        columns = list(rows[0]) if rows else []
    headers = dict(columns) if isinstance(columns, Mapping) else {c: c for c in columns}
    lines = [
        "| " + " | ".join(headers.values()) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(k), floatfmt) for k in headers) + " |")
    return "\n".join(lines)


def print_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Mapping[str, str] | Sequence[str] | None = None,
    floatfmt: str = ".4g",
) -> None:
    """Print :func:`markdown_table` (with a blank line before it)."""
    print("\n" + markdown_table(rows, columns, floatfmt), flush=True)
