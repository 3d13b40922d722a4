"""The assumption space of a robust plan: which unpublished constants vary, over which range.

Every row of :func:`disagg.cluster.hardware.assumptions.assumptions` whose hardware some candidate
uses (and which can move the objective: a price only per dollar, a power only per watt) is a
**dimension** with the catalog's low / default / high; the search space file's ``[robust]`` table
narrows or widens it::

    [robust]
    samples = 16                      # Latin-hypercube points (plus the default point)
    seed = 1
    only = ["cs3.price_per_hour_usd", "cs3.concurrency_exponent"]   # optional subset
    capacity_error = 0.2              # optional: relative capacity error (default: per hardware,
                                      # docs/accuracy.md, see model_error.py)
    [robust.cs3]
    price_per_hour_usd = [60, 230]    # [low, high] replaces the catalog's range

A dimension's default is the space file's ``[hardware.NAME]`` value when it sets one (price and
power), else the catalog's. ``price_per_hour_usd`` is US dollars per chip (or system) hour,
``power_w`` watts per chip; the rest are the catalog's performance fields in their own units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from disagg.cluster.errors import ConfigError
from disagg.cluster.hardware.assumptions import assumptions

Kind = Literal["price", "power", "perf"]
SETTINGS = ("samples", "seed", "only", "capacity_error")
PER_DOLLAR = ("goodput_per_dollar", "tasks_per_dollar")


@dataclass(frozen=True)
class Dimension:
    """One varied constant: ``hardware.field`` over [low, high], ``default`` at the base point."""

    hardware: str
    field: str
    low: float
    default: float
    high: float
    kind: Kind
    source: str  # "catalog" or "space file"

    @property
    def name(self) -> str:
        """``hardware.field``, the dimension's id in every output."""
        return f"{self.hardware}.{self.field}"


@dataclass(frozen=True)
class RobustSettings:
    """The ``[robust]`` table: sample count and seed, the dimensions' subset and ranges, and an
    optional relative capacity error (None: per hardware from docs/accuracy.md)."""

    samples: int = 16
    seed: int = 1
    only: tuple[str, ...] = ()
    capacity_error: float | None = None
    ranges: tuple[tuple[str, float, float], ...] = ()  # (hardware.field, low, high)


def kind_of(field: str) -> Kind:
    """price / power (re-scored analytically) or perf (needs runs)."""
    return "price" if field == "price_per_hour_usd" else "power" if field == "power_w" else "perf"


def _catalog() -> dict[str, Any]:
    return {f"{a.hardware}.{a.field}": a for a in assumptions()}


def _bad(field: str, value: object, allowed: str) -> ConfigError:
    return ConfigError(f"--search [robust]: field '{field}': value {value!r}; allowed: {allowed}")


def _number(field: str, x: object) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise _bad(field, x, "a number")
    return float(x)


def parse_settings(raw: dict[str, Any]) -> RobustSettings:
    """Validate the raw ``[robust]`` table; :class:`ConfigError` names the field, value, allowed."""
    known = _catalog()
    samples, seed = raw.get("samples", 16), raw.get("seed", 1)
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= 4096:
        raise _bad("samples", samples, "an integer in [1, 4096]")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise _bad("seed", seed, "an integer >= 0")
    only = raw.get("only", [])
    if not isinstance(only, list) or any(o not in known for o in only):
        bad = only if not isinstance(only, list) else next(o for o in only if o not in known)
        raise _bad("only", bad, "a list of " + ", ".join(sorted(known)))
    err = raw.get("capacity_error")
    if err is not None and not 0 <= _number("capacity_error", err) < 1:
        raise _bad("capacity_error", err, "a fraction in [0, 1)")
    ranges = _ranges(raw, known)
    return RobustSettings(samples, seed, tuple(only), None if err is None else float(err),
                          tuple(ranges))


def _ranges(raw: dict[str, Any], known: dict[str, Any]) -> list[tuple[str, float, float]]:
    """The ``[robust.HW]`` tables as (hardware.field, low, high), validated."""
    hardware = sorted({k.split(".")[0] for k in known})
    ranges = []
    for hw, table in raw.items():
        if hw in SETTINGS:
            continue
        if hw not in hardware or not isinstance(table, dict):
            raise _bad(hw, table, f"{', '.join(SETTINGS)} or a table [robust.HW] for HW in "
                                  + ", ".join(hardware))
        for field, pair in table.items():
            name = f"{hw}.{field}"
            if name not in known:
                fields = sorted(k.split(".", 1)[1] for k in known if k.startswith(hw + "."))
                raise _bad(name, pair, "one of " + ", ".join(fields))
            if not isinstance(pair, list) or len(pair) != 2:
                raise _bad(name, pair, "[low, high]")
            low, high = _number(name, pair[0]), _number(name, pair[1])
            if low > high or (low <= 0 and kind_of(field) != "perf"):
                raise _bad(name, pair, "[low, high] with low <= high (prices and powers > 0)")
            ranges.append((name, low, high))
    return ranges


def dimensions(settings: RobustSettings, used: set[str], metric: str,
               space_defaults: dict[str, float], speculative: bool) -> list[Dimension]:
    """The dimensions that can move this plan's objective: hardware some candidate uses (``any``:
    only when a pool decodes speculatively), prices only per dollar, powers only per watt.
    ``space_defaults`` maps ``hardware.field`` to the space file's value where it sets one."""
    user = {n: (lo, hi) for n, lo, hi in settings.ranges}
    out = []
    for name, a in _catalog().items():
        kind = kind_of(a.field)
        if settings.only and name not in settings.only:
            continue
        if (kind == "price" and metric not in PER_DOLLAR) or (
                kind == "power" and metric != "goodput_per_watt"):
            continue
        if not (a.hardware in used or (a.hardware == "any" and speculative)):
            continue
        default = space_defaults.get(name, a.default)
        low, high = user.get(name, (a.low, a.high))
        src = "space file" if name in user else "catalog"
        if name not in user:  # the catalog's range always covers the point it starts from
            low, high = min(low, default), max(high, default)
        out.append(Dimension(a.hardware, a.field, low, default, high, kind, src))
    return out
