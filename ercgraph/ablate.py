"""Edge-type ablation: the full graph and variants without some relations, over several seeds.

Features and graphs are built once with every relation; each variant keeps a subset of the
relations by filtering the already built graphs. Every variant is a normal run directory; the
ablation writes one table (markdown and CSV), the rows as JSON and a bar chart with error bars.

What a variant removes (``mode``):

* ``"pairs"`` (the default) removes *information*. The information of a relation is a set of
  utterance pairs: the pairs matching its rule (``GraphBuilder.PAIR_RULES``: ``past`` = every
  pair whose source turn precedes its target, ``same_speaker`` = every pair of turns by one
  speaker, ...), or, for a relation without a rule (a plug-in, ``cross_modal``), the node pairs
  its edges link. A variant drops the relations it does not keep *and* removes their pairs from
  every kept relation (:func:`ercgraph.graphs.build.remove_pairs`). This matters because the
  builders overlap: with the shipped configs the speaker relations link exactly the pairs of the
  temporal window, so dropping the ``past`` relation alone leaves every past pair connected
  through ``same_speaker`` / ``other_speaker`` and measures relation typing, not past context.
  In this mode ``without_past`` has no message from an earlier turn in any relation. A
  consequence: keeping only ``past+future`` drops the speaker relations' pairs, which are all
  pairs of the window, so nothing is left; the table's pair count says so.
* ``"relations"`` removes relation *names* only (a dict filter over edge types): the other
  relations keep every edge. It measures what typing the edges adds.

Each row records ``pairs_connected``, the distinct ``(src node, dst node)`` pairs (a node is an
utterance in one modality) linked by any kept relation over all splits' dialogues, and
``pairs_fraction``, that count over the full graph's; a ``relations`` variant at 100% still
passes every message the full graph passes.

``resume=True`` continues an interrupted ablation in the same folder: a variant whose run
directory finished with the same config (``metrics.json``) is reused; any other one continues
through :func:`ercgraph.train.run` with ``resume=True`` (unfinished seeds resume from their last
checkpoint; a changed ``train.epochs`` / ``train.seeds`` trains on).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ercgraph.config import Config, GraphConfig, dump_config
from ercgraph.data.features import atomic_write_bytes
from ercgraph.errors import ErcgraphError
from ercgraph.report import fmt, write_json

log = logging.getLogger(__name__)

#: What a variant removes: ``pairs`` = relations and their information, ``relations`` = names.
MODES = ("pairs", "relations")
#: Written into the ablation folder before any variant trains; ``resume`` checks its mode.
SETUP = "ablation_setup.json"


def parse_edge_type_sets(text: str | None, available: list[str]) -> list[list[str]] | None:
    """``"past+future,same_speaker"`` → ``[["past", "future"], ["same_speaker"]]``.

    Commas separate variants; ``+`` joins the relations kept in one variant; ``none`` is the
    variant without edges.
    """
    if text is None:
        return None
    sets = []
    for chunk in text.split(","):
        chunk = chunk.strip()
        if not chunk:
            continue
        names = [] if chunk == "none" else [n.strip() for n in chunk.split("+") if n.strip()]
        for n in names:
            if n not in available:
                raise ErcgraphError(
                    f"--edge-types: unknown edge type {n!r}; the configured "
                    f"builders produce: {', '.join(available)}"
                )
        # relations in the configured order, each variant once (as a set)
        names = [e for e in available if e in set(names)]
        if names not in sets:
            sets.append(names)
    if not sets:
        raise ErcgraphError("--edge-types is empty; give e.g. past+future,same_speaker")
    return sets


def variant_name(kept: list[str], full: list[str]) -> str:
    if set(kept) == set(full):
        return "full"
    dropped = [e for e in full if e not in kept]
    if len(dropped) == 1:
        return f"without_{dropped[0]}"
    return "only_" + "+".join(kept) if kept else "no_edges"


def ablate(
    cfg: Config,
    out: Path,
    edge_type_sets: str | None = None,
    *,
    mode: str = "pairs",
    resume: bool = False,
) -> list[dict[str, Any]]:
    """Run the ablation and write ``ablation.md``, ``ablation.csv``, ``ablation.json`` and
    ``ablation.png`` into ``out`` (one run directory per variant beside them).

    Args:
        cfg: The config of the full graph.
        out: The ablation folder.
        edge_type_sets: Variants as ``"past+future,same_speaker,none"`` (see
            :func:`parse_edge_type_sets`); default: the full graph and every leave-one-out
            variant.
        mode: ``"pairs"`` removes a dropped relation's information from every relation;
            ``"relations"`` removes its name only (see the module docstring).
        resume: Continue an interrupted ablation in ``out``.

    Returns:
        One row per variant (also written to ``ablation.json``).

    Raises:
        ErcgraphError: on an unknown mode or edge type, a non-empty ``out`` without ``resume``,
            or ``resume`` into a folder that is not an ablation of the same mode.
    """
    from ercgraph.graphs.build import compose
    from ercgraph.pipeline import check_config, prepare

    if mode not in MODES:
        raise ErcgraphError(f"ablate: unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    check_config(cfg)
    if cfg.protocol.name != "split":
        raise ErcgraphError(
            f"ablate runs on the split protocol (train/dev/test), this config uses protocol "
            f"{cfg.protocol.name!r}; cross-validate each variant with 'ercgraph train' and "
            "--set graph.edge_types=[...]"
        )
    comp = compose(cfg.graph.builders, cfg.graph.edge_types)
    full = list(comp.edge_types)
    sets = parse_edge_type_sets(edge_type_sets, full)
    if sets is None:
        sets = [full] + [[e for e in full if e != drop] for drop in full]
    elif full not in sets:
        sets = [full, *sets]  # every table has its same-run baseline
    names = [variant_name(kept, full) for kept in sets]
    _check_folder(out, cfg, mode, resume)
    prep = prepare(cfg)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / SETUP, {"mode": mode, "variants": dict(zip(names, sets, strict=True))})
    rules = comp.pair_rules
    full_pairs = connected_pairs(g for gs in prep.graphs.values() for g in gs)
    specs = []
    for k, (name, kept) in enumerate(zip(names, sets, strict=True), start=1):
        keep_rel = set(kept)
        graphs = {
            split: [variant_graph(g, keep_rel, mode, rules) for g in gs]
            for split, gs in prep.graphs.items()
        }
        pairs = connected_pairs(g for gs in graphs.values() for g in gs)
        edge_types = [et for et in prep.edge_types if et[1] in keep_rel]
        vprep = dataclasses.replace(prep, graphs=graphs, edge_types=edge_types)
        vcfg = dataclasses.replace(cfg, graph=_variant_graph_config(cfg.graph, kept, full, mode))
        vout = out / name
        log.info(
            "ablation variant %d/%d: %s (%s mode, edge types %s, %.1f%% of the pairs)",
            k,
            len(sets),
            name,
            mode,
            "+".join(kept) or "none",
            100 * pairs / max(full_pairs, 1),
        )
        if kept and not pairs and full_pairs:
            log.warning(
                "ablation variant %s keeps %s but no pair: the dropped relations' pairs cover "
                "every pair they link; use mode 'relations' to drop relation names only",
                name,
                "+".join(kept),
            )
        done = None
        if resume and _finished(vout, vcfg):
            log.info("ablation variant %s: finished, reusing %s", name, vout / "metrics.json")
            done = json.loads((vout / "metrics.json").read_text())
        specs.append((name, kept, pairs, vcfg, vout, vprep, done))
    todo = [
        (name, vcfg, vout, vprep, resume) for name, _, _, vcfg, vout, vprep, d in specs if d is None
    ]
    if cfg.train.jobs > 1 and len(todo) > 1:
        from ercgraph.parallel import fork_map

        # the variants go at once; each trains its seeds one after another (no nested pools)
        todo = [(n, _serial(c), o, p, r) for n, c, o, p, r in todo]
        log.info("ablation: %d variants, %d at once", len(todo), min(cfg.train.jobs, len(todo)))
        ran = fork_map(_run_variant, todo, len(todo), cfg.train.jobs, cfg.train.threads or 1)
    else:
        ran = [_run_variant(todo, i) for i in range(len(todo))]
    finished = dict(zip([t[0] for t in todo], ran, strict=True))
    rows = []
    for name, kept, pairs, _, _, _, done in specs:
        m = done if done is not None else finished[name]
        rows.append(
            {
                "variant": name,
                "edge_types": "+".join(kept) or "none",
                "mode": mode,
                "pairs_connected": pairs,
                "pairs_fraction": pairs / full_pairs if full_pairs else 0.0,
                "dev_weighted_f1": m["dev"]["weighted_f1"],
                "test_weighted_f1": m["test"]["weighted_f1"],
                "test_macro_f1": m["test"]["macro_f1"],
                "test_fear_f1": _cls(m, "fear"),
                "test_disgust_f1": _cls(m, "disgust"),
            }
        )
    write_ablation(rows, out, len(cfg.train.seeds))
    return rows


def _serial(cfg: Config) -> Config:
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, jobs=1))


def _run_variant(todo: list[tuple], i: int) -> dict[str, Any]:
    """Train variant ``i`` of ``todo`` (name, config, folder, prepared graphs, resume)."""
    from ercgraph.train import run

    name, vcfg, vout, vprep, resume = todo[i]
    with _variant_logs(name):
        return run(vcfg, vout, resume=resume, prep=vprep)


def _check_folder(out: Path, cfg: Config, mode: str, resume: bool) -> None:
    """A fresh ablation needs an empty ``out``; a resumed one an ablation of the same mode."""
    from ercgraph.rundir import check_out_dir

    if not resume or not out.exists() or not any(out.iterdir()):
        check_out_dir(out, cfg, resume=False)
        return
    setup = out / SETUP
    try:
        saved = json.loads(setup.read_text())
    except (OSError, ValueError):
        raise ErcgraphError(
            f"--resume: {str(out)!r} is not an ablation folder (no readable {SETUP}); "
            "nothing to resume"
        ) from None
    if saved.get("mode") != mode:
        raise ErcgraphError(
            f"--resume: the ablation in {str(out)!r} ran in mode {saved.get('mode')!r}, not "
            f"{mode!r}; resume it with --mode {saved.get('mode')} or choose another --out"
        )


def _variant_graph_config(
    graph: GraphConfig, kept: list[str], full: list[str], mode: str
) -> GraphConfig:
    """The variant's graph section: the kept relations and, in pairs mode, the dropped ones
    (when the config has ``graph.drop_pairs``, so evaluate/predict rebuild the same graphs)."""
    out = dataclasses.replace(graph, edge_types=list(kept))
    if mode == "pairs" and any(f.name == "drop_pairs" for f in dataclasses.fields(GraphConfig)):
        out = dataclasses.replace(out, drop_pairs=[e for e in full if e not in kept])
    return out


def _finished(vout: Path, vcfg: Config) -> bool:
    """A variant's run finished with exactly this config (anything else goes through
    :func:`ercgraph.train.run`, which resumes it or refuses a different config)."""
    from ercgraph.rundir import CONFIG, check_out_dir

    if not (vout / "metrics.json").is_file():
        return False
    check_out_dir(vout, vcfg, resume=True)  # a different config is an error, never reused
    return (vout / CONFIG).read_text() == dump_config(vcfg)


class _VariantTag(logging.Filter):
    """Prefix the trainer's log lines with the variant being trained."""

    def __init__(self, variant: str) -> None:
        super().__init__()
        self.prefix = f"[{variant.replace('%', '%%')}] "

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.prefix):
            record.msg = self.prefix + str(record.msg)
        return True


@contextlib.contextmanager
def _variant_logs(variant: str) -> Iterator[None]:
    logger = logging.getLogger("ercgraph.train")
    tag = _VariantTag(variant)
    logger.addFilter(tag)
    try:
        yield
    finally:
        logger.removeFilter(tag)


def variant_graph(graph: Any, keep: set[str], mode: str, rules: Mapping[str, Sequence[str]]) -> Any:
    """One dialogue graph as a variant sees it (a shallow copy; the input is untouched).

    Args:
        graph: A ``HeteroData`` dialogue graph with every relation.
        keep: The relations the variant keeps.
        mode: ``"relations"``: drop the other relations' edge types; ``"pairs"``: also remove
            their pairs from the kept relations (:func:`ercgraph.graphs.build.remove_pairs`).
        rules: Relation -> pair rule (``Composition.pair_rules``).
    """
    if mode == "relations":
        return keep_relations(graph, keep)
    from ercgraph.graphs.build import remove_pairs

    drop = {et[1] for et in graph.edge_types} - keep
    if not drop:
        return copy.copy(graph)
    edges = {et: graph[et].edge_index for et in graph.edge_types}
    kept = remove_pairs(edges, graph.speaker, drop, rules)
    sub = copy.copy(graph)
    for et in graph.edge_types:
        if et not in kept:
            del sub[et]
        elif kept[et] is not edges[et]:
            sub[et].edge_index = kept[et]
    return sub


def connected_pairs(graphs: Iterable[Any]) -> int:
    """Distinct ``(src node, dst node)`` pairs linked by any edge type, summed over dialogue
    graphs (a node is one utterance in one modality)."""
    total = 0
    for g in graphs:
        n = int(g.speaker.numel())
        mods = {m: i for i, m in enumerate(g.node_types)}
        keys = [
            ((mods[a] * len(mods) + mods[b]) * n + g[a, r, b].edge_index[0]) * n
            + g[a, r, b].edge_index[1]
            for a, r, b in g.edge_types
        ]
        if keys:
            total += int(torch.unique(torch.cat(keys)).numel())
    return total


def keep_relations(graph: Any, keep: set[str]) -> Any:
    """A shallow copy of a dialogue graph without the edge types whose relation is not kept
    (node stores stay, even when no edge touches them)."""
    sub = copy.copy(graph)
    for et in list(sub.edge_types):
        if et[1] not in keep:
            del sub[et]
    return sub


def _cls(m: dict, label: str) -> dict[str, float] | None:
    pc = m["test"]["per_class"].get(label)
    return {"mean": pc["f1"], "std": pc["f1_std"]} if pc else None


#: What each mode means, for the table's first line.
_MODE_NOTE = {
    "pairs": "a dropped relation's pairs are removed from every relation",
    "relations": "only the dropped relation names are removed; other relations keep their edges",
}


def write_ablation(rows: list[dict[str, Any]], out: Path, n_seeds: int) -> None:
    """The table as markdown and CSV, the bar chart, and the rows as JSON."""
    cols = [
        ("dev_weighted_f1", "dev wF1"),
        ("test_weighted_f1", "test wF1"),
        ("test_macro_f1", "test macro F1"),
        ("test_fear_f1", "test fear F1"),
        ("test_disgust_f1", "test disgust F1"),
    ]
    mode = rows[0]["mode"] if rows else "pairs"
    md = [
        f"Edge-type ablation ({mode} mode: {_MODE_NOTE[mode]}), mean ± std over {n_seeds} "
        "seed(s); model selection on dev. Pairs: node pairs still linked by some relation, and "
        "their share of the full graph's.",
        "",
        "| variant | edge types | pairs | " + " | ".join(c[1] for c in cols) + " |",
        "|---|---|---|" + "---|" * len(cols),
    ]
    csv = [
        "variant,edge_types,mode,pairs_connected,pairs_fraction,"
        + ",".join(f"{c[0]}_mean,{c[0]}_std" for c in cols)
    ]
    for r in rows:
        md.append(
            f"| {r['variant']} | {r['edge_types']} | "
            f"{r['pairs_connected']:,} ({100 * r['pairs_fraction']:.1f}%) | "
            + " | ".join(fmt(r[c]) if r[c] else "n/a" for c, _ in cols)
            + " |"
        )
        csv.append(
            f"{r['variant']},{r['edge_types']},{r['mode']},{r['pairs_connected']},"
            f"{r['pairs_fraction']:.6f},"
            + ",".join(f"{r[c]['mean']:.4f},{r[c]['std']:.4f}" if r[c] else "," for c, _ in cols)
        )
    atomic_write_bytes(out / "ablation.md", ("\n".join(md) + "\n").encode())
    atomic_write_bytes(out / "ablation.csv", ("\n".join(csv) + "\n").encode())
    write_json(out / "ablation.json", rows)
    _bar_chart(rows, out / "ablation.png")


def _bar_chart(rows: list[dict[str, Any]], path: Path) -> None:
    """Dev and test weighted F1 per variant with error bars; the y axis starts at 0 so bar
    heights compare, and each label gives the share of the full graph's pairs kept."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ercgraph.report import _save_fig

    names = [f"{r['variant']}\n{100 * r['pairs_fraction']:.0f}% of pairs" for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows)), 4))
    for i, (key, label) in enumerate(
        [("dev_weighted_f1", "dev wF1"), ("test_weighted_f1", "test wF1")]
    ):
        ax.bar(
            x + (i - 0.5) * 0.38,
            [r[key]["mean"] for r in rows],
            0.38,
            yerr=[r[key]["std"] for r in rows],
            capsize=3,
            label=label,
        )
    ax.set_ylim(0, None)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("weighted F1 (%)")
    mode = rows[0].get("mode") if rows else None
    ax.set_title(f"edge-type ablation{f', {mode} mode' if mode else ''} (mean ± std over seeds)")
    ax.legend()
    fig.tight_layout()
    _save_fig(fig, path)
