"""Hyper-parameter sweeps on dev (``ercgraph sweep``): an Optuna study over config keys.

A **space file** names config keys with the dotted names ``--set`` takes, and their ranges or
choices::

    sampler: tpe                 # tpe (default), random, or grid
    pruner: {n_startup_trials: 5, n_warmup_steps: 1}   # optional: the median pruner's options
    params:
      train.lr: {low: 1.0e-4, high: 3.0e-3, log: true}
      model.hidden: {low: 64, high: 256, step: 64}      # an integer key: an integer range
      model.dropout: {low: 0.1, high: 0.6}
      model.fusion: {choices: [mean, concat, gated]}
      model.options.heads: {choices: [2, 4], when: {model.fusion: gated}}

A range is ``low``/``high`` (``low < high``) with optional ``log: true`` (then ``low > 0``) or
``step``; it is an integer range when the config key is an integer (``model.hidden``), or with
``type: int`` (a free-form key whose ``low`` and ``high`` are both written as integers is an
integer range too: write ``0.0`` for a float one). ``choices`` may hold any YAML values
(mappings and lists included: ``graph.builders``). A **section** (``model``,
``features.text.finetune``) takes choices only, each a mapping of its keys merged into the
section as ``--set model={name: mlp, fusion: concat}`` merges: settings that go together (a
model preset, a fine-tuning recipe) as one choice. ``when`` makes a key conditional: it is
sampled only in trials where every named earlier key takes the given value (or one of a list of
values). A grid sweep needs ``choices`` or integer ranges everywhere and no ``when``.

Keys are checked against the config before any trial runs (an unknown key is refused, listing
the near matches). The keys of a free-form mapping (``model.options``, ``sampler.options``,
``data.options``...) are not known to the config: any key under one is accepted, and the
component that reads it judges it when the space's corner configs (every key at its low and
high end and at each choice) are built and checked, still before the first trial. Keys that
define what is compared are the sweep's and refused: ``train.select_metric``, ``train.jobs``,
``metrics.*``, ``protocol.*``, and where things live (``data_root``, ``cache_dir``, ``out``,
``imports``).

Each **trial** is an ordinary run directory, ``DIR/trials/trial_<k>/``, trained by
:func:`ercgraph.train.run` (a cross-validation config, ``protocol.name: group_kfold``: by
:func:`ercgraph.protocol.run_cv`, every fold, as ``ercgraph train`` runs it) with the config
``ercgraph train -c DIR/base.yaml --set KEY=VALUE...`` would give (``base.yaml`` is the sweep's
resolved config; ``train.jobs`` is 1 so the pruning callback lives in the process training the seed)
and ``score_test=False``: the test split is never read during a sweep. The objective is the mean
over seeds of the dev ``train.select_metric`` (maximised, or minimised for an error such as MAE);
for a cross-validation, the mean over folds of each fold's mean over seeds (the dev figure
``ercgraph train`` reports). The median pruner judges the **first seed's** per-epoch dev curve (of
the first fold in a cross-validation); a pruned trial's later seeds (and folds) are not trained.

The study lives in ``DIR/study.db`` (SQLite) unless ``storage`` names another database URL; its
name is ``DIR``'s name unless given. Several workers (``jobs`` processes here, or more
``ercgraph sweep`` commands on this or other machines with the same ``--storage``) share one
study; a trial number is unique in a study, so no trial runs twice. Until ``trials`` trials have
completed or been pruned, each worker starts the next one; on one machine the count and the
start are taken under a file lock, so the total is exact (workers on several machines may run
one trial each beyond it). A rerun of the same command resumes: a trial interrupted mid-run
(Ctrl-C, a killed process, a worker whose heartbeat stopped) is marked failed and run again
with the same parameters in a fresh trial directory; it never counts. A trial that raises is
failed and not retried; ``max_failures`` failures in a row (in one invocation) stop the sweep,
showing the first error.

At the end the best trial (by dev) is scored on test once (:func:`ercgraph.evaluate.evaluate_run`,
into its ``sweep_test.json``; a cross-validation trial fold by fold, aggregated over folds; the
score is kept in ``DIR/test_scores.json`` and never computed again) and ``DIR`` receives
``trials.md``, ``trials.csv``, ``importances.png``, ``history.png``, ``best.yaml`` (the best trial's
saved config: ``ercgraph train -c DIR/best.yaml`` retrains it with the same dev score) and
``sweep.json``.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import math
import os
import socket
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from ercgraph.config import Config, dump_config, load_config, read_value, read_yaml
from ercgraph.data.features import atomic_write_bytes
from ercgraph.errors import ErcgraphError
from ercgraph.rundir import write_json
from ercgraph.train import Callback

log = logging.getLogger(__name__)

__all__ = [
    "Param",
    "PruningCallback",
    "Space",
    "SweepError",
    "check_space",
    "load_space",
    "parse_space",
    "run_sweep",
    "trial_overrides",
]

SAMPLERS = ("tpe", "random", "grid")
PRUNER_KEYS = ("n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials")
#: keys that define what the trials are compared on, or where things live: the sweep's, not
#: the space's
OWNED = {
    "train.select_metric": "the sweep compares trials on it",
    "train.jobs": "a trial trains its seeds in its worker's process (--jobs: trials at once)",
    "data_root": "where the data lives is not a hyper-parameter",
    "cache_dir": "where the cache lives is not a hyper-parameter",
    "out": "each trial has its own run directory",
    "imports": "plug-in files are given with --import",
}
OWNED_SECTIONS = {
    "metrics": "it defines the score trials are compared on",
    "protocol": "it defines the dev split trials are compared on",
}
#: top-level sections that :func:`ercgraph.pipeline.prepare` does not read: a space over these
#: alone shares one prepared corpus (features, graphs) across its trials
PREP_FREE = ("model", "train", "loss", "sampler", "decision")
#: the type of a key under a free-form mapping: whatever the space gives
FREE = "free-form"
#: files of the sweep folder, beside ``trials/``
BASE, SPACE, STUDY_DB, TEST_SCORES = "base.yaml", "space.yaml", "study.db", "test_scores.json"
#: files that mark a folder as a sweep's
MARKS = (BASE, STUDY_DB)
#: seconds between a running trial's heartbeats, and how long a silent one stays RUNNING
HEARTBEAT_S, GRACE_S = 30, 120


class SweepError(ErcgraphError):
    """A trial showed that the sweep itself cannot work (its select metric is missing): the
    sweep stops at once rather than counting a failure."""


# -- the space ----------------------------------------------------------------------------------
def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _encode(value: Any) -> Any:
    """An Optuna categorical holds scalars only: a mapping or list choice is its JSON text."""
    return value if _scalar(value) else json.dumps(value, sort_keys=True)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Param:
    """One key of the space: ``choices``, or a ``low``–``high`` range of ``kind`` int/float
    (``log`` or ``step``); ``when`` maps earlier keys to the values that make it active."""

    key: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    kind: str = "float"
    log: bool = False
    step: float | None = None
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def active(self, values: dict[str, Any]) -> bool:
        """Whether this key is sampled, given the values sampled before it."""
        return all(k in values and values[k] in allowed for k, allowed in self.when)

    def suggest(self, trial: Any) -> Any:
        if self.choices is not None:
            encoded = [_encode(c) for c in self.choices]
            got = trial.suggest_categorical(self.key, encoded)
            return self.choices[encoded.index(got)]
        if self.kind == "int":
            return trial.suggest_int(
                self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def grid_values(self) -> list[Any]:
        if self.choices is not None:
            return [_encode(c) for c in self.choices]
        return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))

    def corners(self) -> list[Any]:
        """The values a config check before the sweep tries: both ends, every choice."""
        if self.choices is not None:
            return list(self.choices)
        if self.kind == "int":
            step = int(self.step or 1)
            top = int(self.low) + (int(self.high) - int(self.low)) // step * step
            return [int(self.low), top]
        return [float(self.low), float(self.high)]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.choices is not None:
            d["choices"] = list(self.choices)
        else:
            d.update(low=self.low, high=self.high, type=self.kind)
            if self.log:
                d["log"] = True
            if self.step is not None:
                d["step"] = self.step
        if self.when:
            d["when"] = {k: list(v) for k, v in self.when}
        return d


@dataclass(frozen=True)
class Space:
    """A parsed space file (see the module docstring)."""

    source: str
    sampler: str = "tpe"
    params: tuple[Param, ...] = ()
    pruner: dict[str, int] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.params]

    def sample(self, trial: Any) -> dict[str, Any]:
        """The trial's values of the active keys, in the space's order."""
        values: dict[str, Any] = {}
        for p in self.params:
            if p.active(values):
                values[p.key] = p.suggest(trial)
        return values

    def grid(self) -> dict[str, list[Any]]:
        return {p.key: p.grid_values() for p in self.params}

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "sampler": self.sampler,
            "pruner": dict(self.pruner),
            "params": {p.key: p.to_dict() for p in self.params},
        }


def load_space(path: str | Path) -> Space:
    """Read and check a space file's own rules (its keys are checked against a config by
    :func:`check_space`)."""
    path = Path(path)
    if not path.is_file():
        raise ErcgraphError(f"space file not found: {str(path)!r}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ErcgraphError(f"space {str(path)!r} cannot be read: {exc}") from None
    return parse_space(read_yaml(text, f"space {str(path)!r}"), f"space {str(path)!r}")


def parse_space(raw: Any, source: str = "space") -> Space:
    """A space from its YAML mapping; every rule broken is a one-line error naming the key."""
    if not isinstance(raw, dict):
        raise ErcgraphError(f"{source} must be a mapping with params: (and sampler:, pruner:)")
    unknown = sorted(set(raw) - {"sampler", "pruner", "params"})
    if unknown:
        raise ErcgraphError(
            f"{source}: unknown key {unknown[0]!r}; allowed: sampler, pruner, params"
        )
    sampler = raw.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise ErcgraphError(f"{source}: sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
    pruner = raw.get("pruner") or {}
    if not isinstance(pruner, dict):
        raise ErcgraphError(f"{source}: pruner must be a mapping of {list(PRUNER_KEYS)}")
    for k, v in pruner.items():
        if k not in PRUNER_KEYS:
            raise ErcgraphError(
                f"{source}: pruner.{k} is not a median-pruner option; allowed: {list(PRUNER_KEYS)}"
            )
        if not _is_int(v) or v < (1 if k == "interval_steps" else 0):
            raise ErcgraphError(f"{source}: pruner.{k} must be an integer >= 0, got {v!r}")
    params = raw.get("params")
    if not isinstance(params, dict) or not params:
        raise ErcgraphError(f"{source}: params must map config keys to ranges or choices")
    parsed: list[Param] = []
    for key, spec in params.items():
        parsed.append(_parse_param(str(key), spec, parsed, sampler, f"{source}: params.{key}"))
    return Space(source, sampler, tuple(parsed), dict(pruner))


def _parse_param(key: str, spec: Any, before: list[Param], sampler: str, where: str) -> Param:
    if not isinstance(spec, dict):
        raise ErcgraphError(
            f"{where} must be a mapping: {{low: .., high: ..}} or {{choices: [..]}}, got {spec!r}"
        )
    allowed = {"choices", "low", "high", "log", "step", "type", "when"}
    extra = sorted(set(spec) - allowed)
    if extra:
        raise ErcgraphError(f"{where}: unknown key {extra[0]!r}; allowed: {sorted(allowed)}")
    when = _parse_when(spec.get("when"), before, where)
    if when and sampler == "grid":
        raise ErcgraphError(
            f"{where}: a grid sampler takes no conditional keys (when:); use tpe or random, or "
            "one grid sweep per condition"
        )
    if "choices" in spec:
        if set(spec) - {"choices", "when"}:
            raise ErcgraphError(f"{where}: choices takes no low/high/log/step/type")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ErcgraphError(f"{where}: choices must be a non-empty list, got {choices!r}")
        if len({json.dumps(_encode(c), sort_keys=True) for c in choices}) != len(choices):
            raise ErcgraphError(f"{where}: choices lists a value twice: {choices!r}")
        return Param(key, choices=tuple(choices), kind="choice", when=when)
    if "low" not in spec or "high" not in spec:
        raise ErcgraphError(f"{where} needs low and high (a range) or choices (a list)")
    low, high, step, log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
    for name, v in (("low", low), ("high", high), ("step", step)):
        if v is None and name == "step":
            continue
        if isinstance(v, str):  # PyYAML reads 1e-4 (no dot) as text
            try:
                v = float(v)
            except ValueError:
                pass
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ErcgraphError(f"{where}: {name} must be a finite number, got {spec[name]!r}")
        if name == "low":
            low = v
        elif name == "high":
            high = v
        else:
            step = v
    if not isinstance(log, bool):
        raise ErcgraphError(f"{where}: log must be true or false, got {log!r}")
    kind = spec.get("type")
    if kind not in (None, "int", "float"):
        raise ErcgraphError(f"{where}: type must be int or float, got {kind!r}")
    if low >= high:
        raise ErcgraphError(f"{where}: low ({low!r}) must be below high ({high!r})")
    if log and low <= 0:
        raise ErcgraphError(f"{where}: a log range needs low > 0, got low {low!r}")
    if step is not None and step <= 0:
        raise ErcgraphError(f"{where}: step must be > 0, got {step!r}")
    if step is not None and log:
        raise ErcgraphError(f"{where}: a range takes log or step, not both")
    if kind is None:  # decided against the config's field type by check_space
        kind = "int?" if all(_is_int(v) for v in (low, high, step) if v is not None) else "float"
    if kind == "int" and not all(_is_int(v) for v in (low, high, step) if v is not None):
        raise ErcgraphError(f"{where}: an integer range needs integer low, high and step")
    if sampler == "grid" and kind == "float":
        raise ErcgraphError(
            f"{where}: a grid sampler needs choices or an integer range, not the continuous "
            f"range {low!r}..{high!r}; list the values under choices"
        )
    return Param(key, None, low, high, kind, log, step, when)


def _parse_when(when: Any, before: list[Param], where: str) -> tuple[tuple[str, tuple], ...]:
    if when is None:
        return ()
    if not isinstance(when, dict) or not when:
        raise ErcgraphError(f"{where}: when must map earlier keys to values, got {when!r}")
    earlier = {p.key: p for p in before}
    out = []
    for k, v in when.items():
        if k not in earlier:
            raise ErcgraphError(
                f"{where}: when names {k!r}, which is not a key listed before it in params"
            )
        values = tuple(v) if isinstance(v, list) else (v,)
        p = earlier[k]
        for value in values:
            fits = (
                value in p.choices
                if p.choices is not None
                else isinstance(value, (int, float)) and p.low <= value <= p.high
            )
            if not fits:
                raise ErcgraphError(f"{where}: when {k}: {value!r} is a value {k} never takes")
        out.append((str(k), values))
    return tuple(out)


# -- the space against a config -----------------------------------------------------------------
def _plain(hint: Any) -> Any:
    args = [a for a in get_args(hint) if a is not type(None)]
    if type(None) in get_args(hint) and len(args) == 1:
        return args[0]
    return hint


def config_keys() -> tuple[dict[str, Any], list[str]]:
    """Every dotted key ``--set`` can give a value (``features.files.*.path``: ``*`` is an
    entry's name) with its type, and the free-form mappings (any key under them)."""
    leaves: dict[str, Any] = {}
    free: list[str] = []

    def walk(cls: type, prefix: str) -> None:
        hints = get_type_hints(cls)
        for f in fields(cls):
            hint, path = _plain(hints[f.name]), f"{prefix}{f.name}"
            args = get_args(hint)
            if is_dataclass(hint):
                walk(hint, f"{path}.")
            elif get_origin(hint) is dict and len(args) == 2 and is_dataclass(args[1]):
                walk(args[1], f"{path}.*.")
            else:
                leaves[path] = hint
                if get_origin(hint) is dict:
                    free.append(path)

    walk(Config, "")
    return leaves, free


def _key_type(key: str, leaves: dict[str, Any], free: list[str]) -> Any:
    """The config type of a space key (:data:`FREE` under a free-form mapping), or a one-line
    error naming the key and its near matches."""
    if key in leaves:
        return leaves[key]
    parts = key.split(".")
    for pattern, hint in leaves.items():
        pp = pattern.split(".")
        if len(pp) == len(parts) and all(a in ("*", b) for a, b in zip(pp, parts, strict=True)):
            return hint
    if any(key.startswith(f"{f}.") for f in free):
        return FREE
    sections = {p.rsplit(".", 1)[0] for p in leaves if "." in p}
    if key in sections:
        example = next(p for p in leaves if p.startswith(f"{key}."))
        raise ErcgraphError(
            f"space key {key!r} is a section of the config; name its keys (e.g. {example})"
        )
    near = difflib.get_close_matches(key, [*leaves, *(f"{f}.<key>" for f in free)], n=4)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    raise ErcgraphError(f"space key {key!r} is not a config key{hint}")


def check_space(space: Space, cfg: Config) -> Space:
    """Check every key of ``space`` against the config, settle integer or float ranges by the
    key's type, and build and check the config at every corner of the space (each key at both
    ends and at each choice), all before any trial runs. Returns the settled space."""
    from ercgraph.pipeline import check_config

    leaves, free = config_keys()
    settled = []
    for p in space.params:
        top = p.key.split(".")[0]
        if p.key in OWNED or top in OWNED_SECTIONS:
            why = OWNED.get(p.key) or OWNED_SECTIONS[top]
            raise ErcgraphError(f"{space.source}: {p.key} cannot be swept: {why}")
        if p.choices is not None and _is_section(p.key, leaves):
            _check_bundles(p, leaves, free, space.source)
            settled.append(p)
            continue
        hint = _key_type(p.key, leaves, free)
        kind = p.kind
        if p.choices is None:
            if hint is int:
                if p.kind == "float":
                    raise ErcgraphError(
                        f"{space.source}: {p.key} is an integer key; give integer low, high "
                        f"(and step), got {p.low!r}..{p.high!r}"
                    )
                kind = "int"
            elif hint is float:
                if p.kind == "int":
                    raise ErcgraphError(f"{space.source}: {p.key} is a float key, not type: int")
                kind = "float"
            elif hint == FREE:
                kind = "int" if p.kind in ("int", "int?") else "float"
            else:
                raise ErcgraphError(
                    f"{space.source}: {p.key} takes {getattr(hint, '__name__', hint)}, not a "
                    "number; give its values under choices"
                )
            if space.sampler == "grid" and kind == "float":
                raise ErcgraphError(
                    f"{space.source}: params.{p.key}: a grid sampler needs choices or an integer "
                    f"range, not the continuous range {p.low!r}..{p.high!r} ({p.key} is a float)"
                )
        settled.append(dataclasses.replace(p, kind=kind))
    space = dataclasses.replace(space, params=tuple(settled))
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:  # the path every trial's config takes
        base = Path(tmp) / BASE
        base.write_text(dump_config(cfg), encoding="utf-8")
        for point in _corners(space):
            try:
                check_config(load_config(base, trial_overrides(point)))
            except ErcgraphError as exc:
                shown = ", ".join(f"{k}={v!r}" for k, v in point.items())
                raise ErcgraphError(
                    f"{space.source}: the trial config {shown} is refused: {exc}"
                ) from None
    return space


def _is_section(key: str, leaves: dict[str, Any]) -> bool:
    return key not in leaves and any(k.startswith(f"{key}.") for k in leaves)


def _check_bundles(p: Param, leaves: dict[str, Any], free: list[str], source: str) -> None:
    """A section's choices are mappings of its keys, each choice merged into the section as
    ``--set SECTION={...}`` merges (keys it does not name keep the base config's values): a
    bundle of settings that go together (a model preset, a fine-tuning recipe)."""
    for choice in p.choices or ():
        if not isinstance(choice, dict) or not choice:
            raise ErcgraphError(
                f"{source}: {p.key} is a section of the config; its choices must be non-empty "
                f"mappings of its keys (e.g. {{hidden: 64, dropout: 0.3}}), got {choice!r}"
            )
        stack = [(p.key, choice)]
        while stack:
            prefix, mapping = stack.pop()
            for k, v in mapping.items():
                key = f"{prefix}.{k}"
                if key in OWNED:
                    raise ErcgraphError(f"{source}: {key} cannot be swept: {OWNED[key]}")
                if isinstance(v, dict) and _is_section(key, leaves):
                    stack.append((key, v))
                else:
                    _key_type(key, leaves, free)


def _corners(space: Space) -> list[dict[str, Any]]:
    """The points :func:`check_space` builds: the first value of every key, then each key at
    each of its corner values (its conditions met by their first fitting value)."""
    first = {p.key: p.corners()[0] for p in space.params}
    by_key = {p.key: p for p in space.params}
    points = []
    for p in [None, *space.params]:
        for value in p.corners() if p else [None]:
            want = dict(first)
            if p is not None:
                want[p.key] = value
                for k, allowed in p.when:
                    want[k] = allowed[0]
                    for k2, allowed2 in by_key[k].when:  # one level of nesting is followed
                        want[k2] = allowed2[0]
            point: dict[str, Any] = {}
            for q in space.params:
                if q.active(point):
                    point[q.key] = want[q.key]
            if point not in points:
                points.append(point)
    return points


def _yaml(value: Any) -> str:
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf")).strip()
    return text[: -len("...")].strip() if text.endswith("\n...") or text == "..." else text


def trial_overrides(values: dict[str, Any]) -> list[str]:
    """A trial's values as the ``--set KEY=VALUE`` items that give its config."""
    items = []
    for key, value in values.items():
        text = _yaml(value)
        if read_value(text) != value:  # what --set reads back must be what was sampled
            raise ErcgraphError(f"{key}: the value {value!r} does not survive --set as {text!r}")
        items.append(f"{key}={text}")
    return items


# -- a trial ------------------------------------------------------------------------------------
class PruningCallback(Callback):
    """Reports the first seed's dev ``metric`` after every epoch to an Optuna trial (step =
    epoch) and raises :class:`optuna.TrialPruned` when the pruner says so (``prune``); counts
    the epochs trained over all seeds."""

    def __init__(self, trial: Any, metric: str, first_seed: int, prune: bool = True) -> None:
        self.trial, self.metric, self.first_seed, self.prune = trial, metric, first_seed, prune
        self.epochs = self.runs = 0

    def run_start(self, cfg: Config, out: Path) -> None:
        self.runs += 1  # a cross-validation trial is one run per fold

    def epoch_end(self, seed: int, row: dict[str, float]) -> None:
        import optuna

        self.epochs += 1
        if seed != self.first_seed or self.runs > 1:  # the first fold's first seed only
            return
        key = f"dev_{self.metric}"
        if key not in row:
            raise SweepError(
                f"the sweep's select metric {self.metric!r} is missing from the trial's epoch "
                f"record (it has {sorted(k for k in row if k.startswith('dev_'))})"
            )
        epoch = int(row["epoch"])
        self.trial.report(float(row[key]), step=epoch)
        if self.prune and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch} (first seed's dev {key})")


@dataclass
class _Plan:
    """What every worker needs (inherited by forked workers)."""

    out: Path
    base: Path
    space: Space
    metric: str
    url: str
    study_name: str
    trials: int
    seed: int
    prune: bool
    max_failures: int
    started: float
    cv: bool = False
    prep: Any = None
    callbacks: Sequence[Callback] = ()


def _storage(url: str) -> Any:
    import optuna

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=kwargs,
                heartbeat_interval=HEARTBEAT_S,
                grace_period=GRACE_S,
            )
        except Exception as exc:  # a driver missing, a refused connection, a bad URL
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ErcgraphError(
                f"--storage {_masked(url)}: cannot open the study database ({first})"
            ) from None


def _masked(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<the given URL>"


def _sampler(space: Space, seed: int) -> Any:
    import optuna

    if space.sampler == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    if space.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _study(plan: _Plan, worker: int) -> tuple[Any, Any]:
    """The shared study, with this worker's sampler: seeded by ``--seed``, the trials the study
    held when the worker started and the worker's index, so a resumed sweep or a second worker
    does not replay the first one's random draws."""
    import numpy as np
    import optuna

    storage = _storage(plan.url)
    held = len(storage.get_all_trials(storage.get_study_id_from_name(plan.study_name)))
    seed = int(np.random.SeedSequence([plan.seed, held, worker]).generate_state(1)[0])
    pruners = optuna.pruners
    pruner = pruners.MedianPruner(**plan.space.pruner) if plan.prune else pruners.NopPruner()
    study = optuna.load_study(
        study_name=plan.study_name,
        storage=storage,
        sampler=_sampler(plan.space, seed),
        pruner=pruner,
    )
    return study, storage


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _recover(study: Any, storage: Any) -> None:
    """Mark interrupted trials failed and queue each once again with its parameters: RUNNING
    trials whose heartbeat stopped or whose process on this machine is gone, and failed trials
    that carry no error (Ctrl-C). A failed trial with an error is not retried."""
    import optuna
    from optuna.trial import TrialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker") or {}
        if worker.get("host") == host and not _alive(int(worker.get("pid", 0)) or -1):
            try:
                storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
                log.warning("trial %d: its process %s is gone; marked failed", t.number, worker)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # another worker got there first
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for t in trials:
        if t.state == TrialState.FAIL and "error" not in t.user_attrs and t.number not in retried:
            log.info("trial %d was interrupted: queued again with its parameters", t.number)
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})


def _check_failures(study: Any, plan: _Plan) -> None:
    """Stop when the last ``max_failures`` trials finished in this invocation all failed."""
    from optuna.trial import TrialState

    ended = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.datetime_complete is not None
        and t.datetime_start is not None
        and t.datetime_start.timestamp() >= plan.started
        and (t.state != TrialState.FAIL or "error" in t.user_attrs)
    ]
    ended.sort(key=lambda t: t.datetime_complete)
    tail = ended[-plan.max_failures :]
    if len(tail) == plan.max_failures and all(t.state == TrialState.FAIL for t in tail):
        raise ErcgraphError(
            f"sweep stopped: {plan.max_failures} trials in a row failed (--max-failures); the "
            f"first, trial {tail[0].number}: {tail[0].user_attrs['error']}"
        )


class _Turn:
    """The file lock a worker holds from counting the study's trials until its new trial
    exists, so workers on this machine never start more than ``trials``."""

    def __init__(self, path: Path) -> None:
        from filelock import FileLock

        self.lock, self.held = FileLock(str(path)), False

    def take(self) -> None:
        self.lock.acquire()
        self.held = True

    def give(self) -> None:
        if self.held:
            self.held = False
            self.lock.release()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _objective(plan: _Plan, turn: _Turn) -> Any:
    def objective(trial: Any) -> float:
        import optuna

        from ercgraph.protocol import run_cv
        from ercgraph.train import run

        turn.give()  # the trial exists (RUNNING): other workers may count it now
        trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
        values = plan.space.sample(trial)
        overrides = trial_overrides(values)
        trial.set_user_attr("set", overrides)
        out = plan.out / "trials" / f"trial_{trial.number}"
        log.info("trial %d: %s", trial.number, " ".join(overrides))
        reporter = PruningCallback(trial, plan.metric, -1, plan.prune)
        try:
            cfg = load_config(plan.base, [*overrides, "train.jobs=1"])
            reporter.first_seed = cfg.train.seeds[0]
            callbacks = [*plan.callbacks, reporter]
            if plan.cv:  # every fold; the objective is the folds' mean of their seed means
                metrics = run_cv(cfg, out, callbacks=callbacks, score_test=False)
            else:
                metrics = run(cfg, out, prep=plan.prep, callbacks=callbacks, score_test=False)
        except KeyboardInterrupt:
            trial.set_user_attr("epochs", reporter.epochs)
            raise  # failed without an error: retried by the next invocation
        except optuna.TrialPruned:
            trial.set_user_attr("epochs", reporter.epochs)
            raise
        except Exception as exc:
            trial.set_user_attr("epochs", reporter.epochs)
            trial.set_user_attr("error", _one_line(exc))
            raise
        trial.set_user_attr("epochs", reporter.epochs)
        dev = (metrics.get("dev") or {}).get(plan.metric)
        if not isinstance(dev, dict) or dev.get("mean") is None:
            err = SweepError(
                f"trial {trial.number}: the select metric {plan.metric!r} is missing from "
                f"{str(out / 'metrics.json')!r} (dev has {sorted(metrics.get('dev') or {})})"
            )
            trial.set_user_attr("error", _one_line(err))
            raise err
        return float(dev["mean"])

    return objective


def _worker(plan: _Plan, worker: int) -> int:
    """Run trials until the study holds ``plan.trials`` completed or pruned ones; returns how
    many this worker ran."""
    import optuna
    from optuna.trial import TrialState

    study, storage = _study(plan, worker)
    turn = _Turn(plan.out / ".turn.lock")
    limit = plan.trials
    if plan.space.sampler == "grid":
        limit = min(limit, plan.space.grid_size())
    ran = 0
    while True:
        turn.take()
        try:
            _recover(study, storage)
            _check_failures(study, plan)
            states = [t.state for t in study.get_trials(deepcopy=False)]
            done = sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states)
            if done + states.count(TrialState.RUNNING) >= limit:
                return ran
            ran += 1
            try:
                study.optimize(_objective(plan, turn), n_trials=1, catch=())
            except (SweepError, KeyboardInterrupt):
                raise
            except optuna.exceptions.OptunaError:
                raise
            except Exception as exc:  # recorded on the trial; the loop decides whether to stop
                log.warning("trial failed: %s", _one_line(exc))
        finally:
            turn.give()


def _worker_job(plan: _Plan, i: int) -> int:
    return _worker(plan, i)


# -- the sweep ----------------------------------------------------------------------------------
def _where_independent(d: dict[str, Any]) -> dict[str, Any]:
    """A config dict without the keys that say where things live or how fast it runs, which
    may differ between workers of one study."""
    d = json.loads(json.dumps(d, default=str))
    for key in ("data_root", "cache_dir", "out", "imports"):
        d.pop(key, None)
    for key in ("jobs", "threads", "device"):
        d.get("train", {}).pop(key, None)
    return d


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _differs(a: Any, b: Any) -> list[str]:
    fa, fb = _flat(a), _flat(b)
    return sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))


def _open_study(plan: _Plan, cfg: Config, direction: str) -> int:
    """Create the study or load it, refusing one started with another config or space; returns
    how many of its trials have completed or been pruned."""
    import optuna
    from optuna.trial import TrialState

    storage = _storage(plan.url)
    study = optuna.create_study(
        study_name=plan.study_name, storage=storage, direction=direction, load_if_exists=True
    )
    if study.direction.name.lower() != direction:
        raise ErcgraphError(
            f"study {plan.study_name!r} ({_masked(plan.url)}) {study.direction.name.lower()}s, but "
            f"{plan.metric} is to {direction}; use another --study-name"
        )
    mine = {
        "ercgraph_config": _where_independent(cfg.to_dict()),
        "ercgraph_space": json.loads(json.dumps(plan.space.to_dict(), default=str)),
    }
    attrs = study.user_attrs
    for key, what in (("ercgraph_config", "config"), ("ercgraph_space", "space")):
        if key not in attrs:
            study.set_user_attr(key, mine[key])
        elif attrs[key] != mine[key]:
            at = ", ".join(_differs(attrs[key], mine[key])[:5]) or "top level"
            raise ErcgraphError(
                f"study {plan.study_name!r} ({_masked(plan.url)}) was started with another "
                f"{what} (it differs at {at}); rerun with the same -c/--set/--space, or sweep "
                "into another --out / --study-name"
            )
    numbers = {t.number for t in study.get_trials(deepcopy=False)}
    for d in sorted((plan.out / "trials").glob("trial_*")):
        num = d.name.removeprefix("trial_")
        if not num.isdigit() or int(num) not in numbers:
            raise ErcgraphError(
                f"{str(d)!r} is not a trial of study {plan.study_name!r} ({_masked(plan.url)}); "
                "sweep into another --out, or give the study it belongs to (--storage, "
                "--study-name)"
            )
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    storage.engine.dispose()  # forked workers open their own connections
    return done


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ErcgraphError(f"--out {str(out)!r} is a file, not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not any((out / f).is_file() for f in MARKS):
        raise ErcgraphError(
            f"--out {str(out)!r} exists and is not a sweep folder (no {BASE} or {STUDY_DB}); "
            "choose another --out"
        )


def run_sweep(
    cfg: Config,
    space: Space,
    out: Path,
    trials: int,
    seed: int = 0,
    storage: str | None = None,
    study_name: str | None = None,
    jobs: int = 1,
    prune: bool = True,
    max_failures: int = 3,
    command: list[str] | None = None,
    callbacks: Sequence[Callback] = (),
    score_test: bool = True,
) -> dict[str, Any]:
    """Run (or resume) a sweep of ``space`` over ``cfg`` into ``out`` until ``trials`` trials
    have completed or been pruned; score the best one on test once; write the reports.

    Args:
        cfg: the base config (the user's ``-c``/``--set``); its select metric is the objective.
        space: the parsed space (:func:`load_space`).
        out: the sweep folder.
        trials: completed plus pruned trials wanted in the whole study.
        seed: seeds the sampler.
        storage: an Optuna database URL (default: ``sqlite:///OUT/study.db``).
        study_name: default: ``out``'s name.
        jobs: worker processes on this machine, each running one trial at a time.
        prune: stop poor trials early (median pruner on the first seed's dev curve).
        max_failures: failures in a row that stop the sweep.
        command: the command line, recorded in ``sweep.json``.
        callbacks: extra training callbacks given to every trial.
        score_test: score the best trial on test (once) at the end; ``False`` leaves test
            unread (a sweep that only measures, e.g. a re-run of another sweep's trials).

    Returns:
        The summary written to ``sweep.json``.
    """
    import optuna

    from ercgraph.metrics import higher_is_better
    from ercgraph.pipeline import check_config

    out = Path(out)
    if trials < 1 or jobs < 1 or max_failures < 1:
        raise ErcgraphError("--trials, --jobs and --max-failures must be >= 1")
    _check_out(out)
    check_config(cfg)
    space = check_space(space, cfg)
    metric = cfg.train.select_metric
    direction = "maximize" if higher_is_better(metric) else "minimize"
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(out / STUDY_DB).resolve()}"
    name = study_name or out.resolve().name
    base = out / BASE
    # a failed trial is logged once, in one line, by the worker (not with Optuna's traceback)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    cv = cfg.protocol.name == "group_kfold" and cfg.protocol.fold is None
    plan = _Plan(
        out, base, space, metric, url, name, trials, seed, prune, max_failures, time.time(), cv
    )
    try:
        done = _open_study(plan, cfg, direction)  # one begun with another config is refused
    except ErcgraphError:
        if created and not any(out.iterdir()):
            out.rmdir()  # a storage that cannot be reached leaves nothing behind
        raise
    atomic_write_bytes(base, dump_config(cfg).encode())
    if load_config(base) != cfg:
        raise ErcgraphError(f"{str(base)!r} does not read back as the sweep's config")
    atomic_write_bytes(out / SPACE, _yaml_block(space.to_dict()).encode())
    missing = done < (min(trials, space.grid_size()) if space.sampler == "grid" else trials)
    if missing and not cv and all(k.split(".")[0] in PREP_FREE for k in space.keys):
        from ercgraph.pipeline import prepare

        # the trials differ only in what prepare() does not read: one corpus, features and
        # graphs for all of them (workers inherit it)
        plan.prep = prepare(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, jobs=1)))
    plan.callbacks = tuple(callbacks)
    try:
        if jobs == 1:
            _worker(plan, 0)
        else:
            from ercgraph.parallel import fork_map

            fork_map(_worker_job, plan, jobs, jobs, cfg.train.threads or 1)
    except SweepError:
        raise
    except ErcgraphError:
        summarise(plan, cfg, command, score=False)  # what ran, before the error is shown
        raise
    return summarise(plan, cfg, command, score=score_test)


def _yaml_block(d: Any) -> str:
    import yaml

    return yaml.safe_dump(d, sort_keys=False)


# -- the reports --------------------------------------------------------------------------------
def _rows(study: Any) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        wall = None
        if t.datetime_start and t.datetime_complete:
            wall = round((t.datetime_complete - t.datetime_start).total_seconds(), 2)
        note = t.user_attrs.get("error", "")
        pruned_at = last = None
        if t.state.name == "PRUNED" and t.intermediate_values:
            pruned_at = max(t.intermediate_values)
            last = t.intermediate_values[pruned_at]
            note = f"pruned at epoch {pruned_at} (first seed's dev {last:.2f})"
        elif t.state.name == "FAIL" and not note:
            note = "interrupted (retried)"
        if "retry_of" in t.user_attrs:
            note = f"retry of {t.user_attrs['retry_of']}" + (f"; {note}" if note else "")
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                "dev": t.value if t.state.name == "COMPLETE" else None,
                "epochs": t.user_attrs.get("epochs"),
                "wall_s": wall,
                "params": dict(t.params),
                "set": t.user_attrs.get("set", []),
                "note": note,
                "pruned_at": pruned_at,
                "pruned_dev": last,
            }
        )
    return rows


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 0.01 or abs(v) >= 1e4 else f"{v:.4f}".rstrip("0").rstrip(".")
    return str(v)


def _table(rows: list[dict[str, Any]], keys: list[str], metric: str) -> tuple[list, list]:
    head = ["trial", "state", f"dev {metric}", "epochs", "wall s", *keys, "note"]
    body = [
        [
            r["trial"],
            r["state"],
            None if r["dev"] is None else f"{r['dev']:.2f}",
            r["epochs"],
            r["wall_s"],
            *[r["params"].get(k) for k in keys],
            r["note"],
        ]
        for r in rows
    ]
    return head, body


def markdown(head: list, body: list) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def _csv(head: list, body: list) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    w.writerows([["" if v is None else v for v in row] for row in body])
    return buf.getvalue()


def _importances(study: Any, seed: int) -> tuple[dict[str, float] | None, str]:
    import optuna

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed)
            )
        return {k: float(v) for k, v in imp.items()}, ""
    except (RuntimeError, ValueError) as exc:  # too few completed trials, or no variation
        return None, _one_line(exc)


def _plot_importances(imp: dict[str, float] | None, why: str, n: int, path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 0.5 * max(len(imp or {}), 3) + 1))
    if imp:
        names = list(imp)[::-1]
        ax.barh(names, [imp[n] for n in names], color="tab:blue")
        ax.set_xlabel("importance (fANOVA, share of the dev-score variance)")
    else:
        ax.text(0.5, 0.5, f"no importances: {why}"[:90], ha="center", va="center", wrap=True)
        ax.set_axis_off()
    ax.set_title(f"parameter importances ({n} completed trials)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _plot_history(rows: list[dict[str, Any]], metric: str, maximise: bool, path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    done = [(r["trial"], r["dev"]) for r in rows if r["state"] == "COMPLETE"]
    if done:
        xs, ys = zip(*done, strict=True)
        ax.scatter(xs, ys, color="tab:blue", label="completed", zorder=3)
        best, line = None, []
        for y in ys:
            best = y if best is None or (y > best if maximise else y < best) else best
            line.append(best)
        ax.step(xs, line, where="post", color="tab:red", label="best so far")
    pruned = [r for r in rows if r["state"] == "PRUNED" and r["pruned_dev"] is not None]
    if pruned:
        ax.scatter(
            [r["trial"] for r in pruned],
            [r["pruned_dev"] for r in pruned],
            marker="x",
            color="grey",
            label="pruned (first seed's last dev)",
        )
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(f"dev {metric}")
    ax.set_title("optimisation history")
    if done or pruned:
        ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _score_test(plan: _Plan, cfg: Config, number: int) -> dict[str, Any]:
    """The best trial's test scores, computed once ever (kept in ``test_scores.json``)."""
    from filelock import FileLock

    path = plan.out / TEST_SCORES
    with FileLock(str(plan.out / ".report.lock")):
        scores = json.loads(path.read_text()) if path.exists() else {}
        if str(number) not in scores:
            run_dir = plan.out / "trials" / f"trial_{number}"
            log.info("scoring the best trial (%d) on test, once", number)
            res, written = _evaluate_trial(run_dir, cfg)
            scores[str(number)] = {
                "dev": res["dev"].get(plan.metric, {}).get("mean"),
                "test": res["test"].get(plan.metric, {}).get("mean"),
                "test_metrics": res["test"],
                "file": str(written),
                "scored_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            write_json(path, scores)
        return scores[str(number)]


def _evaluate_trial(run_dir: Path, cfg: Config) -> tuple[dict[str, Any], Path]:
    """A trial re-scored on dev and test into its ``sweep_test.json``: a cross-validation
    trial fold by fold (each ``fold_<k>/sweep_test.json``), aggregated as ``ercgraph train``
    aggregates folds (mean over folds of each fold's mean over seeds)."""
    from ercgraph.evaluate import evaluate_run
    from ercgraph.protocol import FOLDS_FILE, Fold, aggregate_folds
    from ercgraph.rundir import CONFIG

    where = {"data_root": cfg.data_root, "cache_dir": cfg.cache_dir}
    if not (run_dir / FOLDS_FILE).is_file():
        return evaluate_run(run_dir, "sweep_test.json", **where)
    doc = json.loads((run_dir / FOLDS_FILE).read_text())
    folds = [
        Fold(r["fold"], r["test"]["groups"], r["dev"]["groups"], r["train"]["groups"])
        for r in doc["folds"]
    ]
    per_fold = {}
    for f in folds:
        fold_dir = run_dir / f"fold_{f.index}"
        res, _ = evaluate_run(fold_dir, "sweep_test.json", **where)
        trained = json.loads((fold_dir / "metrics.json").read_text())
        per_fold[f.index] = {**res, **{k: trained.get(k) for k in ("labels", "epoch_s_mean")}}
    agg = aggregate_folds(load_config(run_dir / CONFIG), folds, per_fold)
    write_json(run_dir / "sweep_test.json", agg)
    return agg, run_dir / "sweep_test.json"


def summarise(
    plan: _Plan, cfg: Config, command: list[str] | None, score: bool = True
) -> dict[str, Any]:
    """Write trials.md/.csv, the two plots, best.yaml and sweep.json; score the best trial on
    test once (``score``)."""
    import optuna

    from ercgraph.metrics import higher_is_better
    from ercgraph.rundir import CONFIG, environment

    study = optuna.load_study(study_name=plan.study_name, storage=_storage(plan.url))
    rows = _rows(study)
    keys = plan.space.keys
    head, body = _table(rows, keys, plan.metric)
    atomic_write_bytes(plan.out / "trials.md", markdown(head, body).encode())
    atomic_write_bytes(plan.out / "trials.csv", _csv(head, body).encode())
    imp, why = _importances(study, plan.seed)
    done = sum(r["state"] == "COMPLETE" for r in rows)
    _plot_importances(imp, why, done, plan.out / "importances.png")
    maximise = higher_is_better(plan.metric)
    _plot_history(rows, plan.metric, maximise, plan.out / "history.png")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    best = None
    completed = [r for r in rows if r["state"] == "COMPLETE"]
    if completed:
        bt = study.best_trial
        run_dir = plan.out / "trials" / f"trial_{bt.number}"
        best = {
            "trial": bt.number,
            "params": dict(bt.params),
            "set": bt.user_attrs.get("set", []),
            "dev": bt.value,
            "run_dir": str(run_dir),
            "config": str(plan.out / "best.yaml"),
        }
        saved = (run_dir / CONFIG).read_text(encoding="utf-8")
        header = (
            f"# best trial {bt.number} of the sweep in {plan.out}: dev {plan.metric} "
            f"{bt.value:.4f} (mean over its seeds); retrain with: ercgraph train -c <this file>\n"
        )
        atomic_write_bytes(plan.out / "best.yaml", (header + saved).encode())
        if score:
            scored = _score_test(plan, cfg, bt.number)
            best["test"] = scored["test"]
            best["dev_rescored"] = scored["dev"]
            best["test_file"] = scored["file"]
    summary = {
        "study": plan.study_name,
        "storage": _masked(plan.url),
        "select_metric": plan.metric,
        "direction": "maximize" if maximise else "minimize",
        "sampler": plan.space.sampler,
        "seed": plan.seed,
        "pruning": plan.prune,
        "trials_requested": plan.trials,
        "grid_size": plan.space.grid_size() if plan.space.sampler == "grid" else None,
        "counts": counts,
        "best": best,
        "importances": imp,
        "importances_note": why or None,
        "space": plan.space.to_dict(),
        "base_config": str(plan.base),
        "trials": rows,
        "command": command,
        "environment": environment(),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_json(plan.out / "sweep.json", summary)
    return summary


def summary_lines(summary: dict[str, Any], out: Path) -> list[str]:
    """What ``ercgraph sweep`` prints: the trials table and the best trial's dev and test."""
    keys = list(summary["space"]["params"])
    head, body = _table(summary["trials"], keys, summary["select_metric"])
    lines = markdown(head, body).splitlines()
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(summary["counts"].items()))
    grid = f"; the grid has {summary['grid_size']} points" if summary.get("grid_size") else ""
    lines.append(f"\ntrials: {counts} (requested {summary['trials_requested']}{grid})")
    best = summary["best"]
    metric = summary["select_metric"]
    if best is None:
        lines.append("no trial completed: no best trial")
        return lines
    test = (
        f"test {metric} {best['test']:.2f} (scored once, after the sweep)"
        if best.get("test") is not None
        else "test not scored"
    )
    lines.append(
        f"best: trial {best['trial']} ({' '.join(best['set'])}): dev {metric} {best['dev']:.2f}, "
        + test
    )
    lines.append(
        f"sweep folder: {out} (trials.md, trials.csv, history.png, importances.png, sweep.json); "
        f"retrain the best: ercgraph train -c {out / 'best.yaml'}"
    )
    return lines
