"""Progress for long steps: a tqdm bar on a terminal, a periodic log line everywhere else.

tqdm hides its bar when stderr is not a terminal (CI logs, ``nohup``, a pipe), which left long
steps silent; there the same progress goes to the log every ``every`` seconds and at the end.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger("ercgraph.progress")


class Progress:
    """``with Progress(total, desc) as bar: bar.update(n)``.

    Args:
        total: the number of units.
        desc: what is counted, e.g. ``"text features"``.
        unit: the unit's name.
        enabled: False shows nothing at all.
        every: seconds between log lines when stderr is not a terminal.
    """

    def __init__(
        self, total: int, desc: str, unit: str = "it", enabled: bool = True, every: float = 30.0
    ) -> None:
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.done = 0
        self.postfix = ""
        self.enabled = enabled
        self.tty = enabled and _stderr_is_terminal()
        self._bar: Any = None
        self._t0 = self._last = time.monotonic()

    def __enter__(self) -> Progress:
        if self.tty:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=self.desc, unit=self.unit)
        return self

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled and time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            self._log()

    def set_postfix(self, **values: Any) -> None:
        """Extra figures shown beside the bar (and in the log line)."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())
        if self._bar is not None:
            self._bar.set_postfix(**values)

    def _log(self) -> None:
        pct = 100.0 * self.done / self.total if self.total else 100.0
        log.info(
            "%s: %d/%d %s (%.0f%%, %.0f s)%s",
            self.desc,
            self.done,
            self.total,
            self.unit,
            pct,
            time.monotonic() - self._t0,
            f" {self.postfix}" if self.postfix else "",
        )

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self.total:
            self._log()


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
