""":class:`PickleLayout`: the fields of one known pickle layout and the role each one plays."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ercgraph.errors import ErcgraphError


@dataclass(frozen=True)
class PickleLayout:
    """One known pickle layout: its fields and the role each one plays.

    Args:
        name: Short name (``dialoguegcn``), used in messages and manifests.
        fields: The field names in order, as the reference loaders call them.
        title: What it is, for messages (``COSMIC MELD text/label``).
        speakers, labels, train, test: Names of the fields holding those.
        dev: The validation key list, or None when ``train`` holds train ∪ dev.
        sentiments, sentences, ids: Optional per-utterance fields.
        text: Text feature fields; the first is the default ``text`` modality.
        audio, visual: Audio/visual feature fields (None: the layout has none).
        aliases: ``(alias, field)`` pairs accepted in ``data.options.text_fields``.
        meld: The layout is MELD-only (keys must follow the MELD convention).
        alternatives: Layouts of the same length, chosen when their ``matches`` says so.
        matches: ``obj -> bool``, whether an object of this length is this layout.
    """

    name: str
    fields: tuple[str, ...]
    title: str
    speakers: str
    labels: str
    train: str
    test: str
    dev: str | None = None
    sentiments: str | None = None
    sentences: str | None = None
    ids: str | None = None
    text: tuple[str, ...] = ()
    audio: str | None = None
    visual: str | None = None
    aliases: tuple[tuple[str, str], ...] = ()
    meld: bool = False
    alternatives: tuple[PickleLayout, ...] = ()
    matches: Callable[[Sequence[Any]], bool] | None = None

    def describe(self) -> str:
        variants = (self, *self.alternatives)
        inner = " | ".join(f"{v.name}: {', '.join(v.fields)}" for v in variants)
        return f"{len(self.fields)} items ({inner})"

    def index(self, field: str) -> int:
        return self.fields.index(field)

    @property
    def table_fields(self) -> tuple[str, ...]:
        """Fields that must be dicts keyed by dialogue."""
        named = (
            self.speakers,
            self.labels,
            self.sentiments,
            self.sentences,
            self.ids,
            *self.text,
            self.audio,
            self.visual,
        )
        return tuple(f for f in named if f is not None)

    @property
    def key_fields(self) -> tuple[str, ...]:
        return tuple(f for f in (self.train, self.test, self.dev) if f is not None)

    def resolve_text(self, names: Sequence[str]) -> list[str]:
        """Field names for ``data.options.text_fields`` entries (aliases resolved)."""
        alias = dict(self.aliases)
        out = []
        for name in names:
            field = alias.get(name, name)
            if field not in self.text:
                known = sorted(set(self.text) | {a for a, f in self.aliases if f in self.text})
                raise ErcgraphError(
                    f"config: data.options.text_fields: {name!r} is not a text field of the "
                    f"{self.name} layout; available: {', '.join(known)}"
                )
            out.append(field)
        return out
