"""Turn a workload config into requests: the whole list for open-loop workloads, and the
per-user state machine of a closed loop (pure; the load generator drives it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import overload

import numpy as np
from numpy.typing import NDArray

from disagg.cluster.errors import ConfigError
from disagg.cluster.messages import PREFIX_BLOCK_TOKENS, Request
from disagg.cluster.workload.kinds import (
    AgenticWorkload,
    ClosedLoopWorkload,
    MixWorkload,
    RequestClass,
    SyntheticWorkload,
    TraceWorkload,
)
from disagg.cluster.workload.synthetic import arrival_times
from disagg.cluster.workload.traces import Trace


@dataclass(frozen=True)
class SloTargets:
    """Default SLO targets (the ``[slo]`` section), seconds."""

    ttft_s: float
    tpot_s: float


_ITER_BLOCK = 4096
"""Requests whose array fields a plan's iteration reads into Python lists at once."""


class RequestPlan(Sequence[Request]):
    """An open-loop workload's requests, ids 0..n-1 in arrival order, held as arrays (arrival
    emu s, prompt and output tokens, class index into ``classes`` = (slo class, TTFT target s,
    TPOT target s), and for a replay with prefix hashes the trace and its rows); a
    :class:`Request` is made when one is asked for, so a plan of a million
    requests costs ~30 MB, not a million objects."""

    def __init__(self, times_s: np.ndarray, prompts: np.ndarray, outputs: np.ndarray,
                 which: np.ndarray, classes: list[tuple[str, float, float]],
                 prefixes: tuple[Trace, np.ndarray] | None = None) -> None:
        self.times_s = np.asarray(times_s, dtype=np.float64)
        self.prompts = np.asarray(prompts, dtype=np.int64)
        self.outputs = np.asarray(outputs, dtype=np.int64)
        self.which = np.asarray(which, dtype=np.int32)
        self.classes = classes
        self.prefixes = prefixes  # a replay's trace and its rows: prefix-block hash ids

    def __len__(self) -> int:
        return len(self.times_s)

    @overload
    def __getitem__(self, i: int) -> Request: ...

    @overload
    def __getitem__(self, i: slice) -> list[Request]: ...

    def __getitem__(self, i: int | slice) -> Request | list[Request]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        k = range(len(self))[i]
        name, ttft_s, tpot_s = self.classes[int(self.which[k])]
        hashes = () if self.prefixes is None else self.prefixes[0].hashes_of(
            int(self.prefixes[1][k]))
        return Request(k, float(self.times_s[k]), int(self.prompts[k]), int(self.outputs[k]),
                       name, ttft_s, tpot_s, hashes)

    def __iter__(self) -> Iterator[Request]:
        for lo in range(0, len(self), _ITER_BLOCK):
            yield from self._block(lo, min(lo + _ITER_BLOCK, len(self)))

    def _block(self, lo: int, hi: int) -> Iterator[Request]:
        """Requests ``lo`` .. ``hi - 1`` as ``self[k]`` makes them, their fields read from the
        arrays as Python lists at once (the same values; a numpy scalar read and conversion per
        field per request cost ~2 us a request: ~25 ms CPU over the Mooncake trace)."""
        hashes: Iterable[tuple[int, ...]] = repeat((), hi - lo)
        if self.prefixes is not None:
            trace, rows = self.prefixes
            hashes = map(trace.hashes_of, rows[lo:hi].tolist())
        for k, t, p, o, w, h in zip(range(lo, hi), self.times_s[lo:hi].tolist(),
                                    self.prompts[lo:hi].tolist(), self.outputs[lo:hi].tolist(),
                                    self.which[lo:hi].tolist(), hashes, strict=True):
            name, ttft_s, tpot_s = self.classes[w]
            yield Request(k, t, p, o, name, ttft_s, tpot_s, h)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and len(self) == len(other) and all(
            a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]


def plan_requests(
    workload: SyntheticWorkload | MixWorkload | TraceWorkload, slo: SloTargets,
    duration_s: float, rng: np.random.Generator,
) -> RequestPlan:
    """An open-loop workload's requests in arrival order (emu s), ids 0..n-1."""
    if isinstance(workload, SyntheticWorkload):
        w = workload
        times = arrival_times(w.arrivals, rng, w.rate_per_s, duration_s, w.max_requests)
        n = len(times)
        prompts, outputs = w.prompt_tokens.sample(rng, n), w.output_tokens.sample(rng, n)
        return RequestPlan(times, prompts, outputs, np.zeros(n),
                           [(w.slo_class, slo.ttft_s, slo.tpot_s)])
    if isinstance(workload, MixWorkload):
        times = arrival_times(workload.arrivals, rng, workload.rate_per_s, duration_s,
                              workload.max_requests)
        return _mix(times, workload.classes, slo, rng)
    return _replay(workload, slo, duration_s, rng)


def draw_classes(classes: list[RequestClass], rng: np.random.Generator, n: int) -> NDArray[np.int64]:
    """Class index per request, drawn by weight."""
    weights = np.array([c.weight for c in classes], dtype=np.float64)
    return rng.choice(len(classes), size=n, p=weights / weights.sum())


def _mix(times: NDArray[np.float64], classes: list[RequestClass], slo: SloTargets,
         rng: np.random.Generator) -> RequestPlan:
    n = len(times)
    which = draw_classes(classes, rng, n)
    prompts = np.zeros(n, dtype=np.int64)
    outputs = np.zeros(n, dtype=np.int64)
    for k, c in enumerate(classes):
        idx = np.flatnonzero(which == k)
        prompts[idx] = c.prompt_tokens.sample(rng, len(idx))
        outputs[idx] = c.output_tokens.sample(rng, len(idx))
    table = [(c.name, c.ttft_s or slo.ttft_s, c.tpot_s or slo.tpot_s) for c in classes]
    return RequestPlan(times, prompts, outputs, which, table)


@dataclass(frozen=True)
class Replay:
    """The trace rows a replay keeps (indices into the trace) and the speed-up it applies."""

    rows: NDArray[np.int64]
    speedup: float
    origin_ns: int


def select_replay(w: TraceWorkload, trace: Trace, rng: np.random.Generator) -> Replay:
    """Window, then sampling, then cap; then the speed-up (given, or from the target rate)."""
    origin = int(trace.arrival_ns[0]) + round(w.start_s * 1e9)
    rel = trace.arrival_ns - origin
    keep = rel >= 0
    if w.end_s is not None:
        keep &= rel < round((w.end_s - w.start_s) * 1e9)
    rows = np.flatnonzero(keep)
    if w.sample_fraction < 1:
        rows = rows[rng.random(len(rows)) < w.sample_fraction]
    if w.max_requests is not None:
        rows = rows[: w.max_requests]
    if len(rows) == 0:
        raise ConfigError(f"field 'workload': the window [{w.start_s:g}, {w.end_s}) s and "
                          f"sampling keep no request of {w.path} ({len(trace)} requests, "
                          f"{trace.span_s:.1f} s)")
    speedup = w.speedup or 1.0
    if w.rate_per_s is not None:
        span_s = float(trace.arrival_ns[rows[-1]] - trace.arrival_ns[rows[0]]) / 1e9
        if len(rows) < 2 or span_s <= 0:
            raise ConfigError(f"field 'workload.rate_per_s': the replay keeps {len(rows)} "
                              "request(s) over no time; a mean rate needs two distinct arrivals")
        speedup = w.rate_per_s / ((len(rows) - 1) / span_s)
    return Replay(rows, speedup, origin)


def _replay(w: TraceWorkload, slo: SloTargets, duration_s: float,
            rng: np.random.Generator) -> RequestPlan:
    trace = w.load()
    sel = select_replay(w, trace, rng)
    times = (trace.arrival_ns[sel.rows] - sel.origin_ns) / 1e9 / sel.speedup
    keep = times < duration_s
    rows = sel.rows[keep]
    return RequestPlan(times[keep], trace.prompt_tokens[rows], trace.output_tokens[rows],
                       np.zeros(len(rows)), [(w.slo_class, slo.ttft_s, slo.tpot_s)],
                       prefixes=(trace, rows) if trace.prefix_hashes else None)


@dataclass(frozen=True)
class Conversation:
    """A multi-turn user's conversation so far: tokens (last prompt + its output) and the hash
    ids of the last prompt's full blocks, which the next prompt starts with."""

    context_tokens: int
    block_ids: tuple[int, ...]


@dataclass
class ClosedLoop:
    """N users in a closed loop; the load generator asks it for each user's next request.

    ``start()`` gives every user's first request (after one think time); ``after(id, end_s)``
    gives the user's next request once ``id`` ended at ``end_s``, or None when the user stops
    (next arrival at or after ``duration_s``, or the request cap reached).
    """

    workload: ClosedLoopWorkload
    slo: SloTargets
    duration_s: float
    rng: np.random.Generator
    sent: int = 0
    active_users: int = 0
    user_of: dict[int, int] = field(default_factory=dict)
    conversations: dict[int, Conversation] = field(default_factory=dict)
    next_block_id: int = 0

    def start(self) -> list[Request]:
        """Each user's first request, in arrival order."""
        self.active_users = self.workload.users
        firsts = [self._next(u, 0.0) for u in range(self.workload.users)]
        return sorted((r for r in firsts if r is not None), key=lambda r: r.arrival_s)

    def after(self, request_id: int, end_s: float, status: str = "completed") -> Request | None:
        """The next request of the user whose request ``request_id`` ended at ``end_s`` (with
        ``status``, whatever it was: a user sends again)."""
        user = self.user_of.pop(request_id, None)
        if user is None:
            return None
        return self._next(user, end_s)

    def _next(self, user: int, end_s: float) -> Request | None:
        w = self.workload
        think = float(self.rng.exponential(w.think_time_s)) if w.think_time_s > 0 else 0.0
        t = end_s + think
        if t >= self.duration_s or (w.max_requests is not None and self.sent >= w.max_requests):
            self.active_users -= 1
            return None
        request = self._make(self.sent, t)
        if w.multi_turn:
            request = self._extend(user, request)
        self.user_of[request.request_id] = user
        self.sent += 1
        return request

    def _make(self, request_id: int, t: float) -> Request:
        w = self.workload
        if not w.classes:
            return Request(request_id, t, int(w.prompt_tokens.sample(self.rng, 1)[0]),
                           int(w.output_tokens.sample(self.rng, 1)[0]), w.slo_class,
                           self.slo.ttft_s, self.slo.tpot_s)
        c = w.classes[int(draw_classes(w.classes, self.rng, 1)[0])]
        return Request(request_id, t, int(c.prompt_tokens.sample(self.rng, 1)[0]),
                       int(c.output_tokens.sample(self.rng, 1)[0]), c.name,
                       c.ttft_s or self.slo.ttft_s, c.tpot_s or self.slo.tpot_s)


    def _extend(self, user: int, request: Request) -> Request:
        """The user's next turn: the drawn prompt appended to the conversation so far (or a new
        conversation when it would exceed ``max_context_tokens``), with its block hash ids."""
        prev = self.conversations.get(user)
        new_tokens = request.prompt_tokens
        if prev is None or prev.context_tokens + new_tokens > self.workload.max_context_tokens:
            prev = Conversation(0, ())
        conv, ids, self.next_block_id = extend_conversation(
            prev, new_tokens, request.output_tokens, self.next_block_id)
        self.conversations[user] = conv
        return dataclasses.replace(request, prompt_tokens=prev.context_tokens + new_tokens,
                                   prefix_hashes=ids)


def extend_conversation(prev: Conversation, new_tokens: int, output_tokens: int,
                        next_block_id: int) -> tuple[Conversation, tuple[int, ...], int]:
    """The next turn of a conversation: its prompt is ``prev``'s context plus ``new_tokens``;
    returns the conversation after it (prompt + output, the prompt's full blocks), the prompt's
    block hash ids (``prev``'s blocks first, fresh ids from ``next_block_id`` after) and the
    next fresh id."""
    prompt = prev.context_tokens + new_tokens
    blocks = -(-prompt // PREFIX_BLOCK_TOKENS)
    fresh = blocks - len(prev.block_ids)
    ids = prev.block_ids + tuple(range(next_block_id, next_block_id + fresh))
    full = ids[: prompt // PREFIX_BLOCK_TOKENS]
    return Conversation(prompt + output_tokens, full), ids, next_block_id + fresh


def check_workload(
    workload: SyntheticWorkload | MixWorkload | TraceWorkload | ClosedLoopWorkload
    | AgenticWorkload, slo: SloTargets, duration_s: float,
) -> None:
    """Read every trace the workload names and plan a replay once: ConfigError on bad input."""
    pieces: list[object] = [workload, getattr(workload, "trace", None)]
    for holder in [workload, *getattr(workload, "classes", [])]:
        pieces += [getattr(holder, "prompt_tokens", None), getattr(holder, "output_tokens", None)]
    for piece in pieces:
        load = getattr(piece, "load", None)
        if load is not None:
            load()
    if isinstance(workload, TraceWorkload):
        if not plan_requests(workload, slo, duration_s, np.random.default_rng(0)):
            raise ConfigError(f"field 'experiment.duration_s': value {duration_s:g} is too short: "
                              f"the replay's first arrival is later")
