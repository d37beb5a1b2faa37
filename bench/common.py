"""Small helpers shared by the bench scripts: timing, memory, results JSON and markdown tables.

A bench script compares against a baseline measured in the same run, writes
``bench/results/<name>.json`` (atomically, with the environment it ran in) and prints a markdown
table. Import it as ``from common import ...`` when running ``python bench/<script>.py`` (the
script's folder is on ``sys.path``) or as ``bench.common`` from the repository root.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
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


def environment() -> dict[str, Any]:
    """Versions, machine and git revision, stored with every result."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }
    for mod in ("torch", "torch_geometric", "numpy", "pandas"):
        module = sys.modules.get(mod)
        if module is not None:
            env[mod] = getattr(module, "__version__", "?")
    if "torch" in sys.modules:
        env["torch_threads"] = sys.modules["torch"].get_num_threads()
    try:
        env["git_rev"] = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        env["git_rev"] = None
    return env


def write_result(name: str, payload: Mapping[str, Any], results_dir: Path | None = None) -> Path:
    """Write ``payload`` to ``<results_dir>/<name>.json`` atomically, adding date and environment.

    Returns:
        The path written.
    """
    from ercgraph.data.features import atomic_write_bytes

    out = {"bench": name, "date": time.strftime("%Y-%m-%d %H:%M:%S"), **payload}
    out.setdefault("environment", environment())
    path = (results_dir or RESULTS_DIR) / f"{name}.json"
    atomic_write_bytes(path, (json.dumps(out, indent=2, default=str) + "\n").encode())
    return path


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
