"""COSMIC (conv-emotion/COSMIC) pickles: the text/label inputs and the RoBERTa features.

* 6, ``cosmic_text``: COSMIC's IEMOCAP text/label input (``iemocap.pkl``): ``speakers, labels,
  sentences, train_ids, test_ids, valid_ids`` (108 / 31 / 12 IEMOCAP dialogues; speakers
  ``M``/``F``, labels in the IEMOCAP order hap, sad, neu, ang, exc, fru). EmoryNLP's
  ``emorynlp.pkl`` has the same fields (its keys are not IEMOCAP's, so ``data.labels`` must
  name its labels). No features.
* 7, ``cosmic_meld_text``: COSMIC's MELD text/label input (``meld.pkl``): ``speakers,
  emotion_labels, sentiment_labels, sentences, train_ids, test_ids, valid_ids``. No features.
* 10, ``cosmic_roberta``: COSMIC ``iemocap/emorynlp/dailydialog_features_roberta.pkl``:
  ``speakers, labels, roberta1, roberta2, roberta3, roberta4, sentences, trainIds, testIds,
  validIds``. Told from ``mmgcn_meld`` by item 2: vectors (roberta1) here, label ids there.
* 11, ``cosmic_meld_roberta``: COSMIC ``meld_features_roberta.pkl``: ``speakers,
  emotion_labels, sentiment_labels, roberta1..4, sentences, trainIds, testIds, validIds``.

Every COSMIC layout has a validation list, which is the dev split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ercgraph.data.pickles.common import _ROBERTA, _kind
from ercgraph.data.pickles.layout import PickleLayout

_ROBERTA_ALIASES = tuple(zip(_ROBERTA, _ROBERTA))
_COSMIC = {
    "speakers": "speakers",
    "train": "trainIds",
    "test": "testIds",
    "dev": "validIds",
    "sentences": "sentences",
    "text": _ROBERTA,
    "aliases": _ROBERTA_ALIASES,
}


def _is_cosmic_roberta(obj: Sequence[Any]) -> bool:
    return _kind(obj[2]) == "vectors"


COSMIC_TEXT = PickleLayout(
    "cosmic_text",
    ("speakers", "labels", "sentences", "train_ids", "test_ids", "valid_ids"),
    "COSMIC IEMOCAP/EmoryNLP text/label",
    speakers="speakers",
    labels="labels",
    sentences="sentences",
    train="train_ids",
    test="test_ids",
    dev="valid_ids",
)
COSMIC_MELD_TEXT = PickleLayout(
    "cosmic_meld_text",
    (
        "speakers",
        "emotion_labels",
        "sentiment_labels",
        "sentences",
        "train_ids",
        "test_ids",
        "valid_ids",
    ),
    "COSMIC MELD text/label",
    speakers="speakers",
    labels="emotion_labels",
    sentiments="sentiment_labels",
    sentences="sentences",
    train="train_ids",
    test="test_ids",
    dev="valid_ids",
    meld=True,
)
COSMIC_ROBERTA = PickleLayout(
    "cosmic_roberta",
    ("speakers", "labels", *_ROBERTA, "sentences", "trainIds", "testIds", "validIds"),
    "COSMIC RoBERTa features",
    labels="labels",
    matches=_is_cosmic_roberta,
    **_COSMIC,
)
COSMIC_MELD_ROBERTA = PickleLayout(
    "cosmic_meld_roberta",
    (
        "speakers",
        "emotion_labels",
        "sentiment_labels",
        *_ROBERTA,
        "sentences",
        "trainIds",
        "testIds",
        "validIds",
    ),
    "COSMIC MELD RoBERTa features",
    labels="emotion_labels",
    sentiments="sentiment_labels",
    meld=True,
    **_COSMIC,
)
