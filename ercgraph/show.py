"""Draw one dialogue's graph: nodes by speaker and modality, edges coloured by type, a legend.

Only the graph structure is needed, so no features are computed: the dialogue's rows are taken
from the corpus and the configured builders run on them alone.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np

from ercgraph.config import Config
from ercgraph.errors import ErcgraphError


def show_graph(cfg: Config, dialogue_id: str, out: Path) -> dict[str, int]:
    """Write the PNG and return the number of edges per relation."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch

    from ercgraph.data.load import load_corpus
    from ercgraph.graphs.base import Dialogues
    from ercgraph.graphs.build import build_edges
    from ercgraph.report import _save_fig

    corpus = load_corpus(cfg)
    ids = corpus.dialogue_ids()
    if dialogue_id not in ids:
        close = difflib.get_close_matches(dialogue_id, ids, n=3)
        hint = f" Close: {', '.join(close)}." if close else f" Examples: {', '.join(ids[:3])}."
        raise ErcgraphError(
            f"unknown dialogue id {dialogue_id!r} in {corpus.source or corpus.name}"
            f" ({len(ids)} dialogues).{hint}"
        )
    one = corpus.subset(dialogues=[dialogue_id])
    mods = tuple(cfg.features.modalities)
    dialogues = Dialogues.from_corpus(one, mods)
    edges = build_edges(dialogues, cfg.graph.builders, cfg.graph.edge_types)
    n = one.num_utterances
    speakers = one.df["speaker"].tolist()
    names = list(dict.fromkeys(speakers))
    spk_color = plt.get_cmap("tab10")
    relations = list(dict.fromkeys(et[1] for et in edges))
    rel_color = plt.get_cmap("Set1" if len(relations) <= 9 else "tab20")
    pos = {(m, i): (i, -2.0 * k) for k, m in enumerate(mods) for i in range(n)}
    fig, ax = plt.subplots(figsize=(max(6, 0.75 * n + 2), 2.6 + 2.0 * len(mods)))
    counts = {}
    for r, rel in enumerate(relations):
        color = rel_color(r % 9)
        for (src_m, rr, dst_m), ei in edges.items():
            if rr != rel:
                continue
            counts[rel] = counts.get(rel, 0) + int(ei.size(1))
            for s, d in ei.t().tolist():
                (x0, y0), (x1, y1) = pos[(src_m, s)], pos[(dst_m, d)]
                bend = (0.15 + 0.12 * r) if x0 != x1 else 0.0
                ax.add_patch(
                    FancyArrowPatch(
                        (x0, y0),
                        (x1, y1),
                        connectionstyle=f"arc3,rad={bend}",
                        color=color,
                        alpha=0.45,
                        arrowstyle="-|>",
                        mutation_scale=8,
                        lw=0.8,
                        shrinkA=9,
                        shrinkB=9,
                    )
                )
    for (m, i), (x, y) in pos.items():
        ax.scatter(
            [x],
            [y],
            s=330,
            color=spk_color(names.index(speakers[i]) % 10),
            edgecolors="black",
            zorder=3,
            marker="o" if m == mods[0] else "s",
        )
        ax.text(x, y, str(i), ha="center", va="center", fontsize=7, zorder=4, color="white")
    for k, m in enumerate(mods):
        ax.text(-1.0, -2.0 * k, m, ha="right", va="center", fontsize=9)
    handles = [
        Line2D(
            [], [], marker="o", ls="", color=spk_color(j % 10), markeredgecolor="black", label=name
        )
        for j, name in enumerate(names)
    ]
    handles += [
        Line2D([], [], color=rel_color(r % 9), label=f"{rel} ({counts.get(rel, 0)})")
        for r, rel in enumerate(relations)
    ]
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=7,
        title="speakers / edge types",
        title_fontsize=7,
    )
    ys = np.array([y for _, y in pos.values()])
    ax.set_xlim(-1.8, n)
    ax.set_ylim(ys.min() - 1.3, ys.max() + 1.3)
    ax.axis("off")
    # two short lines: a long dialogue id must not run past a narrow figure
    ax.set_title(
        f"dialogue {dialogue_id}: {n} utterances, {sum(counts.values())} edges\n"
        "arrow: message from source to target",
        fontsize=9,
        wrap=True,
    )
    fig.tight_layout()
    _save_fig(fig, out)  # atomic, and a parent that is a file is a one-line error
    return counts
