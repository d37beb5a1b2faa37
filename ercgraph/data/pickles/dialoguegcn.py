"""DialogueRNN / DialogueGCN / bc-LSTM 9-tuples (MMGCN's IEMOCAP pickle shares the layout).

* 9, ``dialoguegcn``: DialogueRNN/DialogueGCN/bc-LSTM and MMGCN ``IEMOCAP_features(_raw).pkl``:
  ``videoIDs, videoSpeakers, videoLabels, videoText, videoAudio, videoVisual, videoSentence,
  trainVid, testVid`` (text 100/audio 100/visual 512 or text 100/audio 1582/visual 342, and
  GraphSmile's IEMOCAP4 with 1024-d text: dims are read from the arrays, never the file name).
* 9, ``meld_features_raw``: DialogueRNN's ``MELD_features_raw.pkl``, no visual: ``videoIDs,
  videoSpeakers, videoLabels, videoText, videoAudio, videoSentence, trainVid, testVid,
  videoSentiment``. Told from ``dialoguegcn`` by item 5: sentences (lists of strings) here,
  visual vectors there; when item 5 is empty, by item 8 being a dict (sentiments) rather than a
  key list.

The ``video*`` field names defined here are reused by the MMGCN and SDT/GraphSmile lineages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ercgraph.data.pickles.common import _kind
from ercgraph.data.pickles.layout import PickleLayout

_DGCN_FIELDS = (
    "videoIDs",
    "videoSpeakers",
    "videoLabels",
    "videoText",
    "videoAudio",
    "videoVisual",
    "videoSentence",
    "trainVid",
    "testVid",
)
_VIDEO = {
    "speakers": "videoSpeakers",
    "labels": "videoLabels",
    "train": "trainVid",
    "test": "testVid",
    "sentences": "videoSentence",
    "ids": "videoIDs",
}


def _is_meld_features_raw(obj: Sequence[Any]) -> bool:
    kind = _kind(obj[5])
    if kind in ("str", "vectors"):
        return kind == "str"
    return isinstance(obj[8], dict)


MELD_FEATURES_RAW = PickleLayout(
    "meld_features_raw",
    (
        "videoIDs",
        "videoSpeakers",
        "videoLabels",
        "videoText",
        "videoAudio",
        "videoSentence",
        "trainVid",
        "testVid",
        "videoSentiment",
    ),
    "DialogueRNN MELD_features_raw",
    sentiments="videoSentiment",
    text=("videoText",),
    audio="videoAudio",
    meld=True,
    matches=_is_meld_features_raw,
    **_VIDEO,
)
DIALOGUEGCN = PickleLayout(
    "dialoguegcn",
    _DGCN_FIELDS,
    "DialogueGCN/MMGCN IEMOCAP_features",
    text=("videoText",),
    audio="videoAudio",
    visual="videoVisual",
    alternatives=(MELD_FEATURES_RAW,),
    **_VIDEO,
)
