"""Reference figures against what the performance models emulate, with the error and MAPE.

:func:`emulate` computes one figure's metric for a hardware profile (the fit passes candidate
profiles; the table uses the catalog's). A colocated GPU server under a closed loop of ``c``
users is estimated in steady state by :func:`closed_loop`: each user's decode of ``n`` tokens
takes ``D = n x step(b) + (b - 1) x P x D / (P + D)`` — its own steps plus the share of the other
users' prefills (``P`` each, one per cycle ``P + D``) that chunked prefill mixes into its decode
iterations — with ``b`` the users whose KV fits at once (the rest queue for a slot).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from disagg.cluster.hardware.catalog import get_hardware, get_model
from disagg.cluster.hardware.perf import decode_step_time, fit_check, kv_bytes, prefill_time
from disagg.cluster.hardware.reference import Figure, figures
from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec


@dataclass(frozen=True)
class ClosedLoop:
    """Steady state of a colocated server under a closed loop: seconds and total tokens/s."""

    ttft_s: float
    itl_s: float
    total_tok_s: float
    running: int


def figure_model(fig: Figure) -> ModelSpec:
    """The catalog model at the figure's weight and KV precision."""
    base = get_model(fig.model).model_dump()
    return ModelSpec.model_validate({**base, "weight_dtype": fig.weight_dtype,
                                     "kv_dtype": fig.kv_dtype})


def closed_loop(model: ModelSpec, hw: HardwareProfile, chips: int, users: int, prompt: int,
                output: int) -> ClosedLoop:
    """Steady-state TTFT, ITL and throughput of ``users`` closed-loop users on one server."""
    prefill_s = prefill_time([prompt], model, hw, chips).seconds
    per_user = float(kv_bytes(prompt + output, model))
    slots = int(fit_check(model, hw, chips).kv_capacity_bytes // per_user)
    running = max(1, min(users, slots))
    step_s = decode_step_time(running, int(running * (prompt + output / 2)), model, hw, chips)
    # D^2 + D ((2 - b) P - n s) - n s P = 0, the positive root
    work = output * step_s
    lin = (2 - running) * prefill_s - work
    decode_s = (-lin + math.sqrt(lin * lin + 4 * work * prefill_s)) / 2
    cycle_s = prefill_s + decode_s
    wait_s = (users - running) * cycle_s / running
    return ClosedLoop(prefill_s + wait_s, decode_s / output, running * output / cycle_s,
                      running)


def emulate(fig: Figure, hw: HardwareProfile | None = None) -> float:
    """The figure's metric as the models give it on ``hw`` (default: the catalog's profile)."""
    hw = hw if hw is not None else get_hardware(fig.hardware)
    model = figure_model(fig)
    if fig.scenario == "closed_loop":
        loop = closed_loop(model, hw, fig.chips, fig.batch, fig.prompt, fig.output)
        return {"ttft_ms": loop.ttft_s * 1e3, "itl_ms": loop.itl_s * 1e3,
                "total_tok_s": loop.total_tok_s, "user_tok_s": 1 / loop.itl_s}[fig.metric]
    if fig.scenario == "ttft":
        return prefill_time([fig.prompt], model, hw, fig.chips).seconds * 1e3
    ctx = fig.prompt + fig.output // 2
    step_s = decode_step_time(fig.batch, fig.batch * ctx, model, hw, fig.chips)
    return 1 / step_s if fig.metric == "user_tok_s" else step_s * 1e3


@dataclass(frozen=True)
class CalibrationRow:
    """One reference figure, the emulated value and the relative error."""

    figure: Figure
    emulated: float

    @property
    def error(self) -> float:
        """emulated / published - 1."""
        return self.emulated / self.figure.published - 1.0


def calibration_rows(hardware: dict[str, HardwareProfile] | None = None) -> list[CalibrationRow]:
    """Every reference figure against the models (on ``hardware`` by name, else the catalog)."""
    chosen = hardware or {}
    return [CalibrationRow(f, emulate(f, chosen.get(f.hardware))) for f in figures()]


def mape(rows: list[CalibrationRow], kind: str, comparable_only: bool = True) -> float | None:
    """Mean absolute percentage error (a fraction) over the rows of one kind."""
    errs = [abs(r.error) for r in rows if r.figure.kind == kind
            and (r.figure.comparable or not comparable_only)]
    return float(np.mean(errs)) if errs else None
