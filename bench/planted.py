"""Planted-signal corpora shaped like the feature pickles of the literature.

A planted corpus is a set of IEMOCAP-sized conversations (six classes, two speakers, dialogues of
8-30 turns, ~370 training utterances) whose utterances carry one modality of a published pickle
layout at its published width. A class signal is planted in a few dimensions of that modality;
everything else is noise. Text-like modalities are embedding-scaled; audio functionals are raw
(scales from 1e-2 to 1e3 on large offsets, as openSMILE writes them). A linear model can read the
signal off each utterance alone; there is no context signal, so a context model can only match
the linear probe, never beat it by much. That is the test: a default model that loses to the
probe here dilutes an utterance's own evidence with its neighbours'.

``LAYOUTS`` lists every (layout, modality) pair the issue names: each modality of the
DialogueGCN, MMGCN and SDT pickles in turn (FEATURE_PICKLES.md in the shared data has the
layouts).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: key -> (pickle layout, modality, width, feature kind)
LAYOUTS: dict[str, tuple[str, str, int, str]] = {
    "dialoguegcn_text100": ("DialogueGCN (IEMOCAP_features.pkl)", "text", 100, "embedding"),
    "dialoguegcn_audio100": ("DialogueGCN (IEMOCAP_features.pkl)", "audio", 100, "embedding"),
    "dialoguegcn_visual512": ("DialogueGCN (IEMOCAP_features.pkl)", "visual", 512, "embedding"),
    "mmgcn_audio1582": ("MMGCN (IEMOCAP_features.pkl)", "audio", 1582, "functionals"),
    "mmgcn_visual342": ("MMGCN (IEMOCAP_features.pkl)", "visual", 342, "embedding"),
    "sdt_text1024": ("SDT (iemocap_multi_features.pkl)", "text", 1024, "embedding"),
    "sdt_audio1582": ("SDT (iemocap_multi_features.pkl)", "audio", 1582, "functionals"),
    "sdt_visual342": ("SDT (iemocap_multi_features.pkl)", "visual", 342, "embedding"),
}
CLASSES = ("happy", "sad", "neutral", "angry", "excited", "frustrated")
#: utterances per split
SIZES = {"train": 370, "dev": 120, "test": 120}


def planted_corpus(key: str, seed: int = 0, informative: int = 8, strength: float = 1.0) -> Any:
    """``(Corpus, FeatureStore)`` of the planted layout ``key`` (see :data:`LAYOUTS`).

    Args:
        key: a :data:`LAYOUTS` key.
        seed: the generator's seed (dialogue lengths, labels, features).
        informative: how many dimensions carry the class signal.
        strength: scale of the class centres in those dimensions (noise has std 1).
    """
    import pandas as pd
    import torch

    from ercgraph.data.corpus import Corpus
    from ercgraph.data.features import FeatureStore

    _, modality, dim, kind = LAYOUTS[key]
    # one stream per layout key: two layouts with the same modality and width are different
    # corpora (bench/results/sweep_defaults_planted.json was made when the stream depended on
    # width and modality only: its mmgcn_/sdt_ rows of one width and modality are one corpus)
    rng = np.random.default_rng([seed, *key.encode()])
    rows, d = [], 0
    for split, n in SIZES.items():
        made = 0
        while made < n:
            length = min(int(rng.integers(8, 31)), n - made)
            rows += [
                {
                    "split": split,
                    "dialogue_id": f"{split}_{d}",
                    "turn": t,
                    "speaker": f"{key}_{d}_{'MF'[t % 2]}",
                    "label": None,
                }
                for t in range(length)
            ]
            made += length
            d += 1
    df = pd.DataFrame(rows)
    y = rng.integers(0, len(CLASSES), len(df))
    df["label"] = [CLASSES[k] for k in y]
    x = rng.normal(size=(len(df), dim))
    centres = rng.normal(scale=strength, size=(len(CLASSES), informative))
    x[:, rng.choice(dim, informative, replace=False)] += centres[y]
    if kind == "functionals":
        scale = 10.0 ** rng.uniform(-2, 3, dim)
        x = x * scale + scale * rng.uniform(0, 20, dim)
    else:
        x = x * 0.1 + rng.normal(scale=0.05, size=dim)
    corpus = Corpus(df, f"planted_{key}", CLASSES, source=f"planted:{key}")
    store = FeatureStore({modality: torch.tensor(x, dtype=torch.float32)})
    return corpus, store
