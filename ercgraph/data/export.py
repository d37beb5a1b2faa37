"""Write a Corpus and its features back into the literature's pickle layouts.

:func:`export_mmgcn` writes the MMGCN/DialogueGCN layout, so that features made by ercgraph can be
fed to the reference implementations (and read back by the ``pickle`` reader):

* MELD: the 10-item ``MELD_features_raw1.pkl`` layout ``videoIDs, videoSpeakers, videoLabels,
  videoText, videoAudio, videoVisual, videoSentence, trainVid, testVid, _``. Keys are MELD
  integers (train ``D``, dev ``D + 1039``, test ``D + 1153``, parsed from the dialogue ids
  ``train_12``/``dev_3``/``test_0``), speakers are 9-d one-hot lists (the hot index is ``i`` of
  ``spk{i}`` speakers, else the order of first appearance in the dialogue), labels are ids into
  :data:`~ercgraph.data.corpus.MELD_LABELS`, ``trainVid`` holds train ∪ dev keys. The last item,
  ignored by the reference loaders, holds sentiment ids (``MELD_SENTIMENTS``) when the corpus has
  a ``sentiment`` column, else an empty dict.
* IEMOCAP and any other corpus: the 9-item ``IEMOCAP_features.pkl`` layout ``videoIDs,
  videoSpeakers, videoLabels, videoText, videoAudio, videoVisual, videoSentence, trainVid,
  testVid``, keyed by dialogue id, speakers as their strings, labels as ids into
  ``corpus.labels`` (IEMOCAP: must be :data:`~ercgraph.data.corpus.IEMOCAP_LABELS`),
  ``trainVid`` = train ∪ dev. The layout has no dev list, so the reader carves dev again from the
  train keys (``data.options.dev_fraction``): the round trip keeps the split only where it was
  made that way.

Features are one float32 numpy array ``[utterances, dim]`` per dialogue; ``videoIDs`` are the
``utterance_id`` column when present, else the turns; ``videoSentence`` is the ``text`` column
(empty strings without one). Dialogues are written in Corpus row order, utterances by turn; the
reader numbers turns by position, so gaps in ``turn`` do not survive a round trip.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from ercgraph.data.corpus import IEMOCAP_LABELS, MELD_LABELS, MELD_SENTIMENTS, Corpus
from ercgraph.data.features import FeatureStore, atomic_write_bytes
from ercgraph.data.meld import MELD_PICKLE_KEY_OFFSETS
from ercgraph.errors import ErcgraphError

MMGCN_MODALITIES = ("text", "audio", "visual")
EXPORT_DATASETS = ("meld", "iemocap", "other")
MELD_SPEAKER_SLOTS = 9
_MELD_ID = re.compile(r"^(train|dev|test)_(\d+)$")
_SPK = re.compile(r"^spk(\d+)$")


def _dataset(corpus: Corpus, dataset: str | None) -> str:
    if dataset is None:
        name = str(corpus.meta.get("dataset") or corpus.name).lower()
        return name if name in ("meld", "iemocap") else "other"
    if dataset not in EXPORT_DATASETS:
        raise ErcgraphError(
            f"export_mmgcn: dataset must be one of {', '.join(EXPORT_DATASETS)} "
            f"or None, got {dataset!r}"
        )
    return dataset


def _meld_keys(dialogue_ids: list[str]) -> list[int]:
    """MELD pickle keys of ``train_12``-style dialogue ids."""
    span = {
        "train": MELD_PICKLE_KEY_OFFSETS["dev"],
        "dev": MELD_PICKLE_KEY_OFFSETS["test"] - MELD_PICKLE_KEY_OFFSETS["dev"],
        "test": None,
    }
    keys = []
    for d in dialogue_ids:
        m = _MELD_ID.match(d)
        if m is None:
            raise ErcgraphError(
                f"export_mmgcn: dialogue id {d!r} does not follow the MELD convention "
                f"('train_12', 'dev_3', 'test_0') needed for MELD pickle keys"
            )
        prefix, number = m.group(1), int(m.group(2))
        if span[prefix] is not None and number >= span[prefix]:
            raise ErcgraphError(
                f"export_mmgcn: dialogue id {d!r}: MELD {prefix} dialogue numbers stop at "
                f"{span[prefix] - 1} in the pickle key space (train D, dev D+1039, test D+1153)"
            )
        keys.append(MELD_PICKLE_KEY_OFFSETS[prefix] + number)
    return keys


def _one_hot(corpus: Corpus, blocks: list[slice], dialogue_ids: list[str]) -> list[list]:
    speakers = corpus.df["speaker"].astype(str)
    parsed = speakers.str.extract(_SPK, expand=False)
    if parsed.notna().all():
        index = parsed.astype(np.int64).to_numpy()
    else:
        index = corpus.local_speakers()
    out = []
    for d, block in zip(dialogue_ids, blocks):
        idx = index[block]
        if idx.max() >= MELD_SPEAKER_SLOTS:
            raise ErcgraphError(
                f"export_mmgcn: dialogue {d!r} has speaker index {int(idx.max())}; MELD pickles "
                f"hold {MELD_SPEAKER_SLOTS}-d one-hot speakers"
            )
        out.append(np.eye(MELD_SPEAKER_SLOTS, dtype=np.int64)[idx].tolist())
    return out


def export_mmgcn(
    corpus: Corpus, store: FeatureStore, path: Path, dataset: str | None = None
) -> Path:
    """Write ``corpus`` + ``store`` as an MMGCN/DialogueGCN feature pickle (module docstring).

    Args:
        corpus: The utterances (train/dev/test splits, all labelled).
        store: Features aligned to ``corpus`` rows, with ``text``, ``audio`` and ``visual``.
        path: The pickle to create; it must not exist. Written atomically.
        dataset: ``meld`` (10 items, MELD keys), ``iemocap`` or ``other`` (9 items, string
            keys); None picks ``meld``/``iemocap`` from the corpus (``meta['dataset']``, else
            its name), else ``other``.

    Returns:
        ``path``.

    Raises:
        ErcgraphError: when ``path`` exists, a modality is missing or partly absent, the store
            does not match the corpus rows, the corpus has an ``unlabelled`` split, or (MELD /
            IEMOCAP) the label vocabulary or dialogue ids do not fit the layout.
    """
    path = Path(path)
    if path.exists():
        raise ErcgraphError(f"export_mmgcn: {str(path)!r} already exists; refusing to overwrite")
    dataset = _dataset(corpus, dataset)
    missing = [m for m in MMGCN_MODALITIES if m not in store.features]
    if missing:
        raise ErcgraphError(
            f"export_mmgcn: the feature store has no {missing[0]!r} modality (it has "
            f"{store.modalities}); the MMGCN layout needs {', '.join(MMGCN_MODALITIES)}"
        )
    store.check_rows(corpus.num_utterances, "export_mmgcn")
    for m in MMGCN_MODALITIES:
        absent = ~store.present[m].numpy()
        if absent.any():
            i = int(np.flatnonzero(absent)[0])
            raise ErcgraphError(
                f"export_mmgcn: modality {m!r} is missing for {int(absent.sum())} utterance(s) "
                f"(first: dialogue {corpus.df['dialogue_id'].iloc[i]!r}, turn "
                f"{int(corpus.df['turn'].iloc[i])}); the MMGCN layout cannot mark missing "
                f"features"
            )
    extra = sorted(set(corpus.splits) - {"train", "dev", "test"})
    if extra:
        raise ErcgraphError(
            f"export_mmgcn: split {extra[0]!r} has no place in the MMGCN layout "
            f"(train/dev/test only)"
        )
    expected = {"meld": MELD_LABELS, "iemocap": IEMOCAP_LABELS}.get(dataset)
    if expected is not None and corpus.labels != expected:
        raise ErcgraphError(
            f"export_mmgcn: the {dataset} layout stores label ids into {list(expected)}, but the "
            f"corpus labels are {list(corpus.labels)}"
        )

    df = corpus.df
    dialogue_index = corpus.dialogue_index()
    starts = np.flatnonzero(np.r_[True, dialogue_index[1:] != dialogue_index[:-1]])
    ends = np.r_[starts[1:], len(df)]
    blocks = [slice(int(a), int(b)) for a, b in zip(starts, ends)]
    dialogue_ids = df["dialogue_id"].to_numpy()[starts].tolist()
    splits = df["split"].to_numpy()[starts].tolist()
    keys: list[Any] = _meld_keys(dialogue_ids) if dataset == "meld" else dialogue_ids

    labels = corpus.label_ids()
    ids = (df["utterance_id"] if "utterance_id" in df.columns else df["turn"]).tolist()
    text = df["text"].astype(str).tolist() if "text" in df.columns else [""] * len(df)
    if dataset == "meld":
        speakers = _one_hot(corpus, blocks, dialogue_ids)
    else:
        names = df["speaker"].astype(str).tolist()
        speakers = [names[b] for b in blocks]
    feats = {
        m: store.features[m].detach().cpu().numpy().astype(np.float32, copy=False)
        for m in MMGCN_MODALITIES
    }

    video_ids, video_speakers, video_labels, video_sentence = {}, {}, {}, {}
    video = {m: {} for m in MMGCN_MODALITIES}
    for key, block, spk in zip(keys, blocks, speakers):
        video_ids[key] = ids[block]
        video_speakers[key] = spk
        video_labels[key] = labels[block].tolist()
        video_sentence[key] = text[block]
        for m in MMGCN_MODALITIES:
            video[m][key] = np.array(feats[m][block], dtype=np.float32)
    train_vid = [k for k, s in zip(keys, splits) if s in ("train", "dev")]
    test_vid = [k for k, s in zip(keys, splits) if s == "test"]
    obj: list[Any] = [
        video_ids,
        video_speakers,
        video_labels,
        video["text"],
        video["audio"],
        video["visual"],
        video_sentence,
        train_vid,
        test_vid,
    ]
    if dataset == "meld":
        sentiment: dict[Any, list[int]] = {}
        if "sentiment" in df.columns and df["sentiment"].isin(MELD_SENTIMENTS).all():
            sid = df["sentiment"].map({s: i for i, s in enumerate(MELD_SENTIMENTS)}).to_numpy()
            sentiment = {k: sid[b].astype(np.int64).tolist() for k, b in zip(keys, blocks)}
        obj.append(sentiment)
    atomic_write_bytes(path, pickle.dumps(obj, protocol=4))
    return path
