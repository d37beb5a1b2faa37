"""MMGCN / MM-DFN / M3Net MELD 10-tuples (their IEMOCAP pickle is the DialogueGCN 9-tuple).

* 10, ``mmgcn_meld``: MMGCN/MM-DFN/M3Net ``MELD_features_raw1.pkl``: ``videoIDs, videoSpeakers,
  videoLabels, videoText, videoAudio, videoVisual, videoSentence, trainVid, testVid, _`` (the
  last item is ignored, as the reference loaders do). ``trainVid`` holds train ∪ dev.

COSMIC's ``cosmic_roberta`` layout has the same length and is told apart by its content.
"""

from __future__ import annotations

from ercgraph.data.pickles.cosmic import COSMIC_ROBERTA
from ercgraph.data.pickles.dialoguegcn import _DGCN_FIELDS, _VIDEO
from ercgraph.data.pickles.layout import PickleLayout

MMGCN_MELD = PickleLayout(
    "mmgcn_meld",
    (*_DGCN_FIELDS, "_"),
    "MMGCN MELD_features_raw1",
    text=("videoText",),
    audio="videoAudio",
    visual="videoVisual",
    alternatives=(COSMIC_ROBERTA,),
    **_VIDEO,
)
