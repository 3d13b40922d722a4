"""Injected faults: the ``[[faults]]`` entries of an experiment and the one time-ordered schedule
both engines execute (``actors/engines/faults.py``).

Each entry is a table with a ``kind``: ``unit_loss`` (a unit's machine goes away at ``at_s``,
optionally back ``restart_after_s`` later), ``host_loss`` (every unit of a host), ``straggler``
(a unit runs ``factor`` times slower from ``from_s`` to ``to_s``), ``link`` (a fabric link's
capacity times ``factor`` from ``from_s`` to ``to_s``; ``factor = 0`` cuts it), ``kv_drop`` / ``kv_corrupt`` (the KV payloads of the listed
request ids go missing / get one byte flipped). All times are emu seconds. The older table form
``[faults] unit_loss = [...], corrupt_kv_requests = [...], drop_kv_requests = [...]`` is read as
the equivalent entries (:func:`entries_from_legacy`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

UNIT_PATTERN = r"^(prefill|decode|colocated)-[0-9]+$"
LINK_PATTERN = r"^(core|(prefill|decode|colocated)-host-[0-9]+/(egress|ingress))$"


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class UnitLoss(_Entry):
    """A unit lost at an emu time, as if its machine went away (ray engine: its actor is killed).

    With ``restart_after_s`` a fresh unit (empty queues) takes its place that much later."""

    kind: Literal["unit_loss"] = "unit_loss"
    unit: str = Field(pattern=UNIT_PATTERN, description="e.g. decode-1")
    at_s: float = Field(ge=0, description="emu time of the loss")
    restart_after_s: float | None = Field(
        None, gt=0, description="emu seconds until a fresh unit replaces it (default: never)")


class HostLoss(_Entry):
    """A whole host lost at an emu time (every unit on it; ray engine: their actors killed), as
    when a node of the cluster goes away."""

    kind: Literal["host_loss"] = "host_loss"
    host: str = Field(pattern=r"^(prefill|decode|colocated)-host-[0-9]+$", description="e.g. prefill-host-0")
    at_s: float = Field(ge=0, description="emu time of the loss")


class Straggler(_Entry):
    """A unit whose batches and iterations take ``factor`` times their modeled time."""

    kind: Literal["straggler"] = "straggler"
    unit: str = Field(pattern=UNIT_PATTERN, description="e.g. prefill-0")
    factor: float = Field(gt=1, le=1000, description="slow-down: modeled durations x this")
    from_s: float = Field(ge=0, description="emu time it starts")
    to_s: float | None = Field(None, description="emu time it ends (default: never)")

    @model_validator(mode="after")
    def _ordered(self) -> Straggler:
        if self.to_s is not None and self.to_s <= self.from_s:
            raise ValueError(f"to_s ({self.to_s}) must be after from_s ({self.from_s})")
        return self


class LinkFault(_Entry):
    """A fabric link degraded (capacity x ``factor``) or cut (``factor = 0``), then restored."""

    kind: Literal["link"] = "link"
    link: str = Field(pattern=LINK_PATTERN,
                      description="HOST/egress, HOST/ingress (e.g. decode-host-0/ingress) or core")
    factor: float = Field(ge=0, lt=1, description="capacity x this while it lasts; 0 cuts the link")
    from_s: float = Field(ge=0, description="emu time it starts")
    to_s: float | None = Field(None, description="emu time it is restored (default: never)")

    @model_validator(mode="after")
    def _ordered(self) -> LinkFault:
        if self.to_s is not None and self.to_s <= self.from_s:
            raise ValueError(f"to_s ({self.to_s}) must be after from_s ({self.from_s})")
        return self


class KvFault(_Entry):
    """KV payloads of the listed requests dropped (``kv_drop``) or corrupted (``kv_corrupt``)."""

    kind: Literal["kv_drop", "kv_corrupt"]
    requests: list[int] = Field(min_length=1,
                                description="request ids, >= 0 (0: the first request submitted)")

    @model_validator(mode="after")
    def _ids_exist(self) -> KvFault:
        bad = [i for i in self.requests if i < 0]
        if bad:
            raise ValueError(f"request id {bad[0]} is negative; allowed: request ids >= 0 "
                             "(0 is the first request submitted)")
        return self


FaultEntry = Annotated[UnitLoss | HostLoss | Straggler | LinkFault | KvFault,
                      Field(discriminator="kind")]


UNIT_KINDS = ("prefill", "decode", "colocated")

FAULT_UNIT_KINDS: dict[str, tuple[str, ...]] = {
    "unit_loss": UNIT_KINDS,  # every unit can be lost: the router redoes its requests
    "host_loss": UNIT_KINDS,
    "straggler": UNIT_KINDS,  # each unit handles SpeedChanged
    "link": ("prefill", "decode"),  # a colocated run moves no KV over the fabric
    "kv_drop": ("prefill", "decode"),  # a prefill unit's KV payload, verified by a decode unit
    "kv_corrupt": ("prefill", "decode"),
}
"""Fault kind -> the unit kinds that handle it. An entry naming a unit, host or link of another
kind (or, naming none — a KV fault, the ``core`` link — in an experiment with a pool of another
kind) is refused at validation (:func:`check_fault_kinds`), never silently ignored."""


def _named_kind(entry: Any) -> str | None:
    """The unit kind an entry names (its unit, host or host link), or None (KV faults, core)."""
    name = getattr(entry, "unit", None) or getattr(entry, "host", None) \
        or getattr(entry, "link", None)
    if name is None or name == "core":
        return None
    base = name.split("/")[0]  # a host link: HOST/egress
    return base.split("-host-")[0] if "-host-" in base else base.rsplit("-", 1)[0]


def check_fault_kinds(entries: list[Any] | tuple[Any, ...], pools: tuple[str, ...]) -> None:
    """Raise ValueError (field, value, what is allowed) for the first entry whose kind no unit
    it targets handles (``FAULT_UNIT_KINDS``); ``pools`` are the experiment's unit kinds."""
    for i, entry in enumerate(entries):
        allowed = FAULT_UNIT_KINDS[entry.kind]
        named = _named_kind(entry)
        targets = (named,) if named is not None else pools
        bad = [k for k in targets if k not in allowed]
        if bad:
            where = f"a {bad[0]} unit" if named is not None else f"an experiment with {bad[0]} units"
            raise ValueError(f"field 'faults.{i}.kind': value {entry.kind!r} is not handled by "
                             f"{where}; allowed: {entry.kind} on {' or '.join(allowed)} units")


def entries_from_legacy(value: Any) -> Any:
    """The table form ``[faults]`` (unit_loss, corrupt_kv_requests, drop_kv_requests) as entries;
    anything else is returned unchanged for validation."""
    if not isinstance(value, dict):
        return value
    legacy = {"unit_loss", "corrupt_kv_requests", "drop_kv_requests"}
    if set(value) - legacy:
        return value  # validation names the unknown key
    out: list[Any] = [{"kind": "unit_loss", **u} if isinstance(u, dict) else u
                      for u in value.get("unit_loss", [])]
    for key, kind in (("drop_kv_requests", "kv_drop"), ("corrupt_kv_requests", "kv_corrupt")):
        if value.get(key):
            out.append({"kind": kind, "requests": value[key]})
    return out


Action = Literal["kill", "restart", "speed", "link"]


@dataclass(frozen=True)
class FaultAction:
    """One thing an engine does at emu time ``at_s``: ``kill`` / ``restart`` a unit, set a unit's
    ``speed`` (its modeled durations x ``factor``), or scale a fabric ``link``'s capacity."""

    at_s: float
    seq: int  # entry order, breaks ties at equal times
    action: Action
    target: str
    factor: float = 1.0

    def describe(self) -> str:
        """One line for the console summary and summary.json."""
        what = {"kill": f"{self.target} lost", "restart": f"{self.target} restarted",
                "speed": f"{self.target} speed: durations x {self.factor:g}",
                "link": f"link {self.target} capacity x {self.factor:g}"
                        + (" (cut)" if self.factor == 0 else "")}[self.action]
        return f"{self.at_s:.3f} s: {what}"


@dataclass(frozen=True)
class FaultSchedule:
    """An experiment's faults: the timed actions in time order, and the KV faults by request."""

    actions: tuple[FaultAction, ...] = ()
    kv_drop: frozenset[int] = frozenset()
    kv_corrupt: frozenset[int] = frozenset()

    @property
    def empty(self) -> bool:
        return not (self.actions or self.kv_drop or self.kv_corrupt)

    def describe_kv(self, submitted: int) -> list[str]:
        """One line per KV fault kind for the console and summary.json (request ids are
        0..``submitted``-1; an id the run never submitted is named as having no effect)."""
        out = []
        for kind, ids, what, reason in (("kv_drop", self.kv_drop, "dropped", "kv_missing"),
                                        ("kv_corrupt", self.kv_corrupt, "corrupted",
                                         "kv_checksum")):
            hit = sorted(i for i in ids if i < submitted)
            missed = sorted(i for i in ids if i >= submitted)
            line = f"{kind}: KV of request(s) {', '.join(map(str, hit)) or 'none'} {what}" \
                   + (f" (failed, reason {reason})" if hit else "")
            if missed:
                line += (f"; request(s) {', '.join(map(str, missed))} never submitted "
                         f"(ids 0..{submitted - 1}): no effect")
            if ids:
                out.append(line)
        return out


def _actions(entry: Any, seq: int, host_units: dict[str, list[str]]) -> list[FaultAction]:
    """The kills and restarts of a loss entry (speed and link windows: :func:`_composed`)."""
    if isinstance(entry, HostLoss):
        return [FaultAction(entry.at_s, seq, "kill", u) for u in host_units.get(entry.host, [])]
    if isinstance(entry, UnitLoss):
        out = [FaultAction(entry.at_s, seq, "kill", entry.unit)]
        if entry.restart_after_s is not None:
            out.append(FaultAction(entry.at_s + entry.restart_after_s, seq, "restart", entry.unit))
        return out
    return []


def _composed(entries: list[Any] | tuple[Any, ...]) -> list[FaultAction]:
    """Speed and link windows on one target composed by product, one action per change.

    Overlapping windows on the same unit (or link) multiply: a x2 straggler inside a x4 window
    runs the unit x8 while both last, x4 again when the inner one ends, x1 when both have; a
    link degraded (x0.5) inside a cut (x0) stays cut until the cut ends, then runs at x0.5
    until the degrade ends. An action is emitted at each window edge where the product changes;
    its ``seq`` is that of the first entry with an edge there."""
    windows: dict[tuple[Action, str], list[tuple[float, float, float, int]]] = {}
    for seq, e in enumerate(entries):
        if isinstance(e, Straggler | LinkFault):
            key: tuple[Action, str] = (("speed", e.unit) if isinstance(e, Straggler)
                                       else ("link", e.link))
            end = math.inf if e.to_s is None else e.to_s
            windows.setdefault(key, []).append((e.from_s, end, e.factor, seq))
    out: list[FaultAction] = []
    for (action, target), spans in windows.items():
        edges = sorted({t for a, b, _, _ in spans for t in (a, b) if t != math.inf})
        current = 1.0
        for t in edges:
            factor = math.prod(f for a, b, f, _ in spans if a <= t < b)
            if factor != current:
                seq = min(s for a, b, _, s in spans if t in (a, b))
                out.append(FaultAction(t, seq, action, target, factor))
                current = factor
    return out


def fault_schedule(entries: list[Any] | tuple[Any, ...],
                   host_units: dict[str, list[str]] | None = None) -> FaultSchedule:
    """The one schedule for ``entries`` (validated ``[[faults]]`` tables), in time order;
    ``host_units`` (host -> its units, from the topology) expands a host loss into unit kills."""
    actions = [a for seq, e in enumerate(entries) for a in _actions(e, seq, host_units or {})]
    actions += _composed(entries)
    kv = {"kv_drop": set(), "kv_corrupt": set()}  # type: dict[str, set[int]]
    for e in entries:
        if isinstance(e, KvFault):
            kv[e.kind].update(e.requests)
    return FaultSchedule(tuple(sorted(actions, key=lambda a: (a.at_s, a.seq))),
                         frozenset(kv["kv_drop"]), frozenset(kv["kv_corrupt"]))
