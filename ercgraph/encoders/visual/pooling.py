"""Pooling of the frame vectors of a clip into one utterance vector: :func:`pool_frames`."""

from __future__ import annotations

import torch

from ercgraph.errors import ErcgraphError

POOLINGS = ("mean", "attention")
# Temperature of the attention pooling: cosine similarities lie in [-1, 1], so 0.1 lets a frame
# that agrees with the clip (cos 0.9) outweigh an outlier (cos 0.5) by e^4, about 55 to 1.
ATTENTION_TEMPERATURE = 0.1


def pool_frames(x: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """Pool frame vectors ``[n, dim]`` into one utterance vector ``[dim]``.

    ``mean`` averages the frames. ``attention`` is a parameter-free attention whose query ``q``
    is the mean of the L2-normalised frame vectors (each frame one vote, whatever its norm):
    frame ``i`` weighs ``softmax_i(cos(x_i, q) / ATTENTION_TEMPERATURE)`` and the result is the
    weighted mean of the (unnormalised) ``x_i``. Frames that agree with the rest of the clip
    dominate and outliers (a cut to another shot, a blurred or face-less frame) count less.
    Identical frames give their common vector either way.

    Raises:
        ErcgraphError: for an unknown pooling or an empty input.
    """
    if pooling not in POOLINGS:
        raise ErcgraphError(
            f"visual encoder: pooling must be one of {list(POOLINGS)}, got {pooling!r}"
        )
    if x.dim() != 2 or x.shape[0] == 0:
        raise ErcgraphError(
            f"visual encoder: cannot pool frame vectors of shape "
            f"{tuple(x.shape)} (expected [frames >= 1, dim])"
        )
    mean = x.mean(0)
    if pooling == "mean":
        return mean
    unit = torch.nn.functional.normalize(x, dim=1, eps=1e-8)
    sim = unit @ torch.nn.functional.normalize(unit.mean(0), dim=0, eps=1e-8)
    weight = torch.softmax(sim / ATTENTION_TEMPERATURE, dim=0)
    return weight @ x
