"""Multi-process runs under ``torchrun``: the process group, and the few collective steps a run
needs (same config everywhere, rank 0 does the writing, errors reach every rank).

``torchrun --nproc-per-node N -m ercgraph train|extract ...`` starts N copies of the command with
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` and a rendezvous in the environment (on one machine or
several; see torchrun's ``--nnodes`` and ``--rdzv-endpoint``). :func:`session` joins that group
(gloo on CPU, nccl on CUDA) and leaves it; without those variables it is a one-process session
and nothing is initialised, so a plain ``ercgraph train`` never touches ``torch.distributed``.

Rules every multi-process code path here follows:

* every rank runs the same checks on the same inputs, so a bad input fails on every rank at once
  (nobody waits forever in a collective for a rank that already raised);
* what only rank 0 does (locking and writing the run directory, merging shards) goes through
  :meth:`Session.on_main`, which broadcasts rank 0's error to the others;
* the config is hashed at start and the hashes compared (:meth:`Session.check_same`): ranks
  started with different configs are refused before any work.

The collective timeout is ``ERCGRAPH_DIST_TIMEOUT_S`` seconds (default 1800): rank 0 may extract
features while the other ranks wait, so a first run on a large corpus may need more.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from ercgraph.errors import ErcgraphError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Session:
    """This process's place in a run: ``rank`` of ``world`` processes (``world == 1``: alone)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (picklable), in rank order, on every rank."""
        if not self.active:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        if not self.active:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def on_main(self, fn: Callable[[], T]) -> T | None:
        """Run ``fn`` on rank 0 only; its ErcgraphError is raised on every rank (the others
        return None)."""
        error, result = None, None
        if self.is_main:
            try:
                result = fn()
            except ErcgraphError as exc:
                error = str(exc)
        error = self.broadcast(error)
        if error is not None:
            if self.is_main:
                raise ErcgraphError(error)
            raise ErcgraphError(f"rank 0 failed: {error}")
        return result

    def check_same(self, value: Any, what: str) -> None:
        """Refuse to go on unless every rank has the same ``value`` (hashed as JSON)."""
        if not self.active:
            return
        digest = hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
        hashes = self.gather(digest[:16])
        if len(set(hashes)) > 1:
            groups: dict[str, list[int]] = {}
            for r, h in enumerate(hashes):
                groups.setdefault(h, []).append(r)
            shown = "; ".join(f"ranks {ranks}: {h}" for h, ranks in groups.items())
            raise ErcgraphError(
                f"the {self.world} ranks were started with different {what} ({shown}); start "
                "every rank with the same command, config and data"
            )

    def check_world(self, units: int, what: str) -> None:
        """Refuse a world larger than the ``units`` of work (dialogues, media files)."""
        if self.world > units:
            raise ErcgraphError(
                f"{self.world} processes but only {units} {what}: every rank needs at least one; "
                f"start at most {units} processes (torchrun --nproc-per-node)"
            )


def world_from_env() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 when absent)."""
    raw = os.environ.get("WORLD_SIZE", "1")
    try:
        world = int(raw)
    except ValueError:
        raise ErcgraphError(f"WORLD_SIZE must be an integer, got {raw!r}") from None
    if world < 1:
        raise ErcgraphError(f"WORLD_SIZE must be >= 1, got {world}")
    return world


@contextmanager
def session(device: str = "cpu") -> Iterator[Session]:
    """Join the torchrun process group for the duration of a command (see the module docstring).

    Args:
        device: ``cpu`` or ``cuda...`` (``auto`` picks CUDA when available): the backend is nccl
            for CUDA, gloo otherwise; each rank uses ``cuda:LOCAL_RANK``.
    """
    world = world_from_env()
    if world == 1:
        yield Session()
        return
    import torch
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(local_rank)
    timeout = timedelta(seconds=float(os.environ.get("ERCGRAPH_DIST_TIMEOUT_S", "1800")))
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(backend, timeout=timeout)
    if rank != 0:  # one voice: the other ranks log warnings and errors only
        logging.getLogger("ercgraph").setLevel(logging.WARNING)
    log.info("rank %d of %d (%s)", rank, world, backend)
    sess = Session(rank, world, local_rank, backend)
    try:
        yield sess
        if owned:
            sess.barrier()  # leave together: no rank tears down while another still talks
    finally:
        if owned and dist.is_initialized():
            dist.destroy_process_group()
