"""Independent runs at once on one machine: a process pool whose workers inherit what they share.

:func:`fork_map` runs ``fn(shared, i)`` for ``i`` in ``range(n)`` in ``jobs`` worker processes
and returns the results in order. Workers are forked where the platform allows it, so ``shared``
(configs, prepared graphs) is inherited rather than copied; elsewhere they are spawned and
``shared`` is pickled once per worker. Each worker runs with ``threads`` torch threads. ``fn``
must be a module-level function. Used for seeds (``train.jobs``) and ablation variants.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

_SHARED: Any = None


def _init(shared: Any, threads: int) -> None:
    import torch

    global _SHARED
    _SHARED = shared
    torch.set_num_threads(threads)


def _call(fn: Callable[[Any, int], Any], i: int) -> Any:
    return fn(_SHARED, i)


def start_method() -> str:
    import multiprocessing as mp

    return "fork" if "fork" in mp.get_all_start_methods() else "spawn"


def fork_map(
    fn: Callable[[Any, int], Any], shared: Any, n: int, jobs: int, threads: int = 1
) -> list[Any]:
    """``[fn(shared, i) for i in range(n)]``, ``jobs`` at a time in worker processes."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(
        max_workers=max(1, min(jobs, n)),
        mp_context=mp.get_context(start_method()),
        initializer=_init,
        initargs=(shared, threads),
    ) as pool:
        return list(pool.map(functools.partial(_call, fn), range(n)))
