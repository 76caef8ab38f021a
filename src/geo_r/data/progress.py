"""Progress of a long pass over rows: a bar on a terminal, a log line every half minute in a batch job's log.

Validation, mining, the training-data cache and the explorer each walk millions of rows for minutes. On an
interactive stderr :class:`RowProgress` draws a ``tqdm`` bar with rows/s and an ETA; elsewhere (a SLURM log,
``nohup``) it prints ``what: 1,200,000 rows (35 %), 12,400 rows/s, ETA 1:40`` every ``log_every_s`` seconds, so a
job is never silent for long. The total is a row count when known, else the bytes of the files being read (the
ETA then follows the bytes). Updates cost a counter increment; the clock is read every 256 rows.
"""

from __future__ import annotations

import sys
import time
from typing import Any

_CHECK_EVERY = 256
LOG_EVERY_S = 30.0  # seconds between log lines off a terminal


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class RowProgress:
    """``update(rows, position)`` while reading; ``close()`` at the end (also a context manager).

    ``mode``: ``"auto"`` (a bar on a terminal, else log lines), ``"bar"``, ``"log"`` or ``"off"``."""

    def __init__(
        self,
        what: str,
        *,
        total_rows: int | None = None,
        total_bytes: int | None = None,
        mode: str = "auto",
        log_every_s: float | None = None,
    ) -> None:
        if mode not in ("auto", "bar", "log", "off"):
            raise ValueError(f"progress mode must be auto, bar, log or off, not {mode!r}")
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "log"
        self.what, self.mode = what, mode
        self.total_rows, self.total_bytes = total_rows, total_bytes
        self.rows = 0
        self.position = 0
        self.start = time.monotonic()
        self.log_every_s = LOG_EVERY_S if log_every_s is None else log_every_s
        self._next_log = self.start + self.log_every_s
        self._next_check = _CHECK_EVERY
        self._bar: Any = None
        self._bar_done = 0
        if mode == "bar":
            from tqdm import tqdm

            by_rows = total_rows is not None or total_bytes is None
            self._bar = tqdm(total=total_rows if by_rows else total_bytes, desc=what, unit="rows" if by_rows else "B",
                             unit_scale=not by_rows, dynamic_ncols=True, file=sys.stderr)
            self._by_rows = by_rows

    def __enter__(self) -> RowProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, rows: int = 1, position: int | None = None) -> None:
        """Count ``rows`` more rows; ``position``: bytes read so far (when the total is in bytes)."""
        self.rows += rows
        if position is not None:
            self.position = position
        if self.rows >= self._next_check:
            self._next_check = self.rows + _CHECK_EVERY
            self._tick()

    def fraction(self) -> float | None:
        """How much of the work is done, in [0, 1]; None without a total."""
        if self.total_rows:
            return min(1.0, self.rows / self.total_rows)
        if self.total_bytes:
            return min(1.0, self.position / self.total_bytes)
        return None

    def status(self) -> str:
        """``what: N rows (P %), R rows/s, ETA m:ss`` (the log line)."""
        elapsed = max(time.monotonic() - self.start, 1e-9)
        text = f"{self.what}: {self.rows:,} rows"
        done = self.fraction()
        if done is not None:
            text += f" ({100 * done:.0f} %)"
        text += f", {self.rows / elapsed:,.0f} rows/s"
        if done:
            text += f", ETA {_clock(elapsed * (1 - done) / done)}"
        return text

    def _tick(self) -> None:
        now = time.monotonic()
        if self.mode == "log" and now >= self._next_log:
            self._next_log = now + self.log_every_s
            self._say(self.status())
        elif self._bar is not None:
            target = self.rows if self._by_rows else self.position
            if target > self._bar_done:
                self._bar.update(target - self._bar_done)
                self._bar_done = target
            if not self._by_rows:
                rate = self.rows / max(now - self.start, 1e-9)
                self._bar.set_postfix_str(f"{self.rows:,} rows, {rate:,.0f} rows/s", refresh=False)

    def close(self) -> None:
        """Finish the bar (or log the last line when the pass took longer than one log interval)."""
        if self._bar is not None:
            self._tick()
            self._bar.close()
            self._bar = None
        elif self.mode == "log" and time.monotonic() - self.start >= self.log_every_s:
            self._say(f"{self.status().split(', ETA')[0]}; done in {_clock(time.monotonic() - self.start)}")
        self.mode = "off"

    @staticmethod
    def _say(text: str) -> None:
        print(f"[geo-r] {text}", file=sys.stderr, flush=True)
