"""The conservative hold (ray engine) delays actions without changing modeled decisions.

On the virtual engine nothing is late, so forcing a hold on every component (as the ray engine's
host sets it at the start) must give the same ``requests.parquet`` as no hold; a router with a
hold hands out-of-order messages to its handlers in modeled-time order.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from disagg.actors.engines.virtual import run_virtual
from disagg.cluster.component import Clock, Component
from disagg.cluster.config import load_experiment
from disagg.cluster.timegate import TimeGate
from disagg.experiments.run import assemble

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
QUICKSTART = EXPERIMENTS / "quickstart.toml"


def _requests(hold_s: float, path: Path = QUICKSTART,
              stages: frozenset[str] = frozenset({"Router", "PrefillUnit", "Fabric", "DecodeUnit"}),
              ) -> tuple[Any, list[dict[str, Any]]]:
    """``path`` on the virtual engine, every component held by its time gate's table in units
    of ``hold_s`` emu s:
    the requests table and the components' raw results."""
    exp = load_experiment(path, {"experiment.engine": "virtual", "experiment.duration_s": 10.0})
    held: list[str] = []

    def on_start(comps: dict[str, Component]) -> None:
        for name, comp in comps.items():
            kind = comp.unit.kind if comp.unit is not None else name
            comp.set_gate(TimeGate(kind, hold_s, corrections=False))  # nothing may come late
            if comp.gate.hold_s > 0:
                held.append(type(comp).__name__)

    raw = run_virtual(exp, on_start=on_start)
    if hold_s > 0:
        assert stages <= set(held)
    return assemble(exp, raw).tables["requests"], raw["components"]


VIEW_AGES = ("prefill_view_age_s", "decode_view_age_s")
"""What the router's view had seen: with a hold, load reports reach it later than its own
releases (the documented side effect), so these may differ; round robin does not read them."""


def test_hold_leaves_virtual_requests_unchanged() -> None:
    base, _ = _requests(0.0)
    assert base.num_rows > 20
    held, comps = _requests(0.002)
    assert held.equals(base)
    assert sum(c["late_decisions"] for c in comps) == 0
    held, comps = _requests(0.05)  # the default hold_wall_s at dilation 1
    kept = [c for c in base.column_names if c not in VIEW_AGES]
    assert held.select(kept).equals(base.select(kept))
    assert sum(c["late_decisions"] for c in comps) == 0


def test_hold_leaves_virtual_colocated_requests_unchanged() -> None:
    path = EXPERIMENTS / "gpu_colocated.toml"
    base, _ = _requests(0.0, path)
    held, comps = _requests(0.002, path, frozenset({"Router", "ColocatedUnit"}))
    assert base.num_rows > 20
    assert held.equals(base)
    assert sum(c["late_decisions"] for c in comps) == 0


class _StepClock(Clock):
    """Emu time = the running loop's clock (the test drives it with real, tiny delays)."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def loop_delay_s(self, emu_s: float) -> float:
        return emu_s - self.now()


class _Msg:
    def __init__(self, sent_s: float, tag: str) -> None:
        self.sent_s, self.tag = sent_s, tag


class _Untimed:
    tag = "untimed"


class _Recorder(Component):
    holds_messages = True

    def __init__(self) -> None:
        super().__init__("router", _StepClock())
        self.seen: list[tuple[str, float]] = []  # (tag, emu s handled)
        self.handlers = {_Msg: self._on, _Untimed: self._on}
        self.all_seen: asyncio.Event | None = None

    def _on(self, msg: Any) -> None:
        self.seen.append((msg.tag, self.clock.now()))
        if len(self.seen) == 4 and self.all_seen is not None:
            self.all_seen.set()


def test_held_messages_go_in_modeled_order() -> None:
    async def scenario() -> tuple[_Recorder, float, list[str]]:
        comp = _Recorder()
        comp.all_seen = asyncio.Event()
        comp.set_gate(TimeGate("router", 0.02))  # engine messages: the router's 1 x hold
        now = comp.clock.now()
        comp.deliver(_Msg(now + 0.002, "b"))
        comp.deliver(_Msg(now + 0.001, "a"))  # arrives second, modeled first
        comp.deliver(_Msg(now + 0.002, "c"))  # same modeled time as b: arrival order
        comp.deliver(_Untimed())  # no modeled time: at once
        at_once = [tag for tag, _ in comp.seen]
        await asyncio.wait_for(comp.all_seen.wait(), 5.0)
        return comp, now, at_once

    comp, now, at_once = asyncio.run(scenario())
    assert at_once == ["untimed"]
    assert [tag for tag, _ in comp.seen] == ["untimed", "a", "b", "c"]
    handled = dict(comp.seen)
    assert handled["a"] >= now + 0.001 + 0.02 - 1e-6
    assert handled["b"] >= now + 0.002 + 0.02 - 1e-6


def test_no_hold_delivers_at_once() -> None:
    async def scenario() -> list[str]:
        comp = _Recorder()
        comp.deliver(_Msg(5.0, "late"))
        comp.deliver(_Msg(1.0, "early"))
        return [tag for tag, _ in comp.seen]

    assert asyncio.run(scenario()) == ["late", "early"]
