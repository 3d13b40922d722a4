"""A unit's own history, folded onto the timeseries grid as it happens (``cluster/timeseries.py``):
queue depth, batch size and KV bytes in use as step functions, busy time and tokens per bin.

Final bins are handed out as the run goes (:meth:`UnitLog.pop_final`), so a unit holds only a
window of recent bins. With ``keep_events`` (``output.event_log``) it also keeps every batch,
for the event log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from disagg.cluster.timeseries import BinnedIntegral, SteppedValues, final_bins


class UnitLog:
    """State changes ``(t, queue_depth, batch_size, kv_used_bytes)`` and busy work of one unit,
    sampled every ``step_s`` emu seconds.

    ``state(t, queue_depth, batch_size, kv_used_bytes)``: the unit's state from emu time ``t`` on
    (its changes' :meth:`SteppedValues.change`, bound once: one call per state, not two).
    """

    state: Callable[[float, int, int, float], None]

    def __init__(self, step_s: float = 0.5, keep_events: bool = False) -> None:
        self.step_s = step_s
        self.changes = SteppedValues(step_s, 3)
        self.state = self.changes.change
        self.busy = BinnedIntegral(step_s)  # busy emu s per bin (union of work spans)
        self.tokens = BinnedIntegral(step_s)  # tokens per bin, counted when their work ends
        self._busy_end_s = -float("inf")
        self._undo = (0.0, 0.0, 0, -float("inf"))  # the last work: start, end, tokens, busy end
        self._add_busy = self.busy.interval  # (bound once: called for every work)
        self._add_tokens = self.tokens.point
        self.batches: list[tuple[float, float, int, int]] | None = [] if keep_events else None

    def work(self, start_s: float, end_s: float, tokens: int, requests: int = 0) -> None:
        """The unit was busy on ``tokens`` tokens of ``requests`` requests (one batch, or a run of
        decode iterations with a fixed batch) from ``start_s`` to ``end_s``."""
        busy_end_s = self._busy_end_s
        # busy from where the busy time so far ends, if later (the union of the spans)
        self._add_busy(busy_end_s if busy_end_s > start_s else start_s, end_s)
        self._undo = (start_s, end_s, tokens, busy_end_s)
        if end_s > busy_end_s:
            self._busy_end_s = end_s
        self._add_tokens(end_s, tokens)
        if self.batches is not None:
            self.batches.append((start_s, end_s, requests, tokens))

    def undo_work(self) -> None:
        """Take back the last :meth:`work` (a prefill batch re-formed before it ended); its bins
        must still be held (a bin already handed out counts as late)."""
        start_s, end_s, tokens, busy_end_s = self._undo
        self.busy.interval(max(start_s, busy_end_s), end_s, -1.0)
        self.tokens.point(end_s, -tokens)
        self._busy_end_s = busy_end_s
        if self.batches is not None:
            self.batches.pop()

    def pop_final(self, frontier_s: float) -> dict[str, Any] | None:
        """The bins that are final once nothing can happen before ``frontier_s`` (emu s), as a
        series (see :meth:`series`), forgotten here; None if there are none yet."""
        k = final_bins(frontier_s, self.step_s)
        first = self.changes.base
        if k <= first:
            return None
        queue, batch, kv = self.changes.pop_before(k)
        return {"step_s": self.step_s, "first_bin": first, "queue_depth": queue, "batch_size": batch,
                "kv_used_bytes": kv, "busy": self.busy.pop_before(k),
                "tokens": self.tokens.pop_before(k)}

    def series(self, n_bins: int) -> dict[str, Any]:
        """The bins still held, up to bin ``n_bins`` (the grid's end): ``first_bin`` and per bin
        the sampled state, busy emu s and tokens finished."""
        queue, batch, kv = self.changes.sampled(n_bins)
        return {"step_s": self.step_s, "first_bin": self.changes.base, "queue_depth": queue, "batch_size": batch,
                "kv_used_bytes": kv, "busy": self.busy.per_bin(n_bins),
                "tokens": self.tokens.per_bin(n_bins)}

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the results: the log itself (its held window, to be sampled once the
        grid's end is known), total busy emu s, and the batches if kept."""
        return {"step_s": self.step_s, "window": self, "busy_s": self.busy.total,
                "busy_last_s": self.busy.last_s, "batches": self.batches or [],
                "late": self.changes.late + self.busy.late + self.tokens.late}
