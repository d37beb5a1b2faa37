"""Edge-type ablation: the full graph and variants without some relations, over several seeds.

Features and graphs are built once with every relation; each variant keeps a subset of the
relations by filtering the already built graphs (one edge type = one dict key, so ablation is a
dict filter). Every variant is a normal run directory; the ablation writes one table (markdown
and CSV) and a bar chart with error bars.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from ercgraph.config import Config, GraphConfig
from ercgraph.data.features import atomic_write_bytes
from ercgraph.errors import ErcgraphError
from ercgraph.report import fmt, write_json


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


def ablate(cfg: Config, out: Path, edge_type_sets: str | None = None) -> list[dict[str, Any]]:
    """Run the ablation and write ``ablation.md``, ``ablation.csv`` and ``ablation.png``."""
    from ercgraph.graphs.build import compose
    from ercgraph.pipeline import check_config, prepare
    from ercgraph.rundir import check_out_dir
    from ercgraph.train import run

    check_config(cfg)
    check_out_dir(out, cfg, resume=False)
    full = list(compose(cfg.graph.builders, cfg.graph.edge_types).edge_types)
    sets = parse_edge_type_sets(edge_type_sets, full)
    if sets is None:
        sets = [full] + [[e for e in full if e != drop] for drop in full]
    prep = prepare(cfg)
    rows = []
    for kept in sets:
        name = variant_name(kept, full)
        keep_rel = set(kept)
        graphs = {
            split: [keep_relations(g, keep_rel) for g in gs] for split, gs in prep.graphs.items()
        }
        edge_types = [et for et in prep.edge_types if et[1] in keep_rel]
        vprep = dataclasses.replace(prep, graphs=graphs, edge_types=edge_types)
        vcfg = dataclasses.replace(
            cfg, graph=GraphConfig(builders=cfg.graph.builders, edge_types=list(kept))
        )
        m = run(vcfg, out / name, prep=vprep)
        rows.append(
            {
                "variant": name,
                "edge_types": "+".join(kept) or "none",
                "dev_weighted_f1": m["dev"]["weighted_f1"],
                "test_weighted_f1": m["test"]["weighted_f1"],
                "test_macro_f1": m["test"]["macro_f1"],
                "test_fear_f1": _cls(m, "fear"),
                "test_disgust_f1": _cls(m, "disgust"),
            }
        )
    write_ablation(rows, out, len(cfg.train.seeds))
    return rows


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


def write_ablation(rows: list[dict[str, Any]], out: Path, n_seeds: int) -> None:
    """The table as markdown and CSV, the bar chart, and the rows as JSON."""
    cols = [
        ("dev_weighted_f1", "dev wF1"),
        ("test_weighted_f1", "test wF1"),
        ("test_macro_f1", "test macro F1"),
        ("test_fear_f1", "test fear F1"),
        ("test_disgust_f1", "test disgust F1"),
    ]
    md = [
        f"Edge-type ablation, mean ± std over {n_seeds} seed(s); model selection on dev.",
        "",
        "| variant | edge types | " + " | ".join(c[1] for c in cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    csv = ["variant,edge_types," + ",".join(f"{c[0]}_mean,{c[0]}_std" for c in cols)]
    for r in rows:
        md.append(
            f"| {r['variant']} | {r['edge_types']} | "
            + " | ".join(fmt(r[c]) if r[c] else "n/a" for c, _ in cols)
            + " |"
        )
        csv.append(
            f"{r['variant']},{r['edge_types']},"
            + ",".join(f"{r[c]['mean']:.4f},{r[c]['std']:.4f}" if r[c] else "," for c, _ in cols)
        )
    atomic_write_bytes(out / "ablation.md", ("\n".join(md) + "\n").encode())
    atomic_write_bytes(out / "ablation.csv", ("\n".join(csv) + "\n").encode())
    write_json(out / "ablation.json", rows)
    _bar_chart(rows, out / "ablation.png")


def _bar_chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ercgraph.report import _save_fig

    names = [r["variant"] for r in rows]
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
    lo = min(
        r[k]["mean"] - r[k]["std"] for r in rows for k in ("dev_weighted_f1", "test_weighted_f1")
    )
    ax.set_ylim(max(0, lo - 5), None)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("weighted F1 (%)")
    ax.set_title("edge-type ablation (mean ± std over seeds)")
    ax.legend()
    fig.tight_layout()
    _save_fig(fig, path)
