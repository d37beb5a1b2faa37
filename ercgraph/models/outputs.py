"""The one object a model's forward returns, read by heads and loss terms."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class ModelOutput:
    """What a forward pass produced, read by attribute (never by position).

    Args:
        utterance: utterance representations ``[N, d]`` (the fused modality nodes), what the
            heads read.
        nodes: modality → node states ``[N, h]`` after message passing.
        inputs: modality → the raw input features ``[N, in_dim]`` (reconstruction targets).
        present: modality → bool ``[N]``, False where the modality is missing.
        node_masks: modality → bool ``[N]``, nodes whose input was masked in this step (empty
            outside training or without a masking head).
        aux: named auxiliary tensors written by heads (``logits``, ``sentiment_logits``,
            ``regression``, ``reconstruction/<modality>`` ...) and by models.
        logits: the emotion logits ``[N, num_classes]`` (None without an emotion head).
    """

    utterance: Tensor
    nodes: dict[str, Tensor]
    inputs: dict[str, Tensor]
    present: dict[str, Tensor]
    node_masks: dict[str, Tensor] = field(default_factory=dict)
    aux: dict[str, Tensor] = field(default_factory=dict)
    logits: Tensor | None = None
