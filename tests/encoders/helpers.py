"""Helpers for encoder tests: tiny randomly initialised BERT models and toy corpora.

Nothing is downloaded: models are built from ``BertConfig`` and a small WordPiece vocabulary and
saved with ``save_pretrained`` into temporary folders.
"""

from __future__ import annotations

import random
import string
from pathlib import Path

import pandas as pd
import torch

from ercgraph.data.corpus import Corpus

WORDS = (
    "good great happy love bad awful sad hate the movie was really hi yo ok alpha beta gamma delta"
).split()
VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + list(string.ascii_lowercase)
    + ["##" + c for c in string.ascii_lowercase]
    + list(":|.,?!'")
    + WORDS
)


def make_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A 2-layer, 32-wide BERT with a WordPiece tokenizer, saved into ``folder``."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    tok = BertTokenizerFast.from_pretrained(str(folder))
    cfg = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    BertModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def make_corpus(rows: list[tuple], labels: tuple[str, ...] = ("neg", "pos")) -> Corpus:
    """A Corpus from ``(split, dialogue_id, turn, speaker, label, text)`` tuples."""
    df = pd.DataFrame(rows, columns=["split", "dialogue_id", "turn", "speaker", "label", "text"])
    return Corpus(df, "toy", labels)


def sentiment_corpus(flip_test: bool = False) -> Corpus:
    """Two classes whose words decide the label; each dialogue keeps one label.

    8 train dialogues x 5 turns, 4 dev and 2 test dialogues x 4 turns.
    """
    rng = random.Random(0)
    pos, neg = ["good", "great", "happy", "love"], ["bad", "awful", "sad", "hate"]
    filler = ["the", "movie", "was", "really"]
    rows = []
    for split, n_dia, turns in (("train", 8, 5), ("dev", 4, 4), ("test", 2, 4)):
        for d in range(n_dia):
            label = "pos" if d % 2 == 0 else "neg"
            for t in range(turns):
                words = rng.sample(filler, 2) + [rng.choice(pos if label == "pos" else neg)]
                rng.shuffle(words)
                lab = label
                if flip_test and split == "test":
                    lab = "neg" if label == "pos" else "pos"
                rows.append((split, f"{split}{d}", t, "ab"[t % 2], lab, " ".join(words)))
    return make_corpus(rows)
