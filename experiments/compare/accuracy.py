"""The accuracy suite: published results run end to end through the emulator (virtual engine).

Each :class:`Case` is an experiment file (under ``experiments/``) with overrides, a metric, the
published number and its source, and the reference figure (:mod:`cluster.hardware.reference`)
it reproduces. Its set comes from that figure, never from the case: ``fitted`` (a constant was
fitted to it), ``predicted`` (fitted to nothing; a speculative figure runs with
``[decode.speculative]`` built from the figure's ``spec``), or ``flagged`` (method unknown or
configuration unread: shown, outside both MAPEs). DistServe, Splitwise and vLLM's P/D pull
request are reserved as independent checks and are never cases.

Metrics, from the requests of the steady state (sent after the first request ended, ended before
the users stop): ``ttft_ms`` and ``itl_ms`` are means of TTFT and TPOT; ``user_tok_s`` is
1 / mean TPOT; ``total_tok_s`` is the run's output throughput (tokens/s). ``capacity_tok_s``
(MLPerf) is the output tokens/s at the highest arrival rate in the case's ``rates`` whose p99
TTFT and p99 TPOT meet the figure's limits (:mod:`experiments.compare.accuracy_capacity`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from disagg.cluster.config import load_experiment
from disagg.cluster.hardware.calibration import draft_model
from disagg.cluster.hardware.catalog import models
from disagg.cluster.hardware.reference import Figure, figures
from disagg.experiments.run import run_experiment

ROOT = Path(__file__).resolve().parents[1]
CaseSet = Literal["fitted", "predicted", "flagged"]
# independent checks, never cases: what their sources contain (lower case)
RESERVED = ("distserve", "splitwise", "vllm-project/vllm/pull")


@dataclass(frozen=True)
class Case:
    """One published result: the experiment that reproduces it and the figure it reproduces."""

    figure_key: str
    experiment: str  # path under experiments/
    overrides: dict[str, Any] = field(default_factory=dict)
    fast: bool = False  # in the CI subset (tests/test_accuracy.py)
    rates: tuple[float, float] = (1.0, 256.0)  # req/s searched by a capacity_tok_s case
    pool: str = "decode"  # the pool a speculative figure's [<pool>.speculative] goes to

    @property
    def figure(self) -> Figure:
        """The reference figure (published number, metric, source, method)."""
        return _figures()[self.figure_key]

    @property
    def case_set(self) -> CaseSet:
        """fitted / predicted / flagged, from the figure alone."""
        f = self.figure
        if f.kind == "fit":
            return "fitted"
        return "predicted" if f.in_mape else "flagged"


def _figures() -> dict[str, Figure]:
    return {f.key: f for f in figures()}


def _speculative(fig: Figure, pool: str = "decode") -> dict[str, Any]:
    """``<pool>.speculative`` for a speculative figure (from its ``spec``), else nothing."""
    if fig.spec is None:
        return {}
    s = fig.spec
    cfg: dict[str, Any] = {"method": s.method, "num_speculative_tokens": s.gamma,
                           "acceptance_rate": s.alpha}
    if s.method == "draft_model":
        draft = s.draft if s.draft in models() else draft_model(s.draft).model_dump()
        cfg |= {"draft_model": draft, "draft_hardware": fig.hardware,
                "draft_chips": s.draft_chips or 1, "fused": s.fused}
    return {f"{pool}.speculative": cfg}


def _nim(key: str, users: int, fast: bool = False) -> Case:
    return Case(key, "nim_h100.toml", {"workload.users": users,
                                       "experiment.duration_s": 40.0 if users < 25 else 60.0},
                fast)


def _cs3(key: str, model: str, wafers: int, fast: bool = False) -> Case:
    return Case(key, "accuracy/cs3_single_user.toml",
                {"model.name": model, "decode.chips_per_unit": wafers}, fast)


def _trn2_decode(key: str) -> Case:
    """Neuron's 70B tutorial with a Trainium2 decode unit (16 chips), so that the speculative
    row (1B draft, k = 7) runs through ``[decode.speculative]``; the plain row beside it."""
    return Case(key, "accuracy/cs3_single_user.toml", {
        "decode.hardware": "trainium2", "decode.chips_per_unit": 16,
        "workload.prompt_tokens": {"kind": "fixed", "value": 10_000},
        "workload.output_tokens": {"kind": "fixed", "value": 1_500},
        "experiment.duration_s": 60.0, "experiment.drain_timeout_s": 600.0})


def _trn2_small(key: str, model: str, chips: int, users: int) -> Case:
    """vLLM-neuron's EAGLE3 tutorial rows (plain baseline and EAGLE3, the latter through
    ``[colocated.speculative]``): 512 / 128 tokens at ``users`` concurrency."""
    return Case(key, "accuracy/trn2_single_user.toml", {
        "model.name": model, "colocated.hardware": "trainium2-vllm-neuron",
        "colocated.chips_per_unit": chips, "workload.users": users,
        "workload.prompt_tokens": {"kind": "fixed", "value": 512},
        "workload.output_tokens": {"kind": "fixed", "value": 128},
        "experiment.duration_s": 20.0}, pool="colocated")


def _mlperf(key: str, hardware: str, tp: int) -> Case:
    """MLPerf v5.0 Llama-2-70B on 8 GPUs: ``8 / tp`` servers of TP ``tp``, the figure's p99
    limits, throughput under them by the capacity search."""
    fig = _figures()[key]
    return Case(key, "accuracy/mlperf_llama2_70b.toml", {
        "colocated.hardware": hardware, "colocated.chips_per_unit": tp,
        "colocated.units": 8 // tp, "slo.ttft_s": fig.ttft_limit_ms / 1e3,
        "slo.tpot_s": fig.tpot_limit_ms / 1e3})


def _trtllm(key: str, model: str, hardware: str, tp: int, requests: int = 3_000) -> Case:
    """A TensorRT-LLM maximum-throughput row: ``requests`` fixed-length requests at once on
    one server of TP ``tp``, drained to the last (the figure's prompt / output lengths)."""
    fig = _figures()[key]
    return Case(key, "accuracy/trtllm_throughput.toml", {
        "model.name": model, "colocated.hardware": hardware, "colocated.chips_per_unit": tp,
        "workload.max_requests": requests,
        "workload.prompt_tokens": {"kind": "fixed", "value": fig.prompt},
        "workload.output_tokens": {"kind": "fixed", "value": fig.output}})


def cases() -> list[Case]:
    """Every case: H100 (NIM), GPU throughput (MLPerf, TensorRT-LLM), Trainium2, CS-3."""
    return [
        _nim("nim70b-c1-ttft", 1, True), _nim("nim70b-c1-itl", 1, True),
        _nim("nim70b-c5-itl", 5), _nim("nim70b-c25-itl", 25), _nim("nim70b-c25-tput", 25),
        _nim("nim70b-c50-itl", 50), _nim("nim70b-c50-tput", 50),
        _mlperf("mlperf-h100-server", "h100", 2), _mlperf("mlperf-h200-server", "h200", 1),
        _mlperf("mlperf-h200-interactive", "h200", 1),
        _trtllm("trtllm-70b-h100", "llama-3.1-70b", "h100", 2),
        _trtllm("trtllm-70b-h200", "llama-3.1-70b", "h200", 1),
        _trtllm("trtllm-70b-h100-5k", "llama-3.1-70b", "h100", 2, 1_500),
        _trtllm("trtllm-8b-h100", "llama-3.1-8b", "h100", 1),
        _trtllm("trtllm-405b-h100", "llama-3.1-405b", "h100", 8),
        Case("trn2-70b-ttft-a", "accuracy/trn2_single_user.toml"),
        Case("trn2-70b-ttft-b", "accuracy/trn2_single_user.toml"),
        Case("trn2-70b-itl-b", "accuracy/trn2_single_user.toml"),
        _trn2_decode("trn2-70b-itl-a"), _trn2_decode("trn2-70b-spec-itl"),
        _trn2_small("trn2-8b-ttft", "llama-3.1-8b", 2, 2),
        _trn2_small("trn2-8b-tpot", "llama-3.1-8b", 2, 2),
        _trn2_small("trn2-oss-ttft", "gpt-oss-120b", 4, 1),
        _trn2_small("trn2-oss-tpot", "gpt-oss-120b", 4, 1),
        _trn2_small("trn2-8b-eagle-tpot", "llama-3.1-8b", 2, 2),
        _trn2_small("trn2-oss-eagle-tpot", "gpt-oss-120b", 4, 1),
        _cs3("cs3-8b-1800", "llama-3.1-8b", 1, True), _cs3("cs3-70b-450", "llama-3.1-70b", 4),
        _cs3("cs3-70b-2100", "llama-3.1-70b", 4, True), _cs3("cs3-8b-2200", "llama-3.1-8b", 1),
    ]


@dataclass(frozen=True)
class CaseResult:
    """A case's emulated value against the published one."""

    case: Case
    emulated: float

    @property
    def error(self) -> float:
        """emulated / published - 1."""
        return self.emulated / self.case.figure.published - 1.0


def run_case(case: Case) -> CaseResult:
    """Run the case's experiment on the virtual engine and read its metric."""
    fig = case.figure
    over = {"experiment.engine": "virtual", **case.overrides, **_speculative(fig, case.pool)}
    exp = load_experiment(ROOT / case.experiment, over)
    if fig.metric == "capacity_tok_s":  # imported here: the search pulls in the comparison
        from disagg.experiments.compare.accuracy_capacity import LatencyLimits, capacity_tok_s

        limits = LatencyLimits(fig.ttft_limit_ms / 1e3, fig.tpot_limit_ms / 1e3)
        lo, hi = case.rates
        return CaseResult(case, capacity_tok_s(exp, limits, lo, hi, tol_fraction=0.004))
    result = run_experiment(exp)
    rows = [r for r in result.tables["requests"].to_pylist() if r["status"] == "completed"]
    if not rows:
        raise RuntimeError(f"case {fig.key}: no request completed in {case.experiment}")
    warm_s = min(r["last_token_s"] for r in rows)
    steady = [r for r in rows if r["arrival_s"] >= warm_s
              and r["last_token_s"] <= exp.experiment.duration_s] or rows
    itl_s = float(np.mean([r["tpot_s"] for r in steady]))
    value = {"ttft_ms": 1e3 * float(np.mean([r["ttft_s"] for r in steady])),
             "itl_ms": 1e3 * itl_s, "user_tok_s": 1 / itl_s,
             "total_tok_s": float(result.summary["output_throughput"])}[fig.metric]
    return CaseResult(case, value)


def mape(results: list[CaseResult], case_set: CaseSet) -> float | None:
    """Mean absolute relative error over the results of one set (a fraction), None if empty."""
    errs = [abs(r.error) for r in results if r.case.case_set == case_set]
    return float(np.mean(errs)) if errs else None
