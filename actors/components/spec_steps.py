"""Speculative stepping of a decode or colocated unit's batch, still planned arithmetically.

A unit plans the next run of iterations of a fixed batch up to the first step at which a request
finishes (DESIGN timing rule 2). With speculative decoding each request gains a random number of
tokens per step (``cluster/hardware/speculative.py``), drawn here per step per request: each
request has its own stream, seeded from the unit's generator and the request's id and attempt,
so a request's draws do not depend on where a plan is cut or which other requests share its
batch (deterministic per seed on either engine). Draws a plan did not commit are kept for the
next plan. Step times are ``spec_step_times`` at the batch's context before each step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from disagg.cluster.hardware.speculative import (
    Speculation,
    draw_tokens_per_step,
    spec_step_times,
)
from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec
from disagg.cluster.messages import Request


@dataclass(frozen=True)
class SpecPlan:
    """The next run of steps of a batch: ``gained[s, i]`` tokens request i (batch order) gets
    at step s (capped at what it has left), and ``step_s[s]`` the step's duration (emu s)."""

    gained: np.ndarray
    step_s: np.ndarray


class SpecStepper:
    """Per-request draws of tokens per speculative step, and plans of the next steps."""

    def __init__(self, spec: Speculation, model: ModelSpec, hw: HardwareProfile, chips: int,
                 rng: np.random.Generator) -> None:
        self.spec, self.model, self.hw, self.chips = spec, model, hw, chips
        self._key = int(rng.integers(2**62))
        self._draws: dict[tuple[int, int], tuple[np.random.Generator, np.ndarray]] = {}

    def _take(self, r: Request, steps: int) -> np.ndarray:
        """The next ``steps`` draws of ``r`` (drawing more when its buffer is short)."""
        key = (r.request_id, r.attempt)
        entry = self._draws.get(key)
        if entry is None:
            entry = (np.random.default_rng([self._key, r.request_id, r.attempt]),
                     np.empty(0, dtype=np.int64))
        gen, buf = entry
        if len(buf) < steps:
            more = draw_tokens_per_step(gen, self.spec.alpha(r.slo_class), self.spec.gamma,
                                        max(steps - len(buf), 64))
            buf = np.concatenate((buf, more))
        self._draws[key] = (gen, buf)
        return buf[:steps]

    def plan(self, requests: Sequence[Request], left: Sequence[int], context: int,
             factor: float = 1.0) -> SpecPlan:
        """Steps of the batch ``requests`` (with ``left`` tokens to go each, ``context`` KV
        tokens in all) up to and including the first step at which one of them finishes."""
        horizon = max(1, min(left))  # every step yields >= 1 token: someone is done by then
        draws = np.stack([self._take(r, horizon) for r in requests], axis=1)
        cum = np.minimum(np.cumsum(draws, axis=0), np.asarray(left)[None, :])
        done = cum >= np.asarray(left)[None, :]
        steps = int(np.argmax(done.any(axis=1))) + 1
        cum = cum[:steps]
        gained = np.diff(cum, axis=0, prepend=np.zeros((1, cum.shape[1]), dtype=cum.dtype))
        before = context + np.concatenate(([0], cum.sum(axis=1)[:-1]))
        step_s = spec_step_times(len(requests), before, self.spec, self.model, self.hw,
                                 self.chips)
        return SpecPlan(gained, step_s * factor)

    def commit(self, requests: Sequence[Request], steps: int) -> None:
        """``steps`` planned steps ran: drop their draws (a finished request's stream too)."""
        for r in requests:
            key = (r.request_id, r.attempt)
            gen, buf = self._draws[key]
            self._draws[key] = (gen, buf[steps:])

    def forget(self, r: Request) -> None:
        """``r`` left the unit: its stream is not needed any more."""
        self._draws.pop((r.request_id, r.attempt), None)
