"""torch's weights_only refusals, in one line that says what was refused (issue 22, item 14).

torch 2.14 wraps the cause in new sentences ("Re-running torch.load with weights_only set to
False will likely succeed..."); the cause is taken from the restricted unpickler's own message,
and torch's advice to turn the check off never reaches the user.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from ercgraph.data.safe_pickle import PickleRefused, weights_only_cause
from ercgraph.errors import ErcgraphError

_UNSAFE = (
    "In PyTorch 2.6, we changed the default value of the `weights_only` argument in `torch.load` "
    "from `False` to `True`. Re-running `torch.load` with `weights_only` set to `False` will "
    "likely succeed, but it can result in arbitrary code execution. Do it only if you got the "
    "file from a trusted source."
)
_DOCS = (
    "\n\nCheck the documentation of torch.load to learn more about types accepted by default "
    "with weights_only https://pytorch.org/docs/stable/generated/torch.load.html."
)


class _RunsShell:
    """Pickles as a call to os.system; pickling only records the reference, it runs nothing."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    "message, cause",
    [
        # torch 2.14: a blocked module, no "WeightsUnpickler error:" marker
        (
            f"Weights only load failed. {_UNSAFE}\n\n\nTrying to load unsupported GLOBAL "
            f"posix.system whose module posix is blocked.{_DOCS}",
            "unsupported GLOBAL posix.system",
        ),
        # torch 2.4-2.6: the marker, then the global and advice to allowlist it
        (
            "Weights only load failed. This file can still be loaded, to do so you have two "
            "options, \x1b[1mdo those steps only if you trust the source of the checkpoint\x1b[0m."
            f" \n\t(1) {_UNSAFE}\n\t(2) Alternatively, to load with `weights_only=True` please "
            "check the recommended steps in the following error message.\n\tWeightsUnpickler "
            "error: Unsupported global: GLOBAL pandas.core.frame.DataFrame was not an allowed "
            "global by default. Please use `torch.serialization.add_safe_globals([DataFrame])` "
            f"to allowlist this global if you trust this class/function.{_DOCS}",
            "unsupported GLOBAL pandas.core.frame.DataFrame",
        ),
        (
            f"Weights only load failed. {_UNSAFE}\nPlease file an issue: WeightsUnpickler error: "
            "Can only build Tensor, Parameter, OrderedDict or types allowlisted via "
            f"`add_safe_globals`, but got <class 'collections.Counter'>{_DOCS}",
            "BUILD of <class 'collections.Counter'>",
        ),
        # a wording not seen yet: torch's sentences about weights_only are dropped
        (
            f"Weights only load failed. {_UNSAFE}\n\nSomething new went wrong at byte 12.{_DOCS}",
            "Something new went wrong at byte 12.",
        ),
    ],
    ids=["2.14-blocked", "2.4-global", "build", "unknown-wording"],
)
def test_cause_is_found_in_every_wording(message: str, cause: str) -> None:
    refused, text = weights_only_cause(pickle.UnpicklingError(message))
    assert refused and text == cause


def test_only_unpickler_errors_are_weights_only_refusals() -> None:
    assert weights_only_cause(RuntimeError("PytorchStreamReader failed")) is None
    assert weights_only_cause(PickleRefused("dtype M8: no")) == (True, "dtype M8: no")
    garbage = pickle.UnpicklingError(f"Weights only load failed. {_UNSAFE}\nUnsupported operand 3")
    assert weights_only_cause(garbage) == (False, "unsupported pickle opcode 3")


def test_real_refusal_of_os_system(tmp_path: Path) -> None:
    """Whatever this torch's wording, the cause is the global that was refused."""
    torch.save({"x": _RunsShell()}, tmp_path / "evil.pt")
    with pytest.raises(pickle.UnpicklingError) as info:
        torch.load(tmp_path / "evil.pt", weights_only=True)
    assert weights_only_cause(info.value) == (
        True,
        f"unsupported GLOBAL {os.system.__module__}.system",
    )


def test_malicious_checkpoint_of_a_run(tmp_path: Path) -> None:
    """A run's ``seed_0/last.pt`` that ``train --resume`` reads."""
    from ercgraph.train import _load_checkpoint

    seed = tmp_path / "run" / "seed_0"
    seed.mkdir(parents=True)
    ckpt = seed / "last.pt"
    torch.save({"epoch": 1, "model": _RunsShell()}, ckpt)
    with pytest.raises(ErcgraphError) as info:
        _load_checkpoint(ckpt)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(
        f"{ckpt}: refused by safe loading (weights_only=True): unsupported GLOBAL "
        f"{os.system.__module__}.system; "
    ), msg
    assert "delete that seed folder" in msg
    for advice in ("False", "trust", "safe_globals", "http"):
        assert advice not in msg, msg
    # a file that is no checkpoint at all
    ckpt.write_bytes(b"\x00garbage")
    with pytest.raises(ErcgraphError, match="delete that seed folder"):
        _load_checkpoint(ckpt)
