"""A tiny, faithful ``IEMOCAP_full_release`` layout for the iemocap reader tests.

IEMOCAP itself is licence-restricted, so the tests build this fixture instead: invented lines in
the official file formats (EmoEvaluation blocks with evaluator votes, transcriptions with an
overlap line, 16 kHz mono utterance wavs, stereo dialogue wavs). The ``.avi`` files written with
``with_avi=True`` are placeholders (a few bytes, not a playable video): they only exist so the
reader can record ``video_path``.

:func:`fixture_dialogues` describes the content, so tests can compute what the reader must
return; the EmoEvaluation blocks are written women first, then men (not in time order), so a
reader that orders turns by file position or by name fails the tests.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

RATE = 16000

# (speaker letter, start, end, text) of up to six utterances, in time order
_SCRIPT = (
    ("F", 1.5, 3.2, "Excuse me."),
    ("M", 3.4, 5.0, "Do you have your forms?"),
    ("F", 5.1, 7.25, "Yeah, I have them here."),
    ("M", 7.3, 9.0, "You need a different one."),
    ("F", 9.2, 10.0, "What? Are you kidding?"),
    ("M", 10.1, 12.0, "No, I'm sorry."),
)
# consensus labels, one row per dialogue kind; xxx, sur, oth are dropped in both settings
_LABELS = (
    ("neu", "xxx", "fru", "exc", "ang", "sad"),
    ("hap", "neu", "sur", "sad", "exc", "fru"),
    ("ang", "fru", "neu", "xxx", "hap", "oth"),
)


@dataclass(frozen=True)
class FixtureUtterance:
    """One utterance of the fixture, as the EmoEvaluation/transcription files state it."""

    utterance_id: str
    speaker: str  # Corpus speaker, e.g. "Ses01_F"
    start: float
    end: float
    label: str  # consensus label as annotated
    valence: float
    arousal: float
    dominance: float
    text: str


def dialogue_name(session: int, k: int) -> str:
    """Name of the ``k``-th fixture dialogue of a session (impro and script alternate)."""
    actor = "F" if k % 2 == 0 else "M"
    if k % 2 == 0:
        return f"Ses{session:02d}{actor}_impro{k // 2 + 1:02d}"
    return f"Ses{session:02d}{actor}_script{k // 2 + 1:02d}_1"


def fixture_dialogues(
    sessions: tuple[int, ...] = (1, 2, 3, 4, 5), dialogs_per_session: int = 2
) -> dict[str, list[FixtureUtterance]]:
    """Dialogue name → its utterances in time order (4 to 6 each, both speakers)."""
    out: dict[str, list[FixtureUtterance]] = {}
    for s in sessions:
        for k in range(dialogs_per_session):
            name = dialogue_name(s, k)
            n = 4 + (s + k) % 3
            labels = _LABELS[(s + 2 * k) % 3]
            counts = {"F": 0, "M": 0}
            utts = []
            for j, (who, start, end, text) in enumerate(_SCRIPT[:n]):
                uid = f"{name}_{who}{counts[who]:03d}"
                counts[who] += 1
                utts.append(
                    FixtureUtterance(
                        uid,
                        f"Ses{s:02d}_{who}",
                        start + s,
                        end + s,
                        labels[j],
                        1.5 + 0.5 * j,
                        2.0 + 0.5 * k,
                        3.0 + 0.25 * s,
                        f"{text} ({name} {j})",
                    )
                )
            out[name] = utts
    return out


def write_wav(path: Path, seconds: float = 0.1, channels: int = 1) -> None:
    """A valid 16-bit PCM wav of silence at 16 kHz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"\x00\x00" * channels * int(RATE * seconds))


def _emo_block(u: FixtureUtterance) -> str:
    vote = {
        "neu": "Neutral",
        "hap": "Happiness",
        "sad": "Sadness",
        "ang": "Anger",
        "exc": "Excited",
        "fru": "Frustration",
        "sur": "Surprise",
        "oth": "Other",
    }.get(u.label, "Neutral")
    return (
        f"[{u.start:.4f} - {u.end:.4f}]\t{u.utterance_id}\t{u.label}\t"
        f"[{u.valence:.4f}, {u.arousal:.4f}, {u.dominance:.4f}]\n"
        f"C-E1:\t{vote};\t()\n"
        f"C-E2:\t{vote}; Neutral;\t(unsure)\n"
        f"A-E1:\tval 3; act 2; dom  2;\t()\n\n"
    )


def write_iemocap_fixture(
    root: Path,
    sessions: tuple[int, ...] = (1, 2, 3, 4, 5),
    dialogs_per_session: int = 2,
    with_avi: bool = False,
) -> Path:
    """Write a tiny IEMOCAP release under ``root`` and return its ``IEMOCAP_full_release`` folder.

    Args:
        root: Folder to write into (created if needed).
        sessions: Session numbers to write.
        dialogs_per_session: Dialogues per session (4 to 6 utterances each).
        with_avi: Also write placeholder ``dialog/avi/DivX/<dialogue>.avi`` files.
    """
    release = Path(root) / "IEMOCAP_full_release"
    for name, utts in fixture_dialogues(tuple(sessions), dialogs_per_session).items():
        session = int(name[3:5])
        base = release / f"Session{session}"
        dialog = base / "dialog"
        for sub in ("EmoEvaluation/Categorical", "transcriptions", "wav"):
            (dialog / sub).mkdir(parents=True, exist_ok=True)
        # women's blocks first, then men's: the file order is not the time order
        ordered = sorted(utts, key=lambda u: (u.utterance_id[-4], u.utterance_id))
        header = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
        (dialog / "EmoEvaluation" / f"{name}.txt").write_text(
            header + "".join(_emo_block(u) for u in ordered), encoding="utf-8"
        )
        (dialog / "EmoEvaluation" / "Categorical" / f"{name}_e1_cat.txt").write_text(
            "".join(f"{u.utterance_id} :Neutral state; ()\n" for u in utts), encoding="utf-8"
        )
        lines = [f"{u.utterance_id} [{u.start:08.4f}-{u.end:08.4f}]: {u.text}" for u in utts]
        # an overlap turn, which has no label and must be skipped
        lines.insert(2, f"{name}_MXX0 [{utts[1].start:08.4f}-{utts[1].end:08.4f}]: Mm-hmm.")
        (dialog / "transcriptions" / f"{name}.txt").write_text(
            "\n".join(lines) + "\n", encoding="utf-8"
        )
        write_wav(dialog / "wav" / f"{name}.wav", seconds=0.2, channels=2)
        for u in utts:
            write_wav(base / "sentences" / "wav" / name / f"{u.utterance_id}.wav")
        if with_avi:
            avi = dialog / "avi" / "DivX" / f"{name}.avi"
            avi.parent.mkdir(parents=True, exist_ok=True)
            avi.write_bytes(b"RIFF\x04\x00\x00\x00AVI ")  # placeholder, not a playable video
    return release
