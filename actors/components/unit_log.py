"""A unit's own history: state changes and busy intervals, resampled into the timeseries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class UnitLog:
    """Step-function state changes ``(t, queue_depth, batch_size, kv_used_bytes)`` and busy spans."""

    changes: list[tuple[float, int, int, float]] = field(default_factory=list)
    busy: list[tuple[float, float]] = field(default_factory=list)
    tokens: list[tuple[float, float, int]] = field(default_factory=list)  # (start, end, tokens)
    batches: list[tuple[float, float, int]] = field(default_factory=list)  # (start, end, requests)

    def state(self, t: float, queue_depth: int, batch_size: int, kv_used_bytes: float) -> None:
        self.changes.append((t, queue_depth, batch_size, kv_used_bytes))

    def work(self, start_s: float, end_s: float, tokens: int, requests: int = 0) -> None:
        """The unit was busy on ``tokens`` tokens of ``requests`` requests (one batch, or a run of
        decode iterations with a fixed batch) from ``start_s`` to ``end_s``."""
        if self.busy and start_s <= self.busy[-1][1] + 1e-12:
            self.busy[-1] = (self.busy[-1][0], max(end_s, self.busy[-1][1]))
        else:
            self.busy.append((start_s, end_s))
        self.tokens.append((start_s, end_s, tokens))
        self.batches.append((start_s, end_s, requests))

    def as_dict(self) -> dict[str, Any]:
        return {"changes": self.changes, "busy": self.busy, "tokens": self.tokens,
                "batches": self.batches}
