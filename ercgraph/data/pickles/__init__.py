"""The ``pickle`` reader: the conversation and feature pickles of the ERC literature.

Pickles are loaded through :func:`~ercgraph.data.safe_pickle.safe_load` (no code runs) and
recognised by their layout (see ``shared/data/FEATURE_PICKLES.md``): the top-level object is a
list/tuple whose length tells the layout apart; where two layouts share a length, the content
decides. :data:`LAYOUTS` maps a length to its layout; a length that is not there, or items of
the wrong kind (a dict expected, say), is an error listing the known layouts.
:func:`read_pickle_features` returns the Corpus and a
:class:`~ercgraph.data.features.FeatureStore`; the registered ``pickle`` reader
(:func:`read_pickle`) returns the Corpus only and never builds feature matrices.

Known layouts (dicts keyed by dialogue, one entry per utterance, in order), one module per
lineage, each describing its layouts field by field:

* :mod:`~ercgraph.data.pickles.dialoguegcn`: 9 ``dialoguegcn`` (DialogueRNN/DialogueGCN/bc-LSTM
  and MMGCN ``IEMOCAP_features(_raw).pkl``), 9 ``meld_features_raw`` (``MELD_features_raw.pkl``).
* :mod:`~ercgraph.data.pickles.mmgcn`: 10 ``mmgcn_meld`` (``MELD_features_raw1.pkl``).
* :mod:`~ercgraph.data.pickles.cosmic`: 6 ``cosmic_text`` (``iemocap.pkl``, ``emorynlp.pkl``), 7
  ``cosmic_meld_text`` (``meld.pkl``), 10 ``cosmic_roberta`` (``*_features_roberta.pkl``), 11
  ``cosmic_meld_roberta``.
* :mod:`~ercgraph.data.pickles.sdt`: 12 ``sdt_iemocap``, 13 ``sdt_meld``, 14 ``graphsmile_meld``
  (``*_multimodal_features.pkl``).
* :mod:`~ercgraph.data.pickles.multiemo`: MultiEMO's separate files (``data.paths``).

The other modules: :mod:`~ercgraph.data.pickles.layout` (:class:`PickleLayout`),
:mod:`~ercgraph.data.pickles.detect` (:data:`LAYOUTS`, :func:`detect_layout`),
:mod:`~ercgraph.data.pickles.parse` (the Corpus: dataset, dialogue ids, labels and splits),
:mod:`~ercgraph.data.pickles.store` (feature matrices, ``text_fields``/``text_combine``),
:mod:`~ercgraph.data.pickles.reader` (the entry points and ``data.options``) and
:mod:`~ercgraph.data.pickles.common` (shared helpers). Importing this package registers the
``pickle`` reader.
"""

from ercgraph.data.pickles.common import IEMOCAP_KEY, file_sha256
from ercgraph.data.pickles.cosmic import (
    COSMIC_MELD_ROBERTA,
    COSMIC_MELD_TEXT,
    COSMIC_ROBERTA,
    COSMIC_TEXT,
)
from ercgraph.data.pickles.detect import LAYOUTS, detect_layout, known_layouts
from ercgraph.data.pickles.dialoguegcn import DIALOGUEGCN, MELD_FEATURES_RAW
from ercgraph.data.pickles.layout import PickleLayout
from ercgraph.data.pickles.mmgcn import MMGCN_MELD
from ercgraph.data.pickles.multiemo import MULTIEMO_PATHS
from ercgraph.data.pickles.parse import ParsedPickle, parse_layout
from ercgraph.data.pickles.reader import PICKLE_OPTIONS, read_pickle, read_pickle_features
from ercgraph.data.pickles.sdt import GRAPHSMILE_MELD, SDT_IEMOCAP, SDT_MELD
from ercgraph.data.pickles.store import TEXT_COMBINE

__all__ = [
    "COSMIC_MELD_ROBERTA",
    "COSMIC_MELD_TEXT",
    "COSMIC_ROBERTA",
    "COSMIC_TEXT",
    "DIALOGUEGCN",
    "GRAPHSMILE_MELD",
    "IEMOCAP_KEY",
    "LAYOUTS",
    "MELD_FEATURES_RAW",
    "MMGCN_MELD",
    "MULTIEMO_PATHS",
    "PICKLE_OPTIONS",
    "SDT_IEMOCAP",
    "SDT_MELD",
    "TEXT_COMBINE",
    "ParsedPickle",
    "PickleLayout",
    "detect_layout",
    "file_sha256",
    "known_layouts",
    "parse_layout",
    "read_pickle",
    "read_pickle_features",
]
