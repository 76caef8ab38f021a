"""A progress bar that readers drive by position (bytes read, files seen), and that stays quiet off a terminal.

``tqdm`` is shown on an interactive stderr (or when forced); in logs and tests nothing is printed. Readers
call :meth:`Progress.start` once with a total when they know one, then :meth:`Progress.update_to` with
their absolute position, which costs nothing when the bar is off.
"""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """One bar: ``start(total, unit)``, ``update_to(position)``, ``close()``."""

    def __init__(self, desc: str, enabled: bool | None = None) -> None:
        self.desc = desc
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar: Any = None
        self._position = 0

    def start(self, total: int | None, unit: str) -> None:
        """Open the bar; ``unit="B"`` shows bytes with SI prefixes."""
        if not self.enabled:
            return
        from tqdm import tqdm

        self._bar = tqdm(
            total=total,
            desc=self.desc,
            unit=unit,
            unit_scale=unit == "B",
            dynamic_ncols=True,
            file=sys.stderr,
        )

    def update_to(self, position: int) -> None:
        """Move the bar to ``position`` (never backwards)."""
        if self._bar is not None and position > self._position:
            self._bar.update(position - self._position)
            self._position = position

    def close(self) -> None:
        """Finish the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
