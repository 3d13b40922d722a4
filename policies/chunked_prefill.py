"""Chunked prefill for colocated units: which prompt tokens join the next iteration.

The vLLM (V1) / Sarathi-Serve rule: every running decode contributes one token; the rest of the
per-iteration token budget goes to prefill chunks, first-come first-served — requests already
part-way through their prefill first (they are the oldest), then new ones, each taking
``min(tokens left in its prompt, budget left)``. A new request starts only while the unit runs
fewer than ``max_running`` requests and its KV (prompt + output tokens) fits in the free KV
memory; the first one that cannot start blocks the ones behind it (no overtaking).
"""

from __future__ import annotations

from disagg.cluster.frozen import frozen


@frozen
class WaitingPrefill:
    """A request in a colocated unit's prefill queue, as the planner sees it."""

    request_id: int
    tokens_left: int  # prompt tokens not yet prefilled
    started: bool  # its KV is already reserved (it was part of an earlier chunk)
    kv_bytes: float  # KV to reserve when it starts: prompt + output tokens


@frozen
class IterationPlan:
    """The prefill part of the next iteration: ``chunks`` maps request id -> prompt tokens."""

    chunks: tuple[tuple[int, int], ...]

    @property
    def tokens(self) -> int:
        """Prompt tokens in the iteration."""
        return sum(c for _, c in self.chunks)


def plan_chunks(
    queue: tuple[WaitingPrefill, ...], decodes: int, token_budget: int, max_running: int,
    kv_free_bytes: float,
) -> IterationPlan:
    """The chunks of the next iteration for ``queue`` (oldest first) next to ``decodes`` running
    decodes, under ``token_budget`` tokens, ``max_running`` requests and ``kv_free_bytes``."""
    budget = token_budget - decodes
    running = decodes + sum(1 for w in queue if w.started)
    chunks: list[tuple[int, int]] = []
    for w in queue:
        if budget <= 0:
            break
        if not w.started:
            if running >= max_running or w.kv_bytes > kv_free_bytes:
                break
            running += 1
            kv_free_bytes -= w.kv_bytes
        take = min(w.tokens_left, budget)
        chunks.append((w.request_id, take))
        budget -= take
    return IterationPlan(tuple(chunks))
