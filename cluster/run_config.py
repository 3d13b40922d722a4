"""The run-wide sections of the experiment config tree: ``[experiment]`` (identity, seed, length,
clock), ``[output]`` (where results go) and ``[placement]`` (shared hosts; where actors run)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from disagg.cluster.section import Section as _Section


class ExperimentSection(_Section):
    """Identity, seed, length and clock of a run."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=80,
                      description="letters, digits, _ . -; names the default output folder")
    seed: int = Field(0, ge=0, description="root seed; every component spawns its own stream")
    duration_s: float = Field(gt=0, le=1e6, description="emu seconds during which requests arrive")
    dilation: float = Field(1.0, gt=0, le=1000, description="wall seconds per emu second")
    engine: Literal["ray", "virtual"] = Field("ray", description="ray actors or virtual time")
    drain_timeout_s: float = Field(
        300.0, gt=0, description="emu seconds after the last arrival before unfinished requests fail"
    )
    control_delay_s: float = Field(
        0.0, ge=0, le=1, description="virtual engine: modeled delay of every control message"
    )
    load_report_interval_s: float = Field(
        0.005, ge=0, le=10,
        description="emu s between a unit's load reports to the router (0 = on every change)",
    )
    start_margin_s: float = Field(
        1.0, ge=0, le=60, description="ray engine: wall seconds between set-up and emu time 0"
    )
    hold_wall_s: float = Field(
        0.05, ge=0, le=10, description="ray engine: conservative hold unit, wall s; each edge "
        "(sender -> receiver) is held a multiple of it (cluster/timegate.py HOLD_MULTIPLIERS; "
        "emu hold = multiple x this / dilation); 0 = none; the virtual engine and disagg serve "
        "use 0")
    over_context: Literal["reject", "truncate"] = Field(
        "reject", description="a request whose prompt + output exceeds model.max_context_tokens: "
        "rejected (reason exceeds_context) or its prompt truncated to fit")
    max_memory_fraction: float = Field(
        0.8, gt=0, le=1, description="refuse a run whose estimated peak memory exceeds this "
        "fraction of the machine's RAM (see docs/reliability.md)")


class OutputConfig(_Section):
    """Where results go and how big the real KV payloads are."""

    dir: str = Field("results/{name}", description="output folder; {name} is the experiment name")
    payload_scale: float = Field(
        1e-3, ge=0, le=1, description="real payload bytes = modeled KV bytes x this"
    )
    sample_interval_s: float = Field(0.5, gt=0, description="timeseries grid, emu s")
    event_log: bool = Field(
        False, description="also write events.msgpack: the run's event log (arrivals, batches, "
        "transfers, admissions, ends; emu s), for `disagg trace`",
    )

    @field_validator("dir")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(name="x")
        except (KeyError, IndexError, ValueError, AttributeError) as e:
            raise ValueError(f"bad placeholder ({type(e).__name__}: {e}); allowed: a path whose "
                             "only placeholder is {name}") from None
        if not value.strip():
            raise ValueError("empty; allowed: a path whose only placeholder is {name}")
        return value


class PlacementConfig(_Section):
    """Where units share hosts (``same_host``) and where actors run on a Ray cluster (ray
    engine)."""

    same_host: bool = Field(
        False, description="prefill and decode units share hosts (a DGX-style server): packed "
        "in order, prefill units first, onto hosts of hardware.chips_per_host chips; KV between "
        "units of one host moves over the intra-host link (NVLink-class, docs/fabric.md); both "
        "pools must use the same hardware")

    control: Literal["head", "any"] = Field(
        "head", description="router, fabric, collector, load generator: on the head node or anywhere"
    )
    unit_memory_mb: float = Field(
        128.0, gt=0, le=65_536,
        description="memory reserved per unit when nodes advertise no hardware (spread mode; "
        "an actor of N units reserves N x)",
    )
    ship_code: bool = Field(
        False, description="send the disagg package to the cluster's nodes (runtime_env py_modules)"
    )
    failure_poll_s: float = Field(
        0.5, gt=0, le=60, description="wall seconds between checks that every unit actor is alive"
    )
    hang_timeout_s: float = Field(
        10.0, gt=0, le=3600,
        description="wall seconds an actor may leave the supervisor's ping unanswered before it "
        "is declared hung: a hung unit is handled as a lost one, a hung control-plane actor ends "
        "the run (ray engine and serve; at least failure_poll_s is waited). 10 s: a ping answers "
        "in ~1 ms, but on a machine loaded many times over its cores a healthy actor has taken "
        "seconds; lower it to detect hangs sooner",
    )
    units_per_actor: int = Field(
        1, ge=1, le=64,
        description="unit components of one kind hosted by one Ray actor process (memory per "
        "unit); each is still its own component (not the fabric's units_per_host)",
    )
    one_control_actor: bool = Field(
        True, description="host the collector, router, fabric and load generator (serve: the "
        "gateway) in one Ray actor: their messages to each other cross no actor (about 2 actor "
        "calls fewer per request); false: one actor each, the control plane on several cores",
    )
