"""A one-line progress bar on stderr for the long commands (indexing, eval, tune, bench); silent off a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """``done`` of ``total`` units with their rate and the time left, redrawn at most five times a second.

    ``enabled``: None draws only when the stream is a terminal (so logs and pipes stay clean). ``close`` ends the
    line, or erases it with ``erase=True`` (for a bar that a printed result replaces); a bar also works as a
    context manager.
    """

    def __init__(
        self,
        total: int,
        label: str,
        *,
        unit: str = "items",
        enabled: bool | None = None,
        erase: bool = False,
        stream: TextIO | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(self.stream.isatty()) if enabled is None else bool(enabled)
        self.total, self.label, self.unit, self.erase = total, label, unit, erase
        self.started = self.drawn = time.perf_counter()
        self.done = 0
        self._drawn_once = False

    def update(self, done: int, note: str = "") -> None:
        self.done = done
        if not self.enabled:
            return
        now = time.perf_counter()
        if self._drawn_once and now - self.drawn < 0.2 and done < self.total:
            return
        self.drawn, self._drawn_once = now, True
        rate = done / max(now - self.started, 1e-9)
        left = (self.total - done) / rate if rate > 0 else 0.0
        width = 30
        filled = int(width * done / max(self.total, 1))
        extra = f", {note}" if note else ""
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done:,}/{self.total:,} {self.unit}{extra}, "
            f"{rate:,.1f}/s, {left:,.0f} s left \x1b[K"
        )
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line: keep it, or erase it so that the command's own output takes its place."""
        if self.enabled and self._drawn_once:
            self.stream.write("\r\x1b[K" if self.erase else "\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
