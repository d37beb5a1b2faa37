"""Encoder inputs with dialogue context: past and future turns around a target utterance.

Two layouts, chosen by the settings:

* **Past turns only, pooled over all tokens** (``future_turns == 0``, ``pool == "all"``): the
  earlier string format of :func:`~ercgraph.encoders.text.build_inputs` (``"speaker: text"``
  turns joined by the separator, the target last) truncated from the left, so the oldest context
  goes first. Kept as it was so that encoders fine-tuned before stay valid in the cache.
* **Turn by turn** (``future_turns > 0`` or ``pool == "target"``): every turn is tokenised once
  as ``"speaker: text"`` without special tokens and the input is assembled as
  ``[CLS] p_k [SEP] ... p_1 [SEP] target [SEP] f_1 [SEP] ... f_m [SEP]`` (the tokenizer's own
  start and separator tokens). The target goes in first; context turns join whole, nearest
  first and alternating past/future, while they fit in ``max_length``. A side stops at the
  first turn that does not fit, so the context stays contiguous. The target's token span is
  returned, for ``pool: target``.

In both layouts the target is never cut for the sake of context: only a target that alone
exceeds ``max_length`` loses its end (counted as ``target_cut``). ``context_cut`` counts inputs
that lost at least one turn of their window to the limit; both are logged and recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ercgraph.errors import ErcgraphError

if TYPE_CHECKING:
    from ercgraph.data.corpus import Corpus

log = logging.getLogger(__name__)

POOLS = ("all", "target")


@dataclass
class EncoderInputs:
    """Token ids per corpus row, with the target's ``[start, end)`` span (None: pool all) and
    how often the limit cut something."""

    ids: list[list[int]]
    spans: list[tuple[int, int]] | None = None
    context_cut: int = 0
    target_cut: int = 0
    stats: dict[str, Any] = field(default_factory=dict)

    def take(self, rows: np.ndarray | list[int]) -> EncoderInputs:
        """The inputs of some rows (same order)."""
        spans = None if self.spans is None else [self.spans[i] for i in rows]
        return EncoderInputs([self.ids[i] for i in rows], spans)


def turn_by_turn(future_turns: int, pool: str) -> bool:
    """Whether the settings need the turn-by-turn layout."""
    return future_turns > 0 or pool == "target"


def check_window(context_turns: int, future_turns: int, pool: str, where: str) -> None:
    """Refuse negative windows and unknown pooling spans, naming the config key."""
    if context_turns < 0 or future_turns < 0:
        raise ErcgraphError(
            f"config: {where}.context_turns and {where}.future_turns must be >= 0, got "
            f"{context_turns} and {future_turns}"
        )
    if pool not in POOLS:
        raise ErcgraphError(f"config: {where}.pool must be one of {list(POOLS)}, got {pool!r}")


def _special(tokenizer: Any) -> tuple[int, int]:
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if start is None or sep is None:
        raise ErcgraphError(
            f"text encoder {getattr(tokenizer, 'name_or_path', '?')!r}: its tokenizer has no "
            "start/separator tokens (cls/bos and sep/eos), needed to place dialogue context "
            "around the target; use context_turns: 0 and future_turns: 0"
        )
    return int(start), int(sep)


def build_encoder_inputs(
    corpus: Corpus,
    encoder: Any,
    context_turns: int,
    future_turns: int = 0,
    pool: str = "all",
) -> EncoderInputs:
    """The token ids of every Corpus row (row order) for ``encoder`` (a
    :class:`~ercgraph.encoders.text.TextEncoder`), with ``context_turns`` previous and
    ``future_turns`` following turns of the same dialogue around the target.

    Raises:
        ErcgraphError: no ``text`` column, a negative window, an unknown ``pool``.
    """
    from ercgraph.encoders.text import build_inputs

    check_window(context_turns, future_turns, pool, "features.text")
    limit = encoder.max_length
    if not turn_by_turn(future_turns, pool):
        texts = build_inputs(corpus, context_turns, sep=encoder.sep)
        ids = encoder.tokenize(texts)
        cut = target_cut = 0
        if context_turns > 0:
            full = encoder.tokenizer(texts, truncation=False, return_attention_mask=False)
            alone = encoder.tokenizer(_turns(corpus), truncation=False, return_attention_mask=False)
            over = [len(x) > limit for x in full["input_ids"]]
            target_cut = int(sum(len(x) > limit for x in alone["input_ids"]))
            cut = int(sum(over)) - target_cut
        out = EncoderInputs(ids, None, context_cut=cut, target_cut=target_cut)
        return _report(out, corpus, limit)

    if "text" not in corpus.df.columns:
        raise ErcgraphError(f"{corpus.source or corpus.name}: text features need a 'text' column")
    start, sep = _special(encoder.tokenizer)
    df = corpus.df
    turns = _turns(corpus) if context_turns or future_turns else build_inputs(corpus, 0)
    toks = encoder.tokenizer(turns, add_special_tokens=False, return_attention_mask=False)
    toks = [list(t) for t in toks["input_ids"]]
    dialogue = df["dialogue_id"].to_numpy()
    # rows of a dialogue are contiguous and in turn order
    bounds = np.flatnonzero(np.r_[True, dialogue[1:] != dialogue[:-1], True])
    first = np.repeat(bounds[:-1], np.diff(bounds))
    last = np.repeat(bounds[1:], np.diff(bounds))
    ids: list[list[int]] = []
    spans: list[tuple[int, int]] = []
    context_cut = target_cut = 0
    for i in range(len(df)):
        target = toks[i]
        room = limit - 2
        if len(target) > room:
            target, room = target[:room], 0
            target_cut += 1
        else:
            room -= len(target)
        past = [toks[j] for j in range(i - 1, max(first[i], i - context_turns) - 1, -1)]
        future = [toks[j] for j in range(i + 1, min(last[i], i + 1 + future_turns))]
        kept_p, kept_f = [], []
        open_p, open_f = True, True
        for k in range(max(len(past), len(future))):
            for side, kept, is_open in ((past, kept_p, open_p), (future, kept_f, open_f)):
                if k >= len(side) or not is_open:
                    continue
                if len(side[k]) + 1 <= room:
                    kept.append(side[k])
                    room -= len(side[k]) + 1
                elif side is past:
                    open_p = False
                else:
                    open_f = False
        if len(kept_p) < len(past) or len(kept_f) < len(future):
            context_cut += 1
        row = [start]
        for turn in reversed(kept_p):
            row += turn + [sep]
        span = (len(row), len(row) + len(target))
        row += target + [sep]
        for turn in kept_f:
            row += turn + [sep]
        ids.append(row)
        spans.append(span)
    out = EncoderInputs(ids, spans, context_cut=context_cut, target_cut=target_cut)
    return _report(out, corpus, limit)


def _turns(corpus: Corpus) -> list[str]:
    """Every row as ``"speaker: text"`` (a missing text is empty)."""
    df = corpus.df
    text = df["text"].astype(object).where(df["text"].notna(), "").astype(str)
    return (df["speaker"].astype(str) + ": " + text).tolist()


def _report(inputs: EncoderInputs, corpus: Corpus, limit: int) -> EncoderInputs:
    n = len(inputs.ids)
    inputs.stats = {
        "inputs": n,
        "context_cut": inputs.context_cut,
        "target_cut": inputs.target_cut,
        "max_length": int(limit),
        "mean_tokens": round(float(np.mean([len(x) for x in inputs.ids])), 2) if n else 0.0,
    }
    if inputs.context_cut or inputs.target_cut:
        log.info(
            "%s: the %d-token limit cut the context of %d of %d inputs (%.1f%%)%s",
            corpus.source or corpus.name,
            limit,
            inputs.context_cut,
            n,
            100.0 * inputs.context_cut / max(n, 1),
            f"; {inputs.target_cut} targets were longer than the limit alone and lost their end"
            if inputs.target_cut
            else "",
        )
    return inputs


__all__ = ["POOLS", "EncoderInputs", "build_encoder_inputs", "check_window", "turn_by_turn"]
