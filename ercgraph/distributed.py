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
  started with different configs are refused before any work;
* the data is compared too, since each rank may read its own ``ERCGRAPH_DATA``, which the config
  does not record (:meth:`Session.check_same_data`): the corpus (:func:`corpus_fingerprint`)
  right after it is read, before any feature is extracted, and the features
  (:func:`features_fingerprint`) before the model is built; ranks that disagree are refused
  with one line naming what differs, before anything is written to the run directory.

DistributedDataParallel is built by :func:`ddp`: it searches each step for parameters the step
left unused (a head without targets in the batch, a modality or relation absent from it), and
keeps libtorch's notice about that search off the console (see there).

The collective timeout is ``ERCGRAPH_DIST_TIMEOUT_S`` seconds (default 1800): rank 0 may extract
features while the other ranks wait, so a first run on a large corpus may need more.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
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

    def check_same_data(self, parts: dict[str, Any], what: str) -> None:
        """Refuse to go on unless every rank has the same ``parts`` (a fingerprint of its data,
        see :func:`corpus_fingerprint`), naming the first part that differs and its value on
        each rank; float arrays are compared with a tolerance (a rank may compute them in
        another order). Every rank raises the same error."""
        if not self.active:
            return
        everyone = self.gather(parts)
        keys = list(dict.fromkeys(k for p in everyone for k in p))
        for key in keys:
            groups: list[tuple[Any, list[int]]] = []  # (value, ranks), by first rank
            for rank, p in enumerate(everyone):
                value = p.get(key, _ABSENT)
                for seen, ranks in groups:
                    if _same(seen, value):
                        ranks.append(rank)
                        break
                else:
                    groups.append((value, [rank]))
            if len(groups) > 1:
                shown = " but ".join(
                    f"{_show(value)} on rank{'s' if len(ranks) > 1 else ''} "
                    f"{', '.join(map(str, ranks))}"
                    for value, ranks in groups
                )
                raise ErcgraphError(
                    f"the {self.world} ranks read different {what}: {key} {shown}; every rank "
                    "must read the same data: start each with the same ERCGRAPH_DATA (or "
                    "--data-root) holding the same files"
                )

    def check_world(self, units: int, what: str) -> None:
        """Refuse a world larger than the ``units`` of work (dialogues, media files)."""
        if self.world > units:
            raise ErcgraphError(
                f"{self.world} processes but only {units} {what}: every rank needs at least one; "
                f"start at most {units} processes (torchrun --nproc-per-node)"
            )


_ABSENT = "(absent)"


def _same(a: Any, b: Any) -> bool:
    import numpy as np

    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)) or a.shape != b.shape:
            return False
        scale = max(1.0, float(np.abs(a).max(initial=0.0)))
        return bool(np.allclose(a, b, rtol=1e-4, atol=1e-5 * scale, equal_nan=True))
    return bool(a == b)


def _show(value: Any) -> str:
    import numpy as np

    if isinstance(value, np.ndarray):
        return f"with checksum {float(np.abs(value).sum()):.6g}"
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "…"


def corpus_fingerprint(corpus: Any) -> dict[str, Any]:
    """What identifies a prepared :class:`~ercgraph.data.corpus.Corpus` across ranks: its
    label vocabulary, its utterances per split and a hash of the columns training reads
    (split, dialogue ids, turns, speakers, labels, text and the other head targets present).
    Paths (media columns) are left out: on several machines the data may be mounted in
    different places."""
    df = corpus.df
    columns = [
        c
        for c in (
            "split",
            "dialogue_id",
            "turn",
            "speaker",
            "label",
            "text",
            "sentiment",
            "valence",
            "arousal",
            "dominance",
        )
        if c in df.columns
    ]
    counts = df.groupby("split", sort=True).size()
    return {
        "labels": list(corpus.labels),
        "utterances per split": {str(k): int(v) for k, v in counts.items()},
        f"content hash ({', '.join(columns)})": corpus.fingerprint(columns),
    }


#: Rows of each modality that :func:`features_fingerprint` reads (evenly spaced).
SAMPLE_ROWS = 64


def features_fingerprint(store: Any) -> dict[str, Any]:
    """What identifies a :class:`~ercgraph.data.features.FeatureStore` across ranks, cheaply:
    per modality its shape, a hash of its presence mask, and the row sums, row sums of squares
    and column means of :data:`SAMPLE_ROWS` evenly spaced rows (compared with a tolerance:
    a rank that normalised its features itself may differ in the last bits)."""
    import numpy as np
    import torch

    out: dict[str, Any] = {}
    for m in sorted(store.features):
        x = store.features[m]
        n = int(x.shape[0])
        rows = torch.linspace(0, max(n - 1, 0), steps=min(n, SAMPLE_ROWS)).round().long()
        sample = x.index_select(0, rows).double().numpy()  # reads only these rows of a mapping
        present = store.present[m].to(torch.uint8).numpy().tobytes()
        out[f"modality {m!r} shape"] = [n, int(x.shape[1])]
        out[f"modality {m!r} presence mask hash"] = hashlib.sha256(present).hexdigest()[:16]
        out[f"modality {m!r} sampled rows"] = np.concatenate(
            [sample.sum(1), (sample**2).sum(1), sample.mean(0)]
        )
    return out


def ddp(module: Any, device: Any) -> Any:
    """``module`` in :class:`~torch.nn.parallel.DistributedDataParallel`, searching each step
    for the parameters it left unused.

    The search is needed: a head with no targets in a batch, or a modality or relation absent
    from it, leaves parameters without a gradient, and DDP without the search then fails at the
    next step. On a step that leaves none unused, libtorch prints, once per process and on every
    rank, a notice that the search costs time. It prints it from C++ straight to the
    process's stderr (not through Python's ``warnings``), so the wrapped ``forward`` holds back
    that stream until the notice has gone by and passes on everything else written meanwhile.
    Training is unchanged.
    """
    from torch.nn.parallel import DistributedDataParallel

    class _DDP(DistributedDataParallel):
        def forward(self, *args: Any, **kwargs: Any) -> Any:
            if _NOTICE_SHOWN:
                return super().forward(*args, **kwargs)
            with _without_unused_notice():
                return super().forward(*args, **kwargs)

    return _DDP(
        module,
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=True,
    )


#: libtorch's notice (reducer.cpp) when a step of a DDP with find_unused_parameters=True used
#: every parameter
UNUSED_NOTICE = "find_unused_parameters=True was specified in DDP constructor"
_NOTICE_SHOWN = False  # libtorch prints it once per process: then nothing is held back


@contextmanager
def _without_unused_notice() -> Iterator[None]:
    """Hold back what this process writes to file descriptor 2 and pass it on afterwards,
    without the lines of :data:`UNUSED_NOTICE`."""
    global _NOTICE_SHOWN
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode(errors="replace")
            kept = [line for line in text.splitlines(keepends=True) if UNUSED_NOTICE not in line]
            if len(kept) < len(text.splitlines()):
                _NOTICE_SHOWN = True
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


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
