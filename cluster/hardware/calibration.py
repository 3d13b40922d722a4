"""Reference figures against what the performance models emulate, with the error and MAPE.

:func:`emulate` computes one figure's metric for a hardware profile (the fit passes candidate
profiles; the table uses the catalog's). A colocated GPU server under a closed loop of ``c``
users is estimated in steady state by :func:`closed_loop`: each user's decode of ``n`` tokens
takes ``D = n x step(b) + (b - 1) x P x D / (P + D)`` — its own steps plus the share of the other
users' prefills (``P`` each, one per cycle ``P + D``) that chunked prefill mixes into its decode
iterations — with ``b`` the users whose KV fits at once (the rest queue for a slot).

A ``capacity`` figure (MLPerf) is estimated by :func:`capacity_tok_s`: the best output rate
over running batches ``b`` whose mean TPOT, ``step(b) + (b - 1) x P / n``, stays within the
TPOT limit — a mean, not MLPerf's p99, so an optimistic bound; the accuracy suite runs the p99
search end to end.

A speculative figure's decode step is :func:`speculative.spec_step_times` (draft + verify) and
its per-token time that step over the expected tokens a step yields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from disagg.cluster.hardware.catalog import get_hardware, get_model
from disagg.cluster.hardware.perf import decode_step_time, decode_step_times, fit_check, kv_bytes
from disagg.cluster.hardware.prefill import prefill_time
from disagg.cluster.hardware.reference import Figure, SpecCase, figures
from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec
from disagg.cluster.hardware.speculative import (
    Speculation,
    expected_tokens_per_step,
    spec_step_times,
)

# Draft models not in the catalog (used only as drafts by speculative reference figures).
_DRAFTS = {
    "llama-3.2-1b": ModelSpec(
        name="llama-3.2-1b", layers=16, hidden_size=2_048, q_heads=32, kv_heads=8, head_dim=64,
        ffn_size=8_192, vocab=128_256, total_params=1.24e9, active_params=1.24e9,
        sources={"shape": "[V] meta-llama Llama-3.2-1B config.json"}),
}


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


def draft_model(name: str) -> ModelSpec:
    """A speculative figure's draft model: one of :data:`_DRAFTS`, else the catalog's."""
    return _DRAFTS[name] if name in _DRAFTS else get_model(name)


def speculation(case: SpecCase, hw: HardwareProfile) -> Speculation:
    """The speculative-decoding model's :class:`Speculation` for a figure's ``spec``."""
    draft = draft_model(case.draft) if case.method == "draft_model" else None
    return Speculation(case.method, case.gamma, case.alpha, draft=draft, draft_hw=hw,
                       draft_chips=case.draft_chips or 1, fused=case.fused)


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


def capacity_tok_s(model: ModelSpec, hw: HardwareProfile, chips: int, prompt: int, output: int,
                   ttft_limit_s: float, tpot_limit_s: float) -> float:
    """Output tokens/s one colocated server sustains with mean TPOT within ``tpot_limit_s``
    (0 if even one user's prefill misses ``ttft_limit_s``): see the module docstring."""
    prefill_s = prefill_time([prompt], model, hw, chips).seconds
    if prefill_s > ttft_limit_s:
        return 0.0
    slots = int(fit_check(model, hw, chips).kv_capacity_bytes
                // float(kv_bytes(prompt + output, model)))
    b = np.arange(1, max(1, min(slots, 8_192)) + 1, dtype=np.float64)
    tpot = decode_step_times(b, b * (prompt + output / 2), model, hw, chips) + (
        (b - 1) * prefill_s / output)
    ok = tpot <= tpot_limit_s
    return float(np.max(b[ok] / tpot[ok])) if ok.any() else 0.0


def emulate(fig: Figure, hw: HardwareProfile | None = None) -> float:
    """The figure's metric as the models give it on ``hw`` (default: the catalog's profile)."""
    hw = hw if hw is not None else get_hardware(fig.hardware)
    model = figure_model(fig)
    if fig.scenario == "closed_loop":
        loop = closed_loop(model, hw, fig.chips, fig.batch, fig.prompt, fig.output)
        return {"ttft_ms": loop.ttft_s * 1e3, "itl_ms": loop.itl_s * 1e3,
                "total_tok_s": loop.total_tok_s, "user_tok_s": 1 / loop.itl_s}[fig.metric]
    if fig.scenario == "capacity":
        return fig.units * capacity_tok_s(model, hw, fig.chips, fig.prompt, fig.output,
                                          fig.ttft_limit_ms / 1e3, fig.tpot_limit_ms / 1e3)
    if fig.scenario == "ttft":
        return prefill_time([fig.prompt], model, hw, fig.chips).seconds * 1e3
    ctx = fig.prompt + fig.output // 2
    if fig.spec is not None:  # per token: a speculative step over the tokens it yields
        spec = speculation(fig.spec, hw)
        step = float(spec_step_times(fig.batch, fig.batch * ctx, spec, model, hw, fig.chips))
        step_s = step / expected_tokens_per_step(spec.default_alpha, spec.gamma)
    else:
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
    """Mean absolute percentage error (a fraction) over the rows of one kind (by default only
    the figures the models can express: ``Figure.in_mape``)."""
    errs = [abs(r.error) for r in rows if r.figure.kind == kind
            and (r.figure.in_mape or not comparable_only)]
    return float(np.mean(errs)) if errs else None
