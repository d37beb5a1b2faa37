"""SDT / CFN-ESA / GraphSmile combined "multimodal_features" 12/13/14-tuples.

Data from COSMIC (RoBERTa text, 1024-d x4) and MMGCN (audio, visual) in one pickle.

* 12, ``sdt_iemocap``: SDT/CFN-ESA/GraphSmile ``iemocap_multimodal_features.pkl``: ``videoIDs,
  videoSpeakers, videoLabels, videoText, roberta2, roberta3, roberta4, videoAudio, videoVisual,
  videoSentence, trainVid, testVid`` (``videoText`` is roberta1).
* 13, ``sdt_meld``: SDT-style ``meld_multimodal_features.pkl``: as ``sdt_iemocap`` plus ``_``.
* 14, ``graphsmile_meld``: GraphSmile/CFN-ESA ``meld_multimodal_features.pkl``: ``videoIDs,
  videoSpeakers, videoLabels, videoSentiments, videoText0..3, videoAudio, videoVisual,
  videoSentence, trainVid, testVid, _``.

``roberta1``..``roberta4`` name the four text fields of each (``data.options.text_fields``).
"""

from __future__ import annotations

from ercgraph.data.pickles.common import _ROBERTA
from ercgraph.data.pickles.dialoguegcn import _VIDEO
from ercgraph.data.pickles.layout import PickleLayout

_SDT_TEXT = ("videoText", "roberta2", "roberta3", "roberta4")
_GRAPHSMILE_TEXT = tuple(f"videoText{i}" for i in range(4))

SDT_IEMOCAP = PickleLayout(
    "sdt_iemocap",
    (
        "videoIDs",
        "videoSpeakers",
        "videoLabels",
        *_SDT_TEXT,
        "videoAudio",
        "videoVisual",
        "videoSentence",
        "trainVid",
        "testVid",
    ),
    "SDT iemocap_multimodal_features",
    text=_SDT_TEXT,
    audio="videoAudio",
    visual="videoVisual",
    aliases=tuple(zip(_ROBERTA, _SDT_TEXT)),
    **_VIDEO,
)
SDT_MELD = PickleLayout(
    "sdt_meld",
    (
        "videoIDs",
        "videoSpeakers",
        "videoLabels",
        *_SDT_TEXT,
        "videoAudio",
        "videoVisual",
        "videoSentence",
        "trainVid",
        "testVid",
        "_",
    ),
    "SDT meld_multimodal_features",
    text=_SDT_TEXT,
    audio="videoAudio",
    visual="videoVisual",
    aliases=tuple(zip(_ROBERTA, _SDT_TEXT)),
    meld=True,
    **_VIDEO,
)
GRAPHSMILE_MELD = PickleLayout(
    "graphsmile_meld",
    (
        "videoIDs",
        "videoSpeakers",
        "videoLabels",
        "videoSentiments",
        *_GRAPHSMILE_TEXT,
        "videoAudio",
        "videoVisual",
        "videoSentence",
        "trainVid",
        "testVid",
        "_",
    ),
    "GraphSmile meld_multimodal_features",
    sentiments="videoSentiments",
    text=_GRAPHSMILE_TEXT,
    audio="videoAudio",
    visual="videoVisual",
    aliases=tuple(zip(_ROBERTA, _GRAPHSMILE_TEXT)),
    meld=True,
    **_VIDEO,
)
