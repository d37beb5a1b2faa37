"""Generate the README's results tables from ``bench/results/*.json``.

Each generated block sits between marker comments in README.md, e.g.::

    <!-- table:meld_text -->
    | ... generated from bench/results/meld_text.json ... |

    Source: `bench/results/meld_text.json`, revision ..., started ...
    <!-- /table:meld_text -->

One small renderer per block (:data:`TABLES`) reads one JSON file and tolerates the keys older
files lack. The line under each table names the JSON file, its git revision and start time.
Outside the blocks, the results section may hold no figure at all (a digit outside code spans is
reported): every number there comes from a JSON file.

Usage:
    python bench/readme_tables.py          # rewrite the README's blocks
    python bench/readme_tables.py --check  # exit 1 and print a diff when the README differs
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
RESULTS_DIR = REPO / "bench" / "results"
#: The results section: from this heading to the next one below.
SECTION_START = "## Results"
SECTION_END = "## What a run writes"
BLOCK = re.compile(
    r"<!-- table:(?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /table:(?P=name) -->", re.DOTALL
)
DASH = "–"

Renderer = Callable[[Mapping[str, Any]], str]
#: marker name -> (JSON file stem in bench/results, renderer of the block body above the source)
TABLES: dict[str, tuple[str, Renderer]] = {}


def table(name: str, source: str | None = None) -> Callable[[Renderer], Renderer]:
    """Register ``fn`` as the renderer of block ``name`` from ``bench/results/<source>.json``."""

    def register(fn: Renderer) -> Renderer:
        if name in TABLES:
            raise ValueError(f"table {name!r} registered twice")
        TABLES[name] = (source or name, fn)
        return fn

    return register


# -- formatting helpers -------------------------------------------------------------------------
def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def num(value: Any, fmt: str = ".2f", suffix: str = "") -> str:
    """``value`` formatted, or a dash when it is missing."""
    if value is None or isinstance(value, (dict, list, str)):
        return DASH
    return f"{format(value, fmt)}{suffix}"


def mean_std(value: Any) -> str:
    """``{mean, std}`` as ``m ± s`` (a bare number as itself; missing as a dash)."""
    if isinstance(value, Mapping) and "mean" in value:
        std = value.get("std")
        return f"{value['mean']:.2f}" + ("" if std is None else f" ± {std:.2f}")
    return num(value)


def class_f1(row: Mapping[str, Any], split: str, label: str) -> Any:
    """A class's F1 (``{mean, std}`` or a number) under either of the row layouts used so far."""
    if f"{split}_{label}_f1" in row:
        return row[f"{split}_{label}_f1"]
    return (row.get(f"{split}_per_class_f1") or {}).get(label)


def delta(value: Any) -> str:
    return num(value, "+.2f")


def mean_of(value: Any) -> float | None:
    if isinstance(value, Mapping):
        return value.get("mean")
    return value if isinstance(value, (int, float)) else None


def _stamp(value: str) -> str:
    """``2026-11-23T19:43:27+00:00`` -> ``2026-11-23 19:43 UTC`` (other text as is)."""
    try:
        when = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return str(value)
    offset = when.strftime("%z")  # "+0000" or "" for a naive time
    zone = "" if not offset else " UTC" if offset == "+0000" else f" UTC{offset[:3]}:{offset[3:]}"
    return when.strftime("%Y-%m-%d %H:%M") + zone


def row_runs(rows: Sequence[Mapping[str, Any]], key: str = "variant") -> list[tuple[Any, list]]:
    """``[(row date, [row names])]`` when rows carry dates of more than one write, else ``[]``.

    Older bench scripts merged the rows of separate invocations into one file and dated each
    re-run row; a file written by one invocation has no row dates.
    """
    dates = [r.get("date") for r in rows]
    if not any(dates) or len(set(dates)) == 1:
        return []
    runs: dict[Any, list] = {}
    for r, d in zip(rows, dates):
        runs.setdefault(d, []).append(r.get(key, "?"))
    return list(runs.items())


def same_run(a: Mapping[str, Any], b: Mapping[str, Any], merged: bool) -> bool:
    """Whether two rows of one file were measured in the same invocation (as far as it says)."""
    return not merged or (a.get("date") is not None and a.get("date") == b.get("date"))


def source_line(stem: str, data: Mapping[str, Any]) -> str:
    """Where a table came from: JSON file, git revision, start time, threads, merged rows."""
    env = data.get("environment") or {}
    parts = [f"Source: `bench/results/{stem}.json`"]
    rev = data.get("git_revision")
    if rev:
        dirty = " with uncommitted changes" if data.get("dirty") else ""
        parts.append(f"revision `{rev[:10]}`{dirty}")
    elif env.get("git_rev"):
        parts.append(f"revision `{env['git_rev']}`")
    else:
        parts.append("revision not recorded")
    if data.get("started"):
        parts.append(f"started {_stamp(data['started'])}")
    elif data.get("date"):
        parts.append(f"written {_stamp(data['date'])} (start time not recorded)")
    threads = data.get("threads") or {}
    cpus = threads.get("cpu_count", env.get("cpu_count"))
    torch_threads = threads.get("torch", env.get("torch_threads"))
    if cpus:
        plural = "" if torch_threads == 1 else "s"
        parts.append(
            f"{cpus} CPUs" + (f", {torch_threads} torch thread{plural}" if torch_threads else "")
        )
    elif data.get("machine"):
        parts.append(str(data["machine"]))
    line = ", ".join(parts) + "."
    runs = row_runs(data.get("rows") or [])
    if runs:
        groups = "; ".join(
            f"{', '.join(f'`{n}`' for n in names)} {_stamp(d) if d else 'undated'}"
            for d, names in runs
        )
        line += f" Rows from {len(runs)} invocations, merged by an older script: {groups}."
    return line


# -- one renderer per block ---------------------------------------------------------------------
MELD_LABELS = {
    "frozen_mlp": "context-free MLP baseline, frozen MiniLM",
    "frozen_dialoguegcn": "DialogueGCN-style, frozen MiniLM",
    "frozen_gcn": "hierarchical GCN, frozen MiniLM",
    "finetuned_mlp": "context-free MLP baseline, fine-tuned MiniLM",
    "finetuned_dialoguegcn": "DialogueGCN-style, fine-tuned MiniLM",
    "finetuned_gcn": "hierarchical GCN, fine-tuned MiniLM",
    "mpnet_mlp": "context-free MLP baseline, frozen all-mpnet-base-v2",
    "mpnet_gcn": "hierarchical GCN, frozen all-mpnet-base-v2",
    "frozen_probe": "linear probe (logistic regression), frozen MiniLM",
    "mpnet_probe": "linear probe (logistic regression), frozen all-mpnet-base-v2",
    "finetuned_probe": "linear probe (logistic regression), fine-tuned MiniLM",
}


def _meld_rows(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    order = list(MELD_LABELS)
    rows = list(data.get("rows") or [])
    rank = {name: k for k, name in enumerate(order)}
    return sorted(rows, key=lambda r: rank.get(r.get("variant"), len(rank)))


@table("meld_text")
def meld_text(data: Mapping[str, Any]) -> str:
    rows = _meld_rows(data)
    merged = bool(row_runs(rows))
    by_name = {r.get("variant"): r for r in rows}
    out = []
    for r in rows:
        name = r.get("variant", "?")
        label = MELD_LABELS.get(name, name)
        d = r.get("test_weighted_f1_delta_vs_baseline")
        base = by_name.get(r.get("baseline") or f"{name.split('_', 1)[0]}_mlp")
        if d is None and base is not None and base is not r and same_run(r, base, merged):
            a, b = mean_of(r.get("test_weighted_f1")), mean_of(base.get("test_weighted_f1"))
            d = None if a is None or b is None else a - b
        out.append(
            [
                f"{label} (`{name}`)",
                mean_std(r.get("dev_weighted_f1")),
                mean_std(r.get("test_accuracy")),
                mean_std(r.get("test_weighted_f1")),
                delta(d),
                mean_std(r.get("test_macro_f1")),
                mean_std(class_f1(r, "test", "fear")),
                mean_std(class_f1(r, "test", "disgust")),
                num((r.get("test_ensemble") or {}).get("weighted_f1")),
            ]
        )
    text = md_table(
        [
            "model, features (variant)",
            "dev wF1",
            "test acc",
            "test wF1",
            "Δ test wF1 vs MLP, same features and run",
            "test macro F1",
            "test fear F1",
            "test disgust F1",
            "test wF1, ensemble of the seeds",
        ],
        out,
    )
    notes = []
    seeds = data.get("seeds")
    if seeds:
        seeds = seeds.split(",") if isinstance(seeds, str) else seeds
        notes.append(f"Seeds {', '.join(str(s) for s in seeds)}.")
    targets = data.get("targets") or {}
    for variant, target in (targets.get("test_weighted_f1_min") or {}).items():
        if variant == "best_frozen_gcn":  # the best frozen encoder, chosen on dev
            frozen = [r for r in rows if r.get("variant") in ("frozen_gcn", "mpnet_gcn")]
            frozen = [r for r in frozen if mean_of(r.get("dev_weighted_f1")) is not None]
            pick = max(frozen, key=lambda r: mean_of(r.get("dev_weighted_f1")), default=None)
            variant = pick.get("variant") if pick else "frozen_gcn"
        got = mean_of((by_name.get(variant) or {}).get("test_weighted_f1"))
        status = DASH if got is None else ("met" if got >= target else "not met")
        goal = (targets.get("test_weighted_f1_goal") or {}).get(variant)
        if goal is not None and got is not None:
            status += f"; goal ≥ {goal:g}: {'met' if got >= goal else 'not met'}"
        notes.append(f"Target for `{variant}`: test wF1 ≥ {target:g}: {status}.")
    published = data.get("published_test_weighted_f1") or {}
    if published:
        figures = ", ".join(f"{k} {v:.2f}" for k, v in published.items())
        notes.append(f"Published test wF1 (epoch chosen on test): {figures}.")
    return text + ("\n\n" + " ".join(notes) if notes else "")


@table("main_job")
def main_job(data: Mapping[str, Any]) -> str:
    """The README's main command as a new user runs it, and its own linear probe."""
    sel = data.get("select_metric", "weighted_f1")
    dev, test = data.get("dev") or {}, data.get("test") or {}
    per_class = data.get("test_per_class_f1") or {}
    probe = data.get("probe") or {}
    per_seed = (test.get(sel) or {}).get("per_seed") or {}
    rows = [
        [
            "hierarchical GCN (the command's model)",
            mean_std(dev.get(sel)),
            mean_std(test.get("accuracy")),
            mean_std(test.get(sel)),
            ", ".join(num(v) for v in per_seed.values()) or DASH,
            num(per_class.get("fear")),
            num(per_class.get("disgust")),
        ]
    ]
    if probe.get("dev"):
        p_test, p_class = probe.get("test") or {}, probe.get("test_per_class_f1") or {}
        rows.append(
            [
                f"linear probe ({probe.get('model')}, {probe.get('param')}="
                f"{num(probe.get('chosen'), 'g')}), same run and features",
                num(probe["dev"].get(sel)),
                num(p_test.get("accuracy")),
                num(p_test.get(sel)),
                DASH,
                num(p_class.get("fear")),
                num(p_class.get("disgust")),
            ]
        )
    headers = ["model", f"dev {sel}", "test acc", f"test {sel}", "test per seed"]
    table_md = md_table([*headers, "test fear F1", "test disgust F1"], rows)
    command = data.get("train_command", DASH)
    delta = ((probe.get("delta") or {}).get("test") or {}).get(sel)
    note = (
        f"`{command}` on a fresh cache (the features extracted by this command, its own threads)."
    )
    if delta is not None and data.get("wall_s"):
        share = num(100 * data.get("probe_share_of_wall", 0), ".1f")
        note += (
            f" Model − probe on test {sel}: {delta:+.2f}. The probe took "
            f"{num(probe.get('fit_s'), '.1f')} s, {share}% of the command's "
            f"{data['wall_s'] / 60:.1f} min."
        )
    return f"{table_md}\n\n{note}"


table("dailydialog_main_job")(main_job)  # the same command on DailyDialog
table("main_job_finetuned")(main_job)  # the fine-tuned preset, encoder fine-tuning included


@table("thread_invariance")
def thread_invariance(data: Mapping[str, Any]) -> str:
    """Frozen extraction and fine-tuning steps at 1 against 2 torch threads."""
    names = {
        "frozen_features": "frozen MiniLM features",
        "finetuned_weights": f"encoder weights after {data.get('steps', '?')} fine-tuning steps",
        "finetuned_features": "features of that fine-tuned encoder",
    }
    rows = []
    for key, label in names.items():
        got = data.get(key) or {}
        rows.append(
            [
                label,
                "yes" if got.get("identical") else "no",
                num(got.get("max_abs_diff"), ".2g"),
                f"{got.get('rows_differing', DASH)} of {got.get('rows', DASH)}",
            ]
        )
    return md_table(
        ["1 vs 2 torch threads", "bit-identical", "max abs difference", "rows differing"], rows
    ) + (
        f"\n\nThe first {data.get('utterances', '?')} MELD training utterances. The README's "
        "commands ran with torch's default thread count on this machine: "
        f"{(data.get('threads') or {}).get('cpu_count', '?')} (its cores)."
    )


@table("meld_text_cost", "meld_text")
def meld_text_cost(data: Mapping[str, Any]) -> str:
    out = [
        [
            f"`{r.get('variant', '?')}`",
            num(r.get("features_s"), ".0f"),
            num(r.get("graphs_s")),
            num(r.get("epoch_s")),
            num(r.get("peak_rss_mb"), ".0f"),
            num(None if r.get("finetune_s") is None else r["finetune_s"] / 60, ".1f"),
            num(r.get("minutes_per_seed"), ".1f"),
            num(None if r.get("wall_s") is None else r["wall_s"] / 60, ".1f"),
        ]
        for r in _meld_rows(data)
        if "probe" not in r
    ]
    text = md_table(
        [
            "variant",
            "features s (extraction + fine-tuning, this run)",
            "graph build s",
            "epoch s",
            "peak RSS MB",
            "fine-tuning min (when trained)",
            "min per seed (fine-tune + extract + train)",
            "wall min, whole `ercgraph train` command (all seeds)",
        ],
        out,
    )
    if str(data.get("cache", "")).startswith("fresh, fine-tuned"):
        text += (
            "\n\nEvery feature extraction ran in this invocation on a fresh cache; the "
            "fine-tuned encoders were linked from an earlier run (keyed by their exact "
            "settings and data), so fine-tuning minutes are those measured when each was trained."
        )
    if str(data.get("cache", "fresh")).startswith("reused"):
        text += (
            "\n\nFeatures and fine-tuned encoders came from a reused cache (keyed by their "
            "exact settings and data); fine-tuning minutes are those measured when each encoder "
            "was trained."
        )
    return text


@table("sweep_finetune")
def sweep_finetune(data: Mapping[str, Any]) -> str:
    out = []
    for r in data.get("rows") or []:
        per_epoch = " / ".join(f"{v:.2f}" for v in r.get("dev_weighted_f1_per_epoch") or [])
        out.append(
            [
                f"`{r.get('recipe', '?')}`"
                + (" (shipped)" if r.get("recipe") == data.get("shipped") else ""),
                per_epoch or DASH,
                num(r.get("best_dev_weighted_f1")),
                mean_std(r.get("gcn_dev_weighted_f1")),
                num((r.get("inputs") or {}).get("mean_tokens"), ".1f"),
                num((r.get("inputs") or {}).get("context_cut"), ".0f"),
                num(None if r.get("finetune_s") is None else r["finetune_s"] / 60, ".1f"),
            ]
        )
    text = md_table(
        [
            "recipe",
            "dev wF1 per epoch",
            "best dev wF1",
            "graph model dev wF1",
            "tokens per input",
            "inputs whose context was cut",
            "fine-tuning min",
        ],
        out,
    )
    notes = []
    if data.get("best_on_dev"):
        notes.append(f"Best graph-model dev wF1: `{data['best_on_dev']}`.")
    if data.get("best_on_dev_within_budget"):
        notes.append(f"Best within the fine-tuning budget: `{data['best_on_dev_within_budget']}`.")
    return text + ("\n\n" + " ".join(notes) if notes else "")


@table("sweep_text_objectives")
def sweep_text_objectives(data: Mapping[str, Any]) -> str:
    out = [
        [
            f"`{r.get('variant', '?')}`",
            mean_std(r.get("dev_weighted_f1")),
            delta(r.get("dev_weighted_f1_delta_vs_ce")),
            mean_std(r.get("dev_macro_f1")),
            num(r.get("dev_fear_f1")),
            num(r.get("dev_disgust_f1")),
            num(r.get("epoch_s")),
        ]
        for r in data.get("rows") or []
    ]
    text = md_table(
        [
            "loss terms",
            "dev wF1",
            "Δ vs ce",
            "dev macro F1",
            "dev fear F1",
            "dev disgust F1",
            "epoch s",
        ],
        out,
    )
    best = data.get("best_on_dev")
    return text + (f"\n\nBest on dev: `{best}`." if best else "")


@table("finetune_wall")
def finetune_wall(data: Mapping[str, Any]) -> str:
    budget = data.get("budget_min")
    out = []
    for r in data.get("rows") or []:
        minutes = None if r.get("wall_s") is None else r["wall_s"] / 60
        status = DASH
        if minutes is not None and budget is not None:
            status = "met" if minutes <= budget else "not met"
        out.append(
            [
                f"`{r.get('encoder', '?')}`",
                num(None if r.get("finetune_s") is None else r["finetune_s"] / 60, ".1f"),
                num(r.get("extract_s"), ".0f"),
                num(minutes, ".1f"),
                num(r.get("torch_threads"), ".0f"),
                status,
            ]
        )
    return md_table(
        [
            "encoder",
            "fine-tuning min (with dev scoring)",
            "feature extraction s",
            "total min",
            "torch threads",
            f"within {budget if budget is not None else DASH} min",
        ],
        out,
    )


@table("finetune_cost")
def finetune_cost(data: Mapping[str, Any]) -> str:
    out = [
        [
            f"`{r.get('encoder', '?')}`",
            num(r.get("parameters_m"), ".0f"),
            num(r.get("s_per_step")),
            num(r.get("x_vs_default"), ".2f", "x"),
            num(r.get("epoch_min_projected"), ".1f"),
            num(r.get("recipe_min_projected"), ".1f"),
        ]
        for r in data.get("rows") or []
    ]
    return md_table(
        [
            "encoder",
            "parameters (M)",
            "s per step",
            "vs default",
            "one epoch, min (projected)",
            "shipped recipe, min (projected)",
        ],
        out,
    )


def _imbalance_table(data: Mapping[str, Any]) -> str:
    rows = list(data.get("rows") or [])
    merged = bool(row_runs(rows))
    base_name = data.get("baseline", "ce")
    base = next((r for r in rows if r.get("variant") == base_name), None)
    out = []
    for r in rows:
        d = r.get(f"test_weighted_f1_delta_vs_{base_name}")
        if d is None and base is not None and same_run(r, base, merged):
            a, b = mean_of(r.get("test_weighted_f1")), mean_of(base.get("test_weighted_f1"))
            d = None if a is None or b is None else a - b
        out.append(
            [
                f"`{r.get('variant', '?')}`",
                mean_std(r.get("dev_weighted_f1")),
                mean_std(r.get("test_weighted_f1")),
                delta(d),
                mean_std(r.get("test_macro_f1")),
                mean_std(class_f1(r, "test", "fear")),
                mean_std(class_f1(r, "test", "disgust")),
                num(r.get("epoch_ratio_vs_ce"), ".2f", "x"),
            ]
        )
    text = md_table(
        [
            "variant",
            "dev wF1",
            "test wF1",
            f"Δ test wF1 vs {base_name}",
            "test macro F1",
            "test fear F1",
            "test disgust F1",
            f"epoch vs {base_name}",
        ],
        out,
    )
    notes = []
    if data.get("seeds"):
        notes.append(f"Seeds {', '.join(str(s) for s in data['seeds'])}.")
    targets = data.get("targets") or {}
    keys = ("test_fear_f1_min", "test_disgust_f1_min", "test_weighted_f1_loss_max")
    if all(k in targets for k in keys):
        fear, disgust, loss = (targets[k] for k in keys)

        def meets(r: Mapping[str, Any]) -> bool:
            f, g = mean_of(class_f1(r, "test", "fear")), mean_of(class_f1(r, "test", "disgust"))
            d = r.get(f"test_weighted_f1_delta_vs_{base_name}")
            return None not in (f, g, d) and f >= fear and g >= disgust and d >= -loss

        met = [f"`{r.get('variant')}`" for r in rows if meets(r)]
        notes.append(
            f"Targets: test fear F1 ≥ {fear:g} and disgust F1 ≥ {disgust:g} with at most "
            f"{loss:g} point of test wF1 lost against `{base_name}`; met by "
            f"{', '.join(met) or 'none'}."
        )
    if data.get("best_single") and data.get("cberl_beats_best_single_macro_f1") is not None:
        verdict = "beats" if data["cberl_beats_best_single_macro_f1"] else "does not beat"
        notes.append(
            f"On test macro F1 the full `cberl` configuration {verdict} the best single "
            f"imbalance setting of the run (`{data['best_single']}`)."
        )
    ratio = targets.get("epoch_ratio_max")
    if ratio:
        slow = [
            f"`{r['variant']}` {r['epoch_ratio_vs_ce']:.2f}x"
            for r in rows
            if r.get("variant") in ("gan", "joint_vae", "cberl") and r.get("epoch_ratio_vs_ce")
        ]
        if slow:
            notes.append(
                f"Epoch time against `{base_name}` (target ≤ {ratio:g}x): {', '.join(slow)}."
            )
    gan = next((r for r in rows if r.get("gan_s")), None)
    if gan:
        notes.append(f"GAN training, once per run and apart from the epochs: {gan['gan_s']:.0f} s.")
    return text + ("\n\n" + " ".join(notes) if notes else "")


@table("imbalance")
def imbalance(data: Mapping[str, Any]) -> str:
    return _imbalance_table(data)


@table("imbalance_finetuned", "imbalance_finetuned_subset")
def imbalance_finetuned(data: Mapping[str, Any]) -> str:
    return _imbalance_table(data)


@table("imbalance_samplers", "imbalance")
def imbalance_samplers(data: Mapping[str, Any]) -> str:
    rows = [r for r in data.get("rows") or [] if r.get("sampler_mix")]
    natural = data.get("natural_mix") or {}
    labels = list((natural.get("share") or {}).keys())
    out = []
    for name, mix in [("natural (random)", natural)] + [
        (f"`{r['variant']}`", r["sampler_mix"]) for r in rows
    ]:
        share = mix.get("share") or {}
        out.append(
            [name]
            + [num(share.get(lab), ".1f") for lab in labels]
            + [num(mix.get("dialogues_visited"), ".0f", "%")]
        )
    return md_table(
        ["sampler"] + [f"{lab} %" for lab in labels] + ["dialogues seen per epoch"], out
    )


@table("imbalance_augmentation", "imbalance")
def imbalance_augmentation(data: Mapping[str, Any]) -> str:
    rep = next((r["augmentation"] for r in data.get("rows") or [] if r.get("augmentation")), None)
    if not rep:
        return "No augmented row in this run."
    out = []
    for name, n in (rep.get("classes") or {}).items():
        close = (rep.get("closeness") or {}).get(name) or {}
        out.append(
            [
                name,
                num(n, "d"),
                num(close.get("generated_to_train"), ".2f"),
                num(close.get("dev_to_train"), ".2f"),
            ]
        )
    text = md_table(
        [
            "class",
            "generated",
            "generated → nearest train (same class)",
            "real dev → nearest train (same class)",
        ],
        out,
    )
    skipped = rep.get("skipped") or {}
    note = f"Placement `{rep.get('placement')}`; GAN {num(rep.get('gan_s'), '.0f')} s."
    if skipped:
        note += " Skipped (too few training examples): " + ", ".join(skipped) + "."
    return text + "\n\n" + note


@table("ablation")
def ablation(data: Mapping[str, Any]) -> str:
    rows = list(data.get("rows") or [])
    out = [
        [
            f"`{r.get('variant', '?')}`",
            str(r.get("edge_types", DASH)),
            mean_std(r.get("dev_weighted_f1")),
            mean_std(r.get("test_weighted_f1")),
            delta(r.get("delta_test_wf1_vs_full")),
            mean_std(r.get("test_macro_f1")),
            mean_std(class_f1(r, "test", "fear")),
            mean_std(class_f1(r, "test", "disgust")),
            num(r.get("train_s"), ".0f"),
            num(100 * r["pairs_fraction"], ".0f", "%") if "pairs_fraction" in r else DASH,
        ]
        for r in rows
    ]
    text = md_table(
        [
            "variant",
            "edge types",
            "dev wF1",
            "test wF1",
            "Δ test wF1 vs full",
            "test macro F1",
            "test fear F1",
            "test disgust F1",
            "train s",
            "utterance pairs kept",
        ],
        out,
    )
    seeds = data.get("seeds")
    seeds = seeds.split(",") if isinstance(seeds, str) else seeds or []
    notes = (
        [f"Mode: `{data['mode']}`."]
        if data.get("mode")
        else ["Mode not recorded: relation names were dropped (`relations` mode)."]
    )
    if seeds:
        notes.append(f"Seeds {', '.join(str(s) for s in seeds)}.")
    if data.get("wall_s") is not None:
        sentence = f"Wall time {data['wall_s'] / 60:.1f} min for {len(rows)} variants"
        if data.get("wall_over_full_train") is not None:
            sentence += f", {data['wall_over_full_train']:.1f}x the training time of `full`"
        if "features_cached" in data:
            sentence += (
                "; features from the cache" if data["features_cached"] else "; features extracted"
            )
        notes.append(sentence + ".")
    return text + ("\n\n" + " ".join(notes) if notes else "")


@table("graph_speed")
def graph_speed(data: Mapping[str, Any]) -> str:
    rows = list(data.get("rows") or [])
    dialogues = (data.get("corpus") or {}).get("dialogues")
    out = [
        [
            str(r.get("config", "?")),
            num(r.get("edges"), ","),
            num(r.get("edges_built"), ","),
            num(r.get("vectorised_edges_s"), ".4f"),
            num(r.get("naive_s"), ".3f"),
            num(r.get("speedup"), ".0f", "x"),
            num(r.get("build_graphs_s"), ".3f"),
            num(r.get("build_graphs_cached_s"), ".3f"),
        ]
        for r in rows
    ]
    text = md_table(
        [
            f"graph (all {dialogues} MELD dialogues)" if dialogues else "graph",
            "edges",
            "edges built",
            "vectorised builders s",
            "per-edge Python loop s",
            "speed-up",
            "build_graphs with HeteroData s",
            "build_graphs, cache hit s",
        ],
        out,
    )
    notes = []
    reps = data.get("repeats") or {}
    if reps:
        notes.append(
            f"Best of {reps.get('vectorised', DASH)} (vectorised) and of "
            f"{reps.get('naive', DASH)} (loop) repeats in the same invocation."
        )
    checks = []
    if rows and all(r.get("edge_sets_identical") for r in rows):
        checks.append("identical edge sets")
    if rows and all(r.get("edge_sharing_identical") for r in rows):
        checks.append("identical sharing of edge tensors across edge types")
    if checks:
        notes.append(f"Asserted: {' and '.join(checks)}.")
    targets = data.get("targets") or {}
    if "speedup_min" in targets:
        met = "met" if targets.get("speedup_met") else "missed"
        notes.append(f"Target speed-up ≥ {targets['speedup_min']:g}x: {met}.")
    if "build_graphs_max_s" in targets:
        met = "met" if targets.get("build_graphs_met") else "missed"
        notes.append(f"Target build_graphs < {targets['build_graphs_max_s']:g} s: {met}.")
    return text + ("\n\n" + " ".join(notes) if notes else "")


def _met(flag: Any) -> str:
    return "met" if flag else "missed"


@table("scale_epoch", "scale")
def scale_epoch(data: Mapping[str, Any]) -> str:
    part = data.get("epoch") or {}
    rows = list(part.get("rows") or [])
    out = [
        [
            str(r.get("trainer", "?")),
            num(r.get("epoch_s"), ".2f"),
            num(r.get("epoch_ratio"), ".2f", "x"),
            num(r.get("VmHWM"), ".0f"),
            num(r.get("working_mb"), ".0f"),
            num(r.get("working_ratio"), ".2f", "x"),
        ]
        for r in rows
    ]
    text = md_table(
        [
            "trainer (MELD structure, 3 modalities, 1 thread)",
            "epoch s",
            "epoch vs reference",
            "peak RSS MiB",
            "working MiB (above the torch + PyG import)",
            "working vs reference",
        ],
        out,
    )
    build = part.get("build") or {}
    notes = []
    if build:
        flat, listed = build.get("build_graph_set_s"), build.get("build_graphs_s")
        notes.append(
            f"All-MELD graph build ({num(build.get('dialogues'), 'd')} dialogues, "
            f"{num(build.get('edges'), ',')} edges, 3 modalities, best of 5): "
            f"`build_graph_set` (what training batches from) {num(flat, '.3f')} s, "
            f"`build_graphs` (one HeteroData per dialogue) {num(listed, '.3f')} s."
        )
    t = part.get("targets") or {}
    if t:
        notes.append(
            f"Targets, ercgraph's MMGCN against the reference (the same architecture): epoch "
            f"≤ {t.get('epoch_ratio_max')}x {_met(t.get('epoch_met'))}; working memory "
            f"≤ {t.get('working_ratio_max')}x {_met(t.get('working_met'))}; graph build "
            f"< {num(t.get('build_max_s'), '.2f')} s {_met(t.get('build_met'))}."
        )
    return text + ("\n\n" + " ".join(notes) if notes else "")


@table("scale_curve", "scale")
def scale_curve(data: Mapping[str, Any]) -> str:
    part = data.get("curve") or {}
    rows = list(part.get("rows") or [])
    out = [
        [
            num(r.get("utterances"), ","),
            num(r.get("dialogues"), ","),
            num(r.get("edges"), ","),
            num(r.get("build_s"), ".3f"),
            num(r.get("epoch_s"), ".1f"),
            num(r.get("VmHWM"), ".0f"),
            num(r.get("RssAnon"), ".0f"),
        ]
        for r in rows
    ]
    text = md_table(
        [
            "utterances",
            "dialogues",
            "edges",
            "graph build s",
            "epoch s",
            "peak RSS MiB",
            "anonymous RSS at the end MiB",
        ],
        out,
    )
    exp = part.get("exponents") or {}
    notes = []
    if exp:
        notes.append(
            "Fitted exponents against utterances (log-log): graph build "
            f"{num(exp.get('build_s'), '.2f')}, epoch {num(exp.get('epoch_s'), '.2f')}, "
            f"edges {num(exp.get('edges'), '.2f')}, working memory "
            f"{num(exp.get('working_mb'), '.2f')}."
        )
    if part.get("largest_within_24_gib") is not None:
        notes.append(
            f"The largest corpus within 24 GiB: {'yes' if part['largest_within_24_gib'] else 'no'}."
        )
    return text + ("\n\n" + " ".join(notes) if notes else "")


@table("scale_parallel", "scale")
def scale_parallel(data: Mapping[str, Any]) -> str:
    ddp, ext = data.get("ddp") or {}, data.get("extract") or {}
    out = []
    for r in ddp.get("rows") or []:
        out.append(
            [
                f"train, {num(ddp.get('utterances'), ',')} utterances",
                num(r.get("processes"), "d"),
                num(r.get("epoch_s"), ".2f"),
                num(r.get("test_weighted_f1"), ".2f"),
            ]
        )
    for r in ext.get("rows") or []:
        out.append(
            [
                f"extract {ext.get('encoder', '?')}, {num(ext.get('clips'), 'd')} EmoDB clips",
                num(r.get("processes"), "d"),
                num(r.get("seconds"), ".1f"),
                DASH,
            ]
        )
    text = md_table(["job", "processes", "seconds (train: one epoch)", "test wF1"], out)
    notes = []
    if ddp:
        notes.append(
            f"DDP speed-up {num(ddp.get('speedup'), '.2f')}x on 2 cores; communication share "
            f"of the 2-process epoch about {num(100 * ddp['communication_share'], '.0f')}% "
            f"(the gradient all-reduce of {num(ddp.get('parameters'), ',')} parameters, "
            f"{num(1000 * ddp['allreduce_s_per_step'], '.1f')} ms per step, times "
            f"{num(ddp.get('steps_per_epoch'), 'd')} steps)."
            if "communication_share" in ddp
            else f"DDP speed-up {num(ddp.get('speedup'), '.2f')}x."
        )
    if ext:
        same = "bit-identical" if ext.get("identical") else "NOT identical"
        notes.append(
            f"Extraction speed-up {num(ext.get('speedup'), '.2f')}x (wall time, process start "
            f"included); the {num(ext.get('chunks'), 'd')} cached chunks are {same}."
        )
    if data.get("gpu"):
        notes.append(f"GPU: {data['gpu']}.")
    return text + ("\n\n" + " ".join(notes) if notes else "")


@table("extract_throughput")
def extract_throughput(data: Mapping[str, Any]) -> str:
    rows = list(data.get("rows") or [])
    out = [
        [
            str(r.get("modality", "?")),
            str(r.get("encoder", "?")),
            num(r.get("dim"), "d"),
            num(r.get("utt_per_s_1w"), ".1f"),
            num(r.get("utt_per_s_2w"), ".1f"),
            num(r.get("speedup_2w"), ".2f", "x"),
            num(r.get("peak_rss_mb_so_far"), ".0f"),
        ]
        for r in rows
    ]
    text = md_table(
        [
            "modality",
            "encoder",
            "dim",
            "utt/s, in-process",
            "utt/s, 2 workers",
            "2 workers vs 1",
            "peak RSS MB (so far)",
        ],
        out,
    )
    corpora = []
    for modality, key in (("audio", "audio_corpus"), ("visual", "video_corpus")):
        if data.get(key):
            sizes = [r["utterances"] for r in rows if r.get("modality") == modality]
            n = f", {sizes[0]} utterances" if sizes and sizes[0] is not None else ""
            corpora.append(f"{modality}: {data[key]}{n}")
    return text + (f"\n\nCorpora: {'; '.join(corpora)}." if corpora else "")


@table("multimodal")
def multimodal(data: Mapping[str, Any]) -> str:
    rows = list(data.get("rows") or [])
    base = data.get("baseline", "text")
    out = []
    for r in rows:
        ratio = r.get("epoch_ratio_vs_text", 1.0 if r.get("variant") == base else None)
        out.append(
            [
                str(r.get("variant", "?")),
                num(r.get("edge_types"), "d"),
                num(r.get("edges"), ","),
                num(r.get("epoch_s")),
                num(ratio, ".2f", "x"),
                num(r.get("peak_rss_mb"), ".0f"),
            ]
        )
    text = md_table(
        ["variant", "edge types", "edges", "epoch s", "ratio vs text", "peak RSS MB"], out
    )
    notes = []
    if data.get("epochs") is not None:
        notes.append(f"{data['epochs']} epochs")
    if data.get("seeds"):
        notes.append(f"seeds {', '.join(str(s) for s in data['seeds'])}")
    if data.get("note"):
        notes.append(str(data["note"]))
    line = ("; ".join(notes) + ".") if notes else ""
    targets = data.get("targets") or {}
    if "epoch_ratio_max" in targets:
        met = "met" if targets.get("epoch_ratio_met") else "missed"
        line += f" Target: ratio ≤ {targets['epoch_ratio_max']:g}x: {met}."
    line = line[:1].upper() + line[1:]
    return text + (f"\n\n{line.strip()}" if line.strip() else "")


@table("sweep_normalise")
def sweep_normalise(data: Mapping[str, Any]) -> str:
    out = [
        [
            r.get("corpus", "?"),
            r.get("setting", "?"),
            mean_std(r.get("dev_weighted_f1")),
            mean_std(r.get("dev_accuracy")),
        ]
        for r in data.get("rows") or []
    ]
    seeds = ", ".join(str(x) for x in data.get("seeds") or [])
    text = md_table(["corpus", "setting", "dev wF1", "dev acc"], out)
    return text + f"\n\nDev split only (seeds {seeds}); test is not read by this sweep."


@table("sweep_meld_frozen")
def sweep_meld_frozen(data: Mapping[str, Any]) -> str:
    grid = list((data.get("grid") or {}).keys())
    out = [
        [str(r.get(k, DASH)) for k in grid]
        + [
            mean_std(r.get("dev_weighted_f1")),
            mean_std(r.get("dev_macro_f1")),
            "shipped" if r.get("shipped") else "",
        ]
        for r in data.get("rows") or []
    ]
    best = data.get("best_on_dev") or {}
    seeds = ", ".join(str(x) for x in data.get("seeds") or [])
    text = md_table([f"`{k}`" for k in grid] + ["dev wF1", "dev macro F1", ""], out)
    note = ", ".join(f"`{k}={v}`" for k, v in best.items())
    return text + (
        f"\n\nDev split only (seeds {seeds}); test is not read by this sweep. Best on dev: {note}."
    )


@table("emobank")
def emobank(data: Mapping[str, Any]) -> str:
    def ccc(v: Any) -> str:
        if isinstance(v, Mapping):
            return f"{v['mean']:.3f} ± {v['std']:.3f}"
        return DASH

    out = [
        [
            r.get("model", "?"),
            ccc(r.get("dev_ccc")),
            ccc(r.get("test_ccc_valence")),
            ccc(r.get("test_ccc_arousal")),
            ccc(r.get("test_ccc_dominance")),
            ccc(r.get("test_ccc")),
            num(r.get("epoch_s")),
        ]
        for r in data.get("rows") or []
    ]
    seeds = data.get("seeds", "")
    return (
        md_table(
            [
                "model",
                "dev CCC (mean)",
                "test CCC V",
                "test CCC A",
                "test CCC D",
                "test CCC mean",
                "epoch s",
            ],
            out,
        )
        + f"\n\nSeeds {seeds}; each ridge baseline is one fit (alpha chosen on dev CCC)."
        + finetune_note(data.get("finetuned") or {})
    )


def jobs_note(data: Mapping[str, Any]) -> str:
    """How many runs shared the machine while the epoch times were measured."""
    jobs = data.get("jobs")
    if not jobs or jobs == 1:
        return ""
    return (
        f" {jobs} runs went at once, each a one-thread process on its own core; every epoch "
        "time above was measured that way."
    )


def finetune_note(ft: Mapping[str, Any]) -> str:
    """How the fine-tuned encoder of the EmoBank table was made, from its feature record."""
    seconds = (ft.get("finetune") or {}).get("seconds")
    if not ft:
        return ""
    return (
        " The fine-tuned rows read MiniLM fine-tuned on the training sentences to regress V/A/D "
        "with the CCC loss, the epoch picked by dev mean CCC"
        + (f" ({num(seconds, '.0f')} s of fine-tuning)" if seconds is not None else "")
        + "."
    )


@table("methods_planted", "methods")
def methods_planted(data: Mapping[str, Any]) -> str:
    planted = data.get("planted") or {}
    out = [
        [
            r.get("method", "?"),
            mean_std(r.get("test_accuracy")),
            mean_std(r.get("dev_accuracy")),
            num(r.get("epoch_s")),
        ]
        for r in planted.get("rows") or []
    ]
    return md_table(["method", "test accuracy", "dev accuracy", "epoch s"], out) + (
        f"\n\nChance is {num(planted.get('chance'), '.0f')}; seeds "
        f"{planted.get('seeds', '')}; mean ± std over seeds." + jobs_note(data)
    )


@table("methods_ravdess", "methods")
def methods_ravdess(data: Mapping[str, Any]) -> str:
    rav = data.get("ravdess") or {}
    rows = rav.get("rows") or []
    gcn = next((r.get("epoch_s") for r in rows if r.get("method") == "hierarchical GCN"), None)

    def ratio(r: Mapping[str, Any]) -> str:
        e = r.get("epoch_s")
        return f"{e / gcn:.1f}×" if e is not None and gcn else DASH

    out = [
        [
            r.get("method", "?"),
            f"`{r.get('config', '')}`" + "".join(f" `{o}`" for o in r.get("overrides") or []),
            mean_std(r.get("test_accuracy")),
            mean_std(r.get("test_unweighted_accuracy")),
            mean_std(r.get("test_macro_f1")),
            mean_std(r.get("dev_accuracy")),
            num(r.get("epoch_s")),
            ratio(r),
            num(r.get("peak_rss_mb"), ".0f"),
            r.get("paper", ""),
        ]
        for r in rows
    ]
    lrs = rav.get("logistic_regression") or {}
    if "model" in lrs:  # one baseline (results written before speaker normalisation)
        lrs = {"standard": lrs}
    for how, lr in lrs.items():
        out.append(
            [
                lr.get("model", "logistic regression"),
                DASH,
                mean_std(lr.get("test_accuracy")),
                mean_std(lr.get("test_unweighted_accuracy")),
                mean_std(lr.get("test_macro_f1")),
                DASH,
                DASH,
                DASH,
                DASH,
                f"concatenated features ({how}), same folds, C chosen on dev",
            ]
        )
    return md_table(
        [
            "method",
            "config",
            "test accuracy",
            "test UA",
            "test macro F1",
            "dev accuracy",
            "epoch s",
            "× GCN epoch",
            "peak RSS MB",
            "the paper's setting",
        ],
        out,
    ) + (
        f"\n\n{rav.get('protocol', '')}; seeds {data.get('seeds', '')}; mean ± std over folds "
        "of each fold's mean over seeds." + jobs_note(data)
    )


@table("methods_targets", "methods")
def methods_targets(data: Mapping[str, Any]) -> str:
    """The issue's targets against what this run measured, computed from the JSON."""
    planted = data.get("planted") or {}
    chance = planted.get("chance", 50.0)
    prow = planted.get("rows") or []
    single = [r for r in prow if " only " in r.get("method", "")]
    fusion = [r for r in prow if r not in single]
    rav = data.get("ravdess") or {}
    rows = rav.get("rows") or []
    lrs = rav.get("logistic_regression") or {}
    if "model" in lrs:
        lrs = {"standard": lrs}

    def acc(r: Mapping[str, Any]) -> float:
        return float(r["test_accuracy"]["mean"])

    out = []
    if fusion:
        low = min(fusion, key=acc)
        failing = [r["method"] for r in fusion if acc(r) < 95.0]
        out.append(
            [
                "planted: every fusion method ≥ 95",
                f"lowest {acc(low):.2f} ({low['method']})",
                "missed: " + ", ".join(failing) if failing else "met",
            ]
        )
    if single:
        far = max(single, key=lambda r: abs(acc(r) - chance))
        out.append(
            [
                f"planted: each single modality within 5 of chance ({chance:.0f})",
                f"farthest {acc(far):.2f} ({far['method']})",
                "met" if abs(acc(far) - chance) <= 5.0 else "missed",
            ]
        )
    gcn = next((r for r in rows if r.get("method") == "hierarchical GCN"), None)
    methods = [r for r in rows if r.get("method") != "context-free MLP"]
    for how, lr in lrs.items():
        base = float(lr["test_accuracy"]["mean"])
        below = [r["method"] for r in methods if acc(r) <= base]
        out.append(
            [
                f"RAVDESS: every method beats logistic regression ({how} features)",
                f"regression {base:.2f}; methods {min(map(acc, methods)):.2f} to "
                f"{max(map(acc, methods)):.2f}",
                "met" if not below else f"missed by {len(below)} of {len(methods)}",
            ]
        )
    if methods:
        best = max(methods, key=acc)
        out.append(
            [
                "RAVDESS: the best method ≥ 65 accuracy (the MLP baseline aside)",
                f"{acc(best):.2f} ({best['method']})",
                "met" if acc(best) >= 65.0 else "missed",
            ]
        )
        foal = {r["method"]: acc(r) for r in methods if r["method"].startswith("Foal-Net")}
        if len(foal) > 1:
            out.append(
                [
                    "RAVDESS: Foal-Net with and without alignment, same run",
                    "; ".join(f"{k} {v:.2f}" for k, v in foal.items()),
                    "reported",
                ]
            )
    if gcn and gcn.get("epoch_s"):
        worst = max(rows, key=lambda r: r.get("epoch_s") or 0.0)
        ratio = worst["epoch_s"] / gcn["epoch_s"]
        out.append(
            [
                "cost: no method above 3× the hierarchical GCN's epoch (RAVDESS)",
                f"largest {ratio:.2f}× ({worst['method']})",
                "met" if ratio <= 3.0 else "missed",
            ]
        )
    return md_table(["target", "measured", "verdict"], out)


@table("sweep_ravdess")
def sweep_ravdess(data: Mapping[str, Any]) -> str:
    out = [
        [
            r.get("setting", "?"),
            f"`{r.get('config', '')}`",
            num(r.get("dev_accuracy")),
            num(r.get("dev_accuracy_std_over_folds")),
            num(r.get("dev_unweighted_accuracy")),
            num(r.get("epoch_s")),
        ]
        for r in data.get("rows") or []
    ]
    return md_table(
        ["setting", "config", "dev accuracy", "std over folds", "dev UA", "epoch s"], out
    ) + (
        f"\n\nDev actors only (seeds {data.get('seeds', '')}); test is not read by this sweep. "
        f"Best on dev: {data.get('best_on_dev', DASH)}."
    )


def _param(value: Any) -> str:
    """A swept value for a table cell: a mapping or list choice (kept as its JSON text) in
    YAML-like flow style, a float to 3 significant digits."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            value = json.loads(value)
        except ValueError:
            return f"`{value}`"
    if isinstance(value, (dict, list)):
        return "`" + json.dumps(value, separators=(", ", ": ")).replace('"', "") + "`"
    if isinstance(value, float):
        return f"{value:.3g}"
    return DASH if value is None else str(value)


def sweep_optuna(data: Mapping[str, Any]) -> str:
    """Any ``bench/sweep.py`` result: every trial's parameters, dev score and state, the best on
    dev marked, and its test score (scored once, after the sweep)."""
    metric = data.get("select_metric", "?")
    params = list(((data.get("space_spec") or {}).get("params") or {}).keys())
    best = data.get("best") or {}
    trials = sorted(data.get("trials") or [], key=lambda r: r.get("trial", 0))
    out = [
        [str(r.get("trial", "?"))]
        + [_param((r.get("params") or {}).get(k)) for k in params]
        + [
            num(r.get("dev")),
            str(r.get("state", "?")).lower(),
            str(r.get("epochs") or DASH),
            "**best**" if best and r.get("trial") == best.get("trial") else "",
        ]
        for r in trials
    ]
    text = md_table(
        ["trial", *[f"`{k}`" for k in params], f"dev {metric}", "state", "epochs", ""], out
    )
    seeds = ", ".join(str(x) for x in data.get("seeds") or [])
    how = "pruned by the median pruner" if data.get("pruning") else "every trial trained to the end"
    line = (
        f"{str(data.get('sampler', '?')).capitalize()} sampler over `{data.get('space', '?')}` "
        f"on `{data.get('config', '?')}`, seeds {seeds}, {how}; dev only for every trial; epochs "
        "over all seeds (and folds)"
    )
    if best:
        line += (
            f". Best on dev: trial {best.get('trial')} (dev {num(best.get('dev'))}); its test "
            f"{metric}, scored once after the sweep: {num(best.get('test'))}"
        )
    return text + f"\n\n{line}."


table("sweep_meld_frozen_optuna")(sweep_optuna)
table("sweep_ravdess_optuna")(sweep_optuna)


@table("sweep_pruning")
def sweep_pruning(data: Mapping[str, Any]) -> str:
    """``bench/sweep_pruning.py``: the pruned sweep against the same parameter sets unpruned and
    against the shipped values, with the two targets."""
    metric = (data.get("pruned") or {}).get("select_metric", "?")
    rows = []
    for key, name in (
        ("default", "shipped values (one trial)"),
        ("pruned", "TPE, median pruner"),
        ("unpruned", "the same parameter sets, unpruned"),
    ):
        d = data.get(key) or {}
        counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted((d.get("counts") or {}).items()))
        wall = d.get("wall_s")
        rows.append(
            [
                name,
                counts or DASH,
                str(d.get("epochs_trained", DASH)),
                num(None if wall is None else wall / 60, ".1f"),
                num((d.get("best") or {}).get("dev")),
            ]
        )
    text = md_table(["sweep", "trials", "epochs trained", "wall min", f"best dev {metric}"], rows)

    def verdict(flag: Any) -> str:
        return DASH if flag is None else "met" if flag else "missed"

    best = (data.get("pruned") or {}).get("best") or {}
    chosen = ", ".join(f"`{k}={_param(v)}`" for k, v in (best.get("params") or {}).items())
    seeds = ", ".join(str(x) for x in data.get("seeds") or [])
    return (
        text
        + (
            f"\n\nSeeds {seeds} a trial, `--jobs {data.get('jobs', DASH)}`, one invocation. Wall "
            f"time pruned / unpruned: {num(data.get('wall_ratio'))} (target at most 0.5: "
            f"{verdict(data.get('wall_ratio_met'))}); epochs trained pruned / unpruned: "
            f"{num(data.get('epochs_ratio'))}. Best dev of the pruned sweep against the shipped "
            f"values: {num(data.get('best_dev'))} vs {num(data.get('default_dev'))} (target at "
            f"least as good: {verdict(data.get('best_dev_at_least_default'))}). The best trial "
            f"({chosen or DASH}) on test, scored once: {num(data.get('best_test'))}."
        )
        + _pruned_best(data, best)
    )


def _pruned_best(data: Mapping[str, Any], best: Mapping[str, Any]) -> str:
    """Whether the pruner stopped the set that, trained to the end, would have been best."""
    top = data.get("unpruned_best") or {}
    if not top or top.get("trial") is None or top.get("trial") == best.get("trial"):
        return ""
    rows = (data.get("pruned") or {}).get("trials") or []
    states = {r.get("trial"): r.get("state") for r in rows}
    fate = "which the pruner stopped" if states.get(top["trial"]) == "PRUNED" else "not the best"
    return (
        f" Trained to the end, the same sets put trial {top['trial']} first (dev "
        f"{num(top.get('dev'))}), {fate} in the pruned sweep."
    )


@table("protocols_ravdess", "protocols")
def protocols_ravdess(data: Mapping[str, Any]) -> str:
    rav = data.get("ravdess") or {}
    out = [
        [
            r.get("model", "?"),
            mean_std(r.get("test_accuracy")),
            mean_std(r.get("test_unweighted_accuracy")),
            mean_std(r.get("test_macro_f1")),
            mean_std(r.get("dev_accuracy")),
            num(r.get("epoch_s")),
        ]
        for r in rav.get("rows") or []
    ]
    cost = data.get("cv_cost") or {}
    return md_table(
        ["model", "test accuracy (WA)", "test UA", "test macro F1", "dev accuracy", "epoch s"],
        out,
    ) + (
        f"\n\n{rav.get('protocol', '')}; seeds {data.get('seeds', '')}. Logistic regression: "
        "standardised on each fold's training actors, C chosen on its dev actors. "
        f"Cross-validation cost: features read once ({num(cost.get('features_s_once'))} s), "
        f"{cost.get('folds', DASH)} folds in {num(cost.get('wall_s'), '.0f')} s for the GCN."
    )


@table("protocols")
def protocols(data: Mapping[str, Any]) -> str:
    lit = data.get("literature") or {}

    def measured(row: Mapping[str, Any]) -> str:
        got = row.get("measured")
        if not got:
            return "not measured here"
        names = {
            "accuracy": "acc",
            "unweighted_accuracy": "UA",
            "weighted_f1": "wF1",
            "micro_f1": "micro F1",
            "ccc_valence": "V",
            "ccc_arousal": "A",
            "ccc_dominance": "D",
        }
        parts = []
        for key, value in got.items():
            digits = 3 if key.startswith("ccc") else 2
            parts.append(
                f"{names.get(key, key)} {value['mean']:.{digits}f} ± {value['std']:.{digits}f}"
            )
        return ", ".join(parts)

    out = []
    for row in data.get("corpora") or []:
        ref = lit.get(row.get("key"), {})
        out.append(
            [
                row.get("corpus", "?"),
                row.get("protocol", ""),
                row.get("metric", ""),
                measured(row),
                f"`{row.get('preset', '')}`",
                ref.get("figure", DASH),
                ref.get("source", "") or DASH,
                ref.get("selected", "") or DASH,
                ref.get("differs", "") or DASH,
            ]
        )
    return md_table(
        [
            "corpus",
            "protocol",
            "metric",
            "ercgraph (test, this run)",
            "preset",
            "literature, as reported",
            "source",
            "how it was selected",
            "not like for like",
        ],
        out,
    ) + (
        f"\n\nercgraph: seeds {data.get('seeds', '')}, epoch chosen on dev; mean ± std over "
        "seeds (split protocols) or over folds (cross-validation)."
    )


# -- the README ---------------------------------------------------------------------------------
def load(stem: str, results_dir: Path = RESULTS_DIR) -> dict[str, Any]:
    path = results_dir / f"{stem}.json"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run bench/{stem}.py first")
    return json.loads(path.read_text())


def render_block(name: str, results_dir: Path = RESULTS_DIR) -> str:
    """The full marker block ``name``: comments, generated body and source line."""
    if name not in TABLES:
        raise SystemExit(f"README marker table:{name} has no renderer; known: {sorted(TABLES)}")
    stem, fn = TABLES[name]
    data = load(stem, results_dir)
    body = fn(data).rstrip() + "\n\n" + source_line(stem, data)
    return f"<!-- table:{name} -->\n{body}\n<!-- /table:{name} -->"


def render_readme(text: str, results_dir: Path = RESULTS_DIR) -> str:
    """``text`` with every marker block replaced by what its JSON generates."""
    return BLOCK.sub(lambda m: render_block(m.group("name"), results_dir), text)


def results_section(text: str) -> str:
    start = text.find(SECTION_START)
    end = text.find(SECTION_END, start + 1)
    if start < 0 or end < 0:
        raise SystemExit(f"README: no section from {SECTION_START!r} to {SECTION_END!r}")
    return text[start:end]


def stray_figures(text: str) -> list[str]:
    """Lines of the results section that state a figure outside a generated block.

    Digits inside code spans and inside words (``wav2vec2``, ``IS10``) are not figures.
    """
    section = BLOCK.sub("", results_section(text))
    out = []
    for line in section.splitlines():
        prose = re.sub(r"`[^`]*`", "", line)
        if re.search(r"\b\d", prose):
            out.append(line.strip())
    return out


def problems(text: str, results_dir: Path = RESULTS_DIR) -> list[str]:
    """Everything that makes ``text`` (a README) disagree with the JSON files; empty when none.

    Reports: a table block missing from the README or present twice, a block that differs from
    what its JSON generates (as a unified diff), and figures outside the blocks.
    """
    out = []
    names = [m.group("name") for m in BLOCK.finditer(text)]
    for name in TABLES:
        if names.count(name) != 1:
            out.append(f"README holds {names.count(name)} blocks table:{name} (expected 1)")
    expected = render_readme(text, results_dir)
    if expected != text:
        diff = difflib.unified_diff(
            text.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            "README.md",
            "README.md (generated from bench/results)",
        )
        out.append("".join(diff))
    out += [f"figure outside a generated table: {line}" for line in stray_figures(text)]
    return out


def check(readme: Path = README, results_dir: Path = RESULTS_DIR) -> list[str]:
    """:func:`problems` of the README file."""
    return problems(readme.read_text(encoding="utf-8"), results_dir)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare only; exit 1 on a difference")
    ap.add_argument("--readme", type=Path, default=README)
    ap.add_argument("--results", type=Path, default=RESULTS_DIR)
    args = ap.parse_args(argv)
    if args.check:
        found = check(args.readme, args.results)
        for item in found:
            print(item)
        return 1 if found else 0
    text = args.readme.read_text(encoding="utf-8")
    new = render_readme(text, args.results)
    if new != text:
        args.readme.write_text(new, encoding="utf-8")
        print(f"rewrote {len(BLOCK.findall(new))} tables in {args.readme}")
    stray = stray_figures(new)
    for line in stray:
        print(f"figure outside a generated table: {line}")
    return 1 if stray else 0


if __name__ == "__main__":
    sys.exit(main())
