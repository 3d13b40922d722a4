"""A KV transfer in the fabric (``component.py``): its chunks, the emu times at which each may
leave (all at once, or spread over the prefill with layer-wise streaming), and its progress."""

from __future__ import annotations

from dataclasses import dataclass

from disagg.cluster.messages import TransferRequested
from disagg.fabric.topology import Route

__all__ = ["Transfer", "chunk_ready_times"]


@dataclass(slots=True)
class Transfer:
    """One KV transfer in progress: its chunks, their ready times and how many have left."""

    msg: TransferRequested
    route: Route
    chunk_bytes: float
    ready_s: list[float]
    sent_chunks: int = 0
    start_s: float | None = None


def chunk_ready_times(start_s: float, window: tuple[float, float] | None, chunks: int) -> list[float]:
    """Emu times at which each of ``chunks`` KV chunks may leave: all at ``start_s`` unless a
    layer-wise window (prefill start, end) spreads them evenly over the prefill."""
    if window is None:
        return [start_s]
    begin, end = window
    return [max(start_s, begin + (i + 1) / chunks * (end - begin)) for i in range(chunks)]
