"""Arrays that rows are appended to one write at a time: a view of the first rows of a buffer that grows by half when
full, so that adding a document to a large index copies none of the rows it holds (the buffer is copied once in
a while, not on every append). A view taken before an append stays what it was: appends write past its end."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["GrowingArray"]


class GrowingArray:
    """An array of ``len(array)`` rows over a buffer with room after them; new rows are ``fill``. Writes into
    ``array`` (a view) are the buffer's, so they survive the buffer being replaced by a larger one."""

    __slots__ = ("_buffer", "_fill", "_n")

    def __init__(self, initial: npt.NDArray[Any], fill: Any = 0) -> None:
        self._buffer = initial  # used as is: its rows are the array's, and it has no room after them yet
        self._n = len(initial)
        self._fill = fill

    @property
    def array(self) -> npt.NDArray[Any]:
        return self._buffer[: self._n]

    def resize(self, n: int) -> npt.NDArray[Any]:
        """The array lengthened to ``n`` rows (the new ones ``fill``); returns it. It never shortens."""
        if n > len(self._buffer):
            size = max(n, len(self._buffer) + len(self._buffer) // 2)
            shape, dtype = (size, *self._buffer.shape[1:]), self._buffer.dtype
            # np.zeros maps pages on first write: room ahead costs no memory until rows are written to it.
            buffer = np.zeros(shape, dtype=dtype) if self._fill == 0 else np.full(shape, self._fill, dtype=dtype)
            buffer[: self._n] = self._buffer[: self._n]
            self._buffer = buffer
        self._n = max(self._n, n)
        return self.array

    def append(self, rows: npt.ArrayLike) -> npt.NDArray[Any]:
        """``rows`` added at the end; returns the array."""
        rows = np.asarray(rows, dtype=self._buffer.dtype)
        first = self._n
        out = self.resize(first + len(rows))
        out[first:] = rows
        return out
