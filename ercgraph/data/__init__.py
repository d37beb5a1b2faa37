"""Corpora: the utterance table every reader produces, the readers, and safe pickle loading.

:class:`~ercgraph.data.features.FeatureStore` lives in ``ercgraph.data.features`` and is not
re-exported here, so reading a corpus does not import torch.
"""

from ercgraph.data.corpus import (
    IEMOCAP_LABELS,
    MELD_LABELS,
    MELD_SENTIMENTS,
    REQUIRED_COLUMNS,
    SPLITS,
    Corpus,
    validate_frame,
)
from ercgraph.data.load import load_corpus
from ercgraph.data.meld import meld_dialogue_id, meld_pickle_key_to_id, read_meld
from ercgraph.data.pickles import LAYOUTS, read_pickle
from ercgraph.data.safe_pickle import safe_load
from ercgraph.data.table import read_table

__all__ = [
    "IEMOCAP_LABELS",
    "LAYOUTS",
    "MELD_LABELS",
    "MELD_SENTIMENTS",
    "REQUIRED_COLUMNS",
    "SPLITS",
    "Corpus",
    "load_corpus",
    "meld_dialogue_id",
    "meld_pickle_key_to_id",
    "read_meld",
    "read_pickle",
    "read_table",
    "safe_load",
    "validate_frame",
]
