"""A prefill unit's queue: kept in order of the emu time each request joined it, so that a queue
of a million closed-loop users costs a bisection per arrival and a slice per batch, not a sort or
a full scan (issue 30: a first Ctrl-C waited behind those)."""

from __future__ import annotations

from operator import attrgetter

from disagg.cluster.messages import Request
from disagg.policies.base import QueuedPrefill

queued_at = attrgetter("queued_s")
"""The queue's order: emu time a request joined it (``QueuedPrefill.queued_s``; attrgetter: a
bisection calls it log2(queue) times per arrival, and a C call costs a fraction of a Python one)."""


def take(queue: list[QueuedPrefill], chosen: set[int]) -> tuple[tuple[Request, ...],
                                                                  list[QueuedPrefill]]:
    """The ``chosen`` requests in queue order, and the queue without them. Scans only up to the
    last chosen one (a batch is usually the queue's head), so a long queue costs a slice."""
    taken: list[Request] = []
    kept: list[QueuedPrefill] = []
    for i, q in enumerate(queue):
        if q.request.request_id in chosen:
            taken.append(q.request)
            if len(taken) == len(chosen):
                return tuple(taken), kept + queue[i + 1:]
        else:
            kept.append(q)
    return tuple(taken), kept
