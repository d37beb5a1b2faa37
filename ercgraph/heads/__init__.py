"""Heads (emotion, reconstruction, sentiment, regression), chosen by name from ``HEADS``."""

from ercgraph.heads.base import Head, HeadContext
from ercgraph.heads.emotion import EmotionHead
from ercgraph.heads.reconstruction import ReconstructionHead
from ercgraph.heads.regression import RegressionHead
from ercgraph.heads.sentiment import SentimentHead

__all__ = [
    "EmotionHead",
    "Head",
    "HeadContext",
    "ReconstructionHead",
    "RegressionHead",
    "SentimentHead",
]
