"""Tracking: a run's curves written where a dashboard reads them, as it trains.

``train.log_to`` names the trackers of a run (none by default). Each is a
:class:`ercgraph.train.Callback` that :func:`ercgraph.train.run` builds with
:func:`from_config` and calls first, so a later callback that ends the run in ``epoch_end``
(a pruned sweep trial) finds that epoch already logged.

``tensorboard`` (:class:`TensorBoardTracker`) writes TensorBoard event files into the run
directory::

    tensorboard/seed_<s>/   per epoch (step = epoch): every number of the seed's history row,
                            as result.json holds it: loss/train, loss/dev, loss/train_<term>,
                            loss/dev_<term>, dev/<metric>, lr, epoch/epoch_s, epoch/steps
    tensorboard/run/        the config as text (config.yaml); at run end the linear probe
                            (probe/dev_<select>, probe/test_<select>, probe/delta_dev_<select>,
                            probe/delta_test_<select>, step 0), or why it is missing

so ``tensorboard --logdir <run>`` compares the seeds of a run, and ``--logdir`` over a folder of
runs (a sweep) compares runs. Every epoch is flushed as it ends, so a live TensorBoard follows
the run. Event files are a view of what the run directory already records: a resumed seed
rewrites its folder from the history its checkpoint restored (each epoch once, whatever an
interruption left behind; a seed that had finished is rewritten from its ``result.json``), and
the ``run/`` folder is rewritten whole at run start and end.
Under ``train.jobs > 1`` each seed's worker opens and closes its own folder's writer.

Why no MLflow: the tracker is a small class per backend, but ``mlflow`` itself is not small.
Its 3.x wheels (``mlflow``, ``mlflow-skinny``, ``mlflow-tracing``) are 19 MB, and installing it
into this project's environment would add 39 packages (Flask, FastAPI, uvicorn, gunicorn,
GitPython, docker, databricks-sdk, OpenTelemetry, cryptography, among 89 in its full tree). A run
would then log into an ``mlruns`` file store or a tracking server outside the run directory,
which ercgraph's self-contained run folders avoid. TensorBoard's event files need only the
``tensorboard`` package (PyTorch's own ``SummaryWriter`` writes them) and live in the run.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from ercgraph.config import LOG_TO, Config
from ercgraph.rundir import CONFIG
from ercgraph.train import Callback

log = logging.getLogger(__name__)

__all__ = ["TRACKERS", "TensorBoardTracker", "from_config", "tag_for"]

#: the run directory's folder of event files
FOLDER = "tensorboard"
#: the ``run/`` folder beside the seeds': config text and the probe
RUN_FOLDER = "run"
_EVENTS = "events.out.tfevents."


def tag_for(key: str) -> str:
    """The TensorBoard tag of a history-row key, grouped by what it is: ``loss/...``,
    ``dev/...``, ``lr``, and ``epoch/...`` for the rest (``epoch_s``, ``steps``)."""
    if key in ("train_loss", "dev_loss"):
        return f"loss/{key.removesuffix('_loss')}"
    for split in ("train", "dev"):
        if key.startswith(f"{split}_loss_"):
            return f"loss/{split}_{key.removeprefix(f'{split}_loss_')}"
    if key.startswith("dev_"):
        return f"dev/{key.removeprefix('dev_')}"
    if key == "lr":
        return "lr"
    return f"epoch/{key}"


def _yaml_block(text: str) -> str:
    """Text as a fenced YAML block: TensorBoard renders text summaries as Markdown, which would
    fold a YAML file's lines and indentation."""
    return f"```yaml\n{text}{'' if text.endswith(chr(10)) else chr(10)}```"


class TensorBoardTracker(Callback):
    """Writes a run's curves as TensorBoard event files under ``<out>/tensorboard/`` (see the
    module docstring for the layout and tags).

    Args:
        out: The run directory.
    """

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self._writers: dict[int, Any] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(out={str(self.out)!r})"

    # -- writers --------------------------------------------------------------------------
    def _fresh_writer(self, folder: Path) -> tuple[Any, list[Path]]:
        """A writer of a new event file in ``folder``, and the event files already there (which
        the caller deletes once the new file holds what they held, so a watcher never sees
        the folder empty)."""
        from torch.utils.tensorboard import SummaryWriter

        old = sorted(folder.glob(f"{_EVENTS}*")) if folder.is_dir() else []
        return SummaryWriter(log_dir=str(folder)), old

    @staticmethod
    def _drop(files: list[Path]) -> None:
        for f in files:
            f.unlink(missing_ok=True)

    def _write_row(self, writer: Any, row: dict[str, Any]) -> None:
        step = int(row["epoch"])
        for key, value in row.items():
            if key == "epoch" or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            writer.add_scalar(tag_for(key), float(value), step)

    def _write_run(self, metrics: dict[str, Any] | None) -> None:
        """The ``run/`` folder, whole: the config text, and the probe once ``metrics`` exist."""
        writer, old = self._fresh_writer(self.out / FOLDER / RUN_FOLDER)
        try:
            config = self.out / CONFIG
            if config.is_file():
                writer.add_text("config", _yaml_block(config.read_text(encoding="utf-8")), 0)
            probe = (metrics or {}).get("baselines", {}).get("probe")
            if probe is not None:
                self._write_probe(writer, probe)
            writer.flush()
        finally:
            writer.close()
        self._drop(old)

    @staticmethod
    def _write_probe(writer: Any, probe: dict[str, Any]) -> None:
        if "missing" in probe:
            writer.add_text("probe", f"no linear probe: {probe['missing']}", 0)
            return
        select = probe.get("select_metric")
        for split in ("dev", "test"):
            value = (probe.get(split) or {}).get(select)
            if isinstance(value, int | float) and not isinstance(value, bool):
                writer.add_scalar(f"probe/{split}_{select}", float(value), 0)
            delta = (probe.get("delta") or {}).get(split, {}).get(select)
            if isinstance(delta, int | float) and math.isfinite(delta):
                writer.add_scalar(f"probe/delta_{split}_{select}", float(delta), 0)

    # -- the run's events -------------------------------------------------------------------
    def run_start(self, cfg: Config, out: Path) -> None:
        self._write_run(None)
        # a resume: seeds that trained to the end already (never started again) get their
        # folder from result.json, so a resume that switches tracking on shows every seed
        from ercgraph.train import read_result

        for seed in cfg.train.seeds:
            done = self.out / f"seed_{seed}" / "result.json"
            if done.is_file():
                self.seed_start(seed, done.parent, read_result(done)["history"])
                self._close_seed(seed)

    def seed_start(self, seed: int, seed_dir: Path, history: list[dict[str, float]]) -> None:
        self._close_seed(seed)
        writer, old = self._fresh_writer(self.out / FOLDER / seed_dir.name)
        # a resume: the epochs its checkpoint restored, exactly once (an interruption between
        # the checkpoint and this tracker's write may have left one out; a resume before this
        # change, or with tracking newly on, left them all out)
        for row in history:
            self._write_row(writer, row)
        writer.flush()
        self._drop(old)
        self._writers[seed] = writer

    def epoch_end(self, seed: int, row: dict[str, float]) -> None:
        writer = self._writers.get(seed)
        if writer is None:
            return
        self._write_row(writer, row)
        writer.flush()  # a live TensorBoard sees each epoch as it ends

    def seed_end(self, seed: int, result: dict[str, Any]) -> None:
        self._close_seed(seed)

    def run_end(self, metrics: dict[str, Any]) -> None:
        self._write_run(metrics)

    def _close_seed(self, seed: int) -> None:
        writer = self._writers.pop(seed, None)
        if writer is not None:
            writer.close()

    def close(self) -> None:
        """Close every writer still open (a seed that ended by an exception)."""
        for seed in list(self._writers):
            self._close_seed(seed)


#: ``train.log_to`` name → tracker class (every name of :data:`ercgraph.config.LOG_TO`)
TRACKERS: dict[str, type[TensorBoardTracker]] = {"tensorboard": TensorBoardTracker}


def from_config(cfg: Config, out: Path) -> list[TensorBoardTracker]:
    """The trackers ``cfg.train.log_to`` names, for the run directory ``out`` (each once)."""
    unknown = [n for n in cfg.train.log_to if n not in TRACKERS or n not in LOG_TO]
    if unknown:  # the config check refuses these first; a caller that skipped it learns here
        from ercgraph.errors import ErcgraphError

        raise ErcgraphError(
            f"config: train.log_to must be a list of {list(LOG_TO)} (or [] for none), "
            f"got {cfg.train.log_to!r}"
        )
    return [TRACKERS[name](out) for name in dict.fromkeys(cfg.train.log_to)]
