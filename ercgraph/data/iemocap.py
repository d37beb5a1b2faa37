"""The ``iemocap`` reader: the official ``IEMOCAP_full_release`` folder layout.

``data.path`` is the release folder (default ``IEMOCAP_full_release`` under the data root). For
each session ``Session{1..5}`` the reader parses

* ``dialog/EmoEvaluation/<dialogue>.txt``: one block per utterance whose first line is
  ``[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]`` (start - end
  in seconds, utterance id, consensus label, [valence, activation, dominance]); the evaluators'
  vote lines (``C-E1:``, ``A-E1:`` ...), the ``%`` header and blank lines are skipped. Only the
  ``*.txt`` files directly in the folder are read (not its ``Categorical/``, ``Attribute/`` ...
  sub-folders); names starting with ``.`` (macOS ``._*`` copies) are ignored.
* ``dialog/transcriptions/<dialogue>.txt``: one ``<utterance id> [006.2901-008.2357]: text`` line
  per utterance. Every non-blank line must have that shape; a line whose id is not an utterance
  of the dialogue's EmoEvaluation file (the overlap turns ``..._MXX0``, ``..._FXX1``) is skipped
  and counted in ``meta["skipped_transcript_lines"]``.
* ``sentences/wav/<dialogue>/<utterance id>.wav``: ``audio_path`` (absolute path string; missing
  (NA) where the file is absent, counted in ``meta["missing_audio"]``). Audio is never opened.
* ``dialog/avi/DivX/<dialogue>.avi`` (optional): ``video_path``, the whole-dialogue video, one
  path per utterance; ``start``/``end`` say where to cut. The column exists only when at least
  one video is present (missing for dialogues without one).

Rows: ``dialogue_id`` is the dialogue name (``Ses01F_impro01``); ``turn`` is the order by start
time (then end time, then id) among the kept utterances; ``speaker`` is ``Ses01_F`` / ``Ses01_M``
(the session's actress or actor, from the letter before the utterance number: in
``Ses01F_impro01_M000`` the speaker is the man of session 1; the ``F`` after ``Ses01`` only says
who wore the motion-capture markers). Other columns: ``text``, ``start``, ``end``, ``valence``,
``arousal`` (IEMOCAP's activation), ``dominance``, ``audio_path``, ``video_path``, ``session``
(int), ``utterance_id`` and ``consensus_label`` (the label as annotated, e.g. ``exc`` where the
four-class ``label`` says ``hap``).

Labels (``data.options.labels``):

* ``six`` (default): ``hap, sad, neu, ang, exc, fru`` in
  :data:`~ercgraph.data.corpus.IEMOCAP_LABELS` order, the label map of the reference loaders
  (DialogueRNN, MMGCN, COSMIC), so predictions line up with published confusion matrices.
* ``four``: ``exc`` is merged into ``hap``; the labels are :data:`IEMOCAP_FOUR_LABELS` =
  ``hap, sad, neu, ang``, the six-class order restricted to the four kept classes, so ids 0-3
  name the same emotion in both settings; ``fru`` is dropped.

``data.labels`` may reorder the chosen set (e.g. ``[ang, hap, neu, sad]`` to match an
alphabetical four-class convention); it must name exactly the same labels.

Utterances with any other consensus label (``xxx``, ``oth``, ``sur``, ``fea``, ``dis``, and
``fru`` in the four-class setting) are dropped from their dialogue entirely, as the reference
loaders do: they are neither nodes nor context, and turns are renumbered over the kept ones.
``meta["dropped_utterances"]`` and ``meta["dropped_by_label"]`` count them;
``meta["dropped_dialogues"]`` lists dialogues left with no utterance at all.

Splits: the test session (``data.options.test_session``, default 5, the standard test set) is
``test``; the other sessions are the training pool. ``dev`` is every ``dev_every``-th dialogue
(``data.options.dev_every``, default 10) of the training pool sorted by name, starting with the
first (sorted positions 0, 10, 20, ...: 12 of the 120 dialogues of Sessions 1-4, spread over all
four sessions); the rule is computed on all dialogues of the pool before labels are dropped, so
it does not move between the six- and four-class settings. ``dev_every: 0`` gives no dev split.
The DialogueRNN convention instead draws 10% of the training dialogues with an unseeded random
sampler at every run, which cannot be reproduced; this rule can.

``data.options``: ``labels`` (six/four), ``sessions`` (list of session numbers to read, default
all five; a folder missing a requested session is an error that lists the sessions found),
``test_session`` (a session number among ``sessions``, or null for no test split),
``dev_every`` (int >= 0) and ``encoding`` (of the text files, default utf-8).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ercgraph.config import DataConfig, resolve_data_path
from ercgraph.data.corpus import IEMOCAP_LABELS, Corpus
from ercgraph.data.table import check_options, decode_text_file
from ercgraph.errors import ErcgraphError
from ercgraph.registry import READERS

#: Four-class setting: the six-class order restricted to the kept classes (exc merged into hap).
IEMOCAP_FOUR_LABELS = ("hap", "sad", "neu", "ang")
#: Every consensus label that occurs in the EmoEvaluation files.
IEMOCAP_CONSENSUS_LABELS = (
    "neu",
    "hap",
    "sad",
    "ang",
    "exc",
    "fru",
    "sur",
    "fea",
    "dis",
    "oth",
    "xxx",
)
IEMOCAP_SESSIONS = (1, 2, 3, 4, 5)
IEMOCAP_OPTIONS = ("labels", "sessions", "test_session", "dev_every", "encoding")
#: Consensus label → Corpus label per setting; a label absent from the map is dropped.
LABEL_MAPS = {
    "six": {lab: lab for lab in IEMOCAP_LABELS},
    "four": {"hap": "hap", "exc": "hap", "sad": "sad", "neu": "neu", "ang": "ang"},
}

_NUM = r"[-+]?\d+(?:\.\d*)?"
_LABEL_LINE = re.compile(
    rf"^\[\s*({_NUM})\s*-\s*({_NUM})\s*\]\s+(\S+)\s+(\S+)\s+"
    rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]\s*$"
)
_TRANSCRIPT_LINE = re.compile(rf"^(\S+)\s+\[\s*({_NUM})\s*-\s*({_NUM})\s*\]\s*:\s?(.*)$")
_UTTERANCE_ID = re.compile(r"^Ses(\d{2})[FM]_.+_([FM])\d{3}$")
_SESSION_DIR = re.compile(r"^Session(\d+)$")


@dataclass
class EmoLine:
    """The consensus line of one utterance block of an EmoEvaluation file."""

    utterance_id: str
    start: float
    end: float
    label: str
    valence: float
    arousal: float
    dominance: float
    line: int


def iemocap_speaker(utterance_id: str) -> str:
    """The speaker of an utterance: ``"Ses01_M"`` for ``Ses01F_impro01_M000``.

    Raises:
        ErcgraphError: when the id is not an IEMOCAP utterance id.
    """
    m = _UTTERANCE_ID.match(utterance_id)
    if m is None:
        raise ErcgraphError(
            f"{utterance_id!r} is not an IEMOCAP utterance id like 'Ses01F_impro01_M000'"
        )
    return f"Ses{m.group(1)}_{m.group(2)}"


def parse_emo_evaluation(path: Path, encoding: str = "utf-8") -> list[EmoLine]:
    """The consensus line of every utterance block of one EmoEvaluation file, in file order.

    Raises:
        ErcgraphError: naming the file and line of a malformed ``[start - end]`` line, an
            unknown consensus label, an utterance id that is not of this dialogue, a duplicate
            utterance, or a file without any utterance block.
    """
    dialogue = path.stem
    out: list[EmoLine] = []
    seen: dict[str, int] = {}
    for no, line in enumerate(decode_text_file(path, encoding).split("\n"), start=1):
        if not line.startswith("["):
            continue  # header, evaluator votes (C-E1:, A-E1: ...), blank lines
        m = _LABEL_LINE.match(line)
        if m is None:
            raise ErcgraphError(
                f"{path}: line {no}: cannot parse {line.strip()!r}; expected "
                f"'[start - end]<TAB>utterance id<TAB>label<TAB>[valence, activation, dominance]'"
            )
        utt, label = m.group(3), m.group(4)
        if not utt.startswith(dialogue + "_") or _UTTERANCE_ID.match(utt) is None:
            raise ErcgraphError(
                f"{path}: line {no}: utterance id {utt!r} is not an utterance of dialogue "
                f"{dialogue!r} (expected '{dialogue}_F000'-style ids)"
            )
        if label not in IEMOCAP_CONSENSUS_LABELS:
            raise ErcgraphError(
                f"{path}: line {no}: unknown consensus label {label!r} for {utt!r}; expected one "
                f"of {list(IEMOCAP_CONSENSUS_LABELS)}"
            )
        if utt in seen:
            raise ErcgraphError(
                f"{path}: line {no}: utterance {utt!r} is labelled twice (already at line "
                f"{seen[utt]})"
            )
        seen[utt] = no
        start, end, val, act, dom = (float(m.group(k)) for k in (1, 2, 5, 6, 7))
        out.append(EmoLine(utt, start, end, label, val, act, dom, no))
    if not out:
        raise ErcgraphError(
            f"{path}: no utterance line '[start - end]<TAB>utterance id<TAB>label<TAB>[V, A, D]' "
            f"found; is this an IEMOCAP EmoEvaluation file?"
        )
    return out


def parse_transcription(
    path: Path, wanted: set[str], encoding: str = "utf-8"
) -> tuple[dict[str, str], int]:
    """Text of the ``wanted`` utterances of one transcription file, and the lines skipped.

    Raises:
        ErcgraphError: naming the file and line of a line that is not
            ``<id> [start-end]: text``, or of a second line for a wanted utterance.
    """
    texts: dict[str, str] = {}
    where: dict[str, int] = {}
    skipped = 0
    for no, line in enumerate(decode_text_file(path, encoding).split("\n"), start=1):
        if not line.strip():
            continue
        m = _TRANSCRIPT_LINE.match(line.strip())
        if m is None:
            raise ErcgraphError(
                f"{path}: line {no}: cannot parse {line.strip()!r}; expected "
                f"'<utterance id> [start-end]: text' (e.g. "
                f"'Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.')"
            )
        utt = m.group(1)
        if utt not in wanted:
            skipped += 1  # overlaps (..._MXX0) and other turns without a label
            continue
        if utt in texts:
            raise ErcgraphError(
                f"{path}: line {no}: utterance {utt!r} is transcribed twice (already at line "
                f"{where[utt]})"
            )
        texts[utt] = m.group(4).strip()
        where[utt] = no
    return texts, skipped


def _options(data: DataConfig) -> dict[str, Any]:
    """Validated ``data.options`` with defaults filled in."""
    check_options(data, IEMOCAP_OPTIONS, "iemocap")
    opts = dict(data.options or {})
    setting = opts.get("labels", "six")
    if setting not in LABEL_MAPS:
        raise ErcgraphError(f"config: data.options.labels must be 'six' or 'four', got {setting!r}")
    sessions = opts.get("sessions", list(IEMOCAP_SESSIONS))
    if (
        not isinstance(sessions, (list, tuple))
        or not sessions
        or not all(
            isinstance(s, int) and not isinstance(s, bool) and s in IEMOCAP_SESSIONS
            for s in sessions
        )
        or len(set(sessions)) != len(sessions)
    ):
        raise ErcgraphError(
            f"config: data.options.sessions must be a non-empty list of distinct session numbers "
            f"from {list(IEMOCAP_SESSIONS)}, got {sessions!r}"
        )
    sessions = sorted(sessions)
    test_session = opts.get("test_session", 5)
    if test_session is not None and test_session not in sessions:
        raise ErcgraphError(
            f"config: data.options.test_session is {test_session!r}, which is not among the "
            f"sessions read {sessions}; add it to data.options.sessions or set test_session: "
            f"null (no test split)"
        )
    dev_every = opts.get("dev_every", 10)
    if not isinstance(dev_every, int) or isinstance(dev_every, bool) or dev_every < 0:
        raise ErcgraphError(
            f"config: data.options.dev_every must be an integer >= 0 (0 = no dev split), got "
            f"{dev_every!r}"
        )
    encoding = opts.get("encoding", "utf-8")
    if not isinstance(encoding, str):
        raise ErcgraphError(f"config: data.options.encoding must be a string, got {encoding!r}")
    return {
        "labels": setting,
        "sessions": sessions,
        "test_session": test_session,
        "dev_every": dev_every,
        "encoding": encoding,
    }


def _labels(data: DataConfig, setting: str) -> tuple[str, ...]:
    default = IEMOCAP_LABELS if setting == "six" else IEMOCAP_FOUR_LABELS
    if not data.labels:
        return default
    given = tuple(str(v) for v in data.labels)
    if sorted(given) != sorted(default):
        raise ErcgraphError(
            f"config: data.labels {list(given)} must be an ordering of the {setting}-class IEMOCAP "
            f"labels {list(default)}"
        )
    return given


def release_folder(data: DataConfig, root: Path | None, sessions: list[int]) -> Path:
    """The release folder, checked to hold every requested ``Session{n}`` folder.

    Raises:
        ErcgraphError: when the path is missing or not a folder, or when a session is absent
            (naming it and listing the sessions found).
    """
    if data.paths or data.columns:
        raise ErcgraphError(
            "config: the iemocap reader takes data.path (the IEMOCAP_full_release folder); "
            "data.paths and data.columns are not used by it"
        )
    folder = resolve_data_path(data.path or "IEMOCAP_full_release", root, "data.path")
    if not folder.is_dir():
        raise ErcgraphError(
            f"data.path: {str(folder)!r} is not a folder; the iemocap reader wants the "
            f"IEMOCAP_full_release folder holding Session1 ... Session5"
        )
    folder = folder.resolve()
    found = sorted(
        int(m.group(1))
        for p in folder.iterdir()
        if p.is_dir() and (m := _SESSION_DIR.match(p.name))
    )
    missing = [s for s in sessions if s not in found]
    if missing:
        names = ", ".join(f"Session{s}" for s in missing)
        seen = ", ".join(f"Session{s}" for s in found) or "no Session folder"
        hint = ""
        if (folder / "IEMOCAP_full_release").is_dir():
            hint = f"; did you mean {str(folder / 'IEMOCAP_full_release')!r}?"
        raise ErcgraphError(
            f"{folder}: missing {names} (found {seen}); point data.path at IEMOCAP_full_release "
            f"or set data.options.sessions to the sessions present{hint}"
        )
    return folder


def _dialogue_files(folder: Path, session: int) -> list[Path]:
    emo_dir = folder / f"Session{session}" / "dialog" / "EmoEvaluation"
    if not emo_dir.is_dir():
        raise ErcgraphError(
            f"{emo_dir}: folder not found; every session needs dialog/EmoEvaluation/ with one "
            f"<dialogue>.txt label file per dialogue"
        )
    files = sorted(
        p
        for p in emo_dir.iterdir()
        if p.suffix == ".txt" and not p.name.startswith(".") and p.is_file()
    )
    if not files:
        raise ErcgraphError(f"{emo_dir}: no <dialogue>.txt label file found")
    return files


def _read_dialogue(
    folder: Path, session: int, emo_path: Path, encoding: str, rows: list[dict[str, Any]]
) -> int:
    """Append one row per labelled utterance of a dialogue; return transcript lines skipped."""
    dialogue = emo_path.stem
    labelled = parse_emo_evaluation(emo_path, encoding)
    trans_path = folder / f"Session{session}" / "dialog" / "transcriptions" / f"{dialogue}.txt"
    if not trans_path.is_file():
        raise ErcgraphError(
            f"{emo_path}: dialogue {dialogue!r} has labels but no transcription file "
            f"{str(trans_path)!r}"
        )
    texts, skipped = parse_transcription(trans_path, {e.utterance_id for e in labelled}, encoding)
    for e in labelled:
        if e.utterance_id not in texts:
            raise ErcgraphError(
                f"{trans_path}: no line for utterance {e.utterance_id!r}, which is labelled at "
                f"{emo_path}: line {e.line}"
            )
    wav_dir = folder / f"Session{session}" / "sentences" / "wav" / dialogue
    wavs = set(os.listdir(wav_dir)) if wav_dir.is_dir() else set()
    avi = folder / f"Session{session}" / "dialog" / "avi" / "DivX" / f"{dialogue}.avi"
    video = str(avi) if avi.is_file() else None
    for e in labelled:
        wav = f"{e.utterance_id}.wav"
        rows.append(
            {
                "dialogue_id": dialogue,
                "speaker": iemocap_speaker(e.utterance_id),
                "consensus_label": e.label,
                "text": texts[e.utterance_id],
                "start": e.start,
                "end": e.end,
                "valence": e.valence,
                "arousal": e.arousal,
                "dominance": e.dominance,
                "audio_path": str(wav_dir / wav) if wav in wavs else None,
                "video_path": video,
                "session": session,
                "utterance_id": e.utterance_id,
            }
        )
    return skipped


def dev_dialogues(train_pool: list[str], dev_every: int) -> set[str]:
    """The dev rule: sorted positions 0, ``dev_every``, 2 * ``dev_every`` ... of the pool."""
    if dev_every == 0:
        return set()
    return set(sorted(train_pool)[::dev_every])


@READERS.register("iemocap")
def read_iemocap(data: DataConfig, root: Path | None) -> Corpus:
    """Read the official IEMOCAP release folder into a Corpus (see the module docstring).

    Args:
        data: The ``data`` config section: ``path`` (the release folder), ``labels`` (an
            ordering of the chosen label set), ``name`` and ``options`` (``labels``,
            ``sessions``, ``test_session``, ``dev_every``, ``encoding``).
        root: Data root against which a relative ``path`` is resolved.

    Raises:
        ErcgraphError: naming the folder, file or line of the first problem.
    """
    opts = _options(data)
    labels = _labels(data, opts["labels"])
    folder = release_folder(data, root, opts["sessions"])

    rows: list[dict[str, Any]] = []
    skipped = 0
    for session in opts["sessions"]:
        for emo_path in _dialogue_files(folder, session):
            skipped += _read_dialogue(folder, session, emo_path, opts["encoding"], rows)
    df = pd.DataFrame(rows)

    dialogue_session = df.groupby("dialogue_id", sort=True)["session"].first()
    is_test = dialogue_session == opts["test_session"]
    dev = dev_dialogues(list(dialogue_session.index[~is_test]), opts["dev_every"])
    split_of = pd.Series("train", index=dialogue_session.index)
    split_of[is_test] = "test"
    split_of[split_of.index.isin(sorted(dev))] = "dev"
    df["split"] = df["dialogue_id"].map(split_of)

    label_map = LABEL_MAPS[opts["labels"]]
    df["label"] = df["consensus_label"].map(label_map)
    dropped = df["label"].isna()
    by_label = Counter(df.loc[dropped, "consensus_label"])
    kept = df[~dropped]
    empty = sorted(set(df["dialogue_id"]) - set(kept["dialogue_id"]))
    kept = kept.sort_values(["dialogue_id", "start", "end", "utterance_id"], kind="stable")
    kept = kept.assign(turn=kept.groupby("dialogue_id", sort=False).cumcount())
    if not (kept["video_path"].notna()).any():
        kept = kept.drop(columns="video_path")
    first = ["split", "dialogue_id", "turn", "speaker", "label"]
    kept = kept[first + [c for c in kept.columns if c not in first]].reset_index(drop=True)

    dev_rule = (
        f"every {opts['dev_every']}th training dialogue by sorted name, from the first"
        if opts["dev_every"]
        else "none"
    )
    meta = {
        "reader": "iemocap",
        "label_setting": opts["labels"],
        "sessions": opts["sessions"],
        "test_session": opts["test_session"],
        "dev_rule": dev_rule,
        "dropped_utterances": int(dropped.sum()),
        "dropped_by_label": dict(sorted(by_label.items())),
        "dropped_dialogues": empty,
        "skipped_transcript_lines": skipped,
        "missing_audio": int(kept["audio_path"].isna().sum()),
    }
    return Corpus(kept, data.name or "iemocap", labels, str(folder), meta)
