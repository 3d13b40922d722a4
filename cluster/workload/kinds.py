"""The ``[workload]`` section's variants, selected by ``kind`` (``synthetic`` when absent).

- ``synthetic``: one class, an arrival process at ``rate_per_s``, length distributions.
- ``mix``: one arrival process; each arrival is drawn from weighted classes, each with its own
  lengths and SLO.
- ``trace``: replay a trace file's arrivals and lengths (time window, speed-up or target rate,
  sampling, cap).
- ``closed_loop``: N users; each sends a request, waits for it to end, thinks, sends the next.
- ``agentic``: tasks arrive; each is a chain of dependent calls (``cluster/workload/agentic.py``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from disagg.cluster.section import Section as _Section
from disagg.cluster.workload.delays import DelayDist, LognormalDelay
from disagg.cluster.workload.sessions_trace import SessionTrace
from disagg.cluster.workload.synthetic import (
    ArrivalProcess,
    LengthDist,
    LognormalLength,
    PoissonArrivals,
)
from disagg.cluster.workload.trace_source import TraceSource

_PROMPT = LognormalLength(median=1_000, sigma=0.8, max=8_192)
_OUTPUT = LognormalLength(median=200, sigma=0.6, max=2_048)


class SyntheticWorkload(_Section):
    """Synthetic open-loop arrivals with length distributions (``kind`` may be left out)."""

    kind: Literal["synthetic"] = "synthetic"
    rate_per_s: float = Field(gt=0, le=1e6, description="mean arrival rate, requests per emu s")
    arrivals: ArrivalProcess = Field(PoissonArrivals(), description="inter-arrival process")
    prompt_tokens: LengthDist = Field(_PROMPT, description="prompt lengths")
    output_tokens: LengthDist = Field(
        _OUTPUT, description="output lengths, the first token (from prefill) included",
    )
    max_requests: int | None = Field(None, gt=0, description="cap on submitted requests")
    slo_class: str = Field("default", description="label of these requests' SLO class")


class RequestClass(_Section):
    """One class of a mix: its share of requests, lengths and SLO (default: the ``[slo]`` one)."""

    name: str = Field(min_length=1, max_length=40, description="the requests' slo_class label")
    weight: float = Field(gt=0, description="relative share of requests")
    prompt_tokens: LengthDist = Field(default=_PROMPT, description="prompt lengths")
    output_tokens: LengthDist = Field(default=_OUTPUT, description="output lengths")
    ttft_s: float | None = Field(None, gt=0, description="TTFT target; default [slo].ttft_s")
    tpot_s: float | None = Field(None, gt=0, description="TPOT target; default [slo].tpot_s")


def _unique_names(classes: list[RequestClass]) -> None:
    names = [c.name for c in classes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"class names must be unique; repeated: {', '.join(dupes)}")


class MixWorkload(_Section):
    """Open-loop arrivals, each request drawn from weighted classes with their own SLOs."""

    kind: Literal["mix"]
    rate_per_s: float = Field(gt=0, le=1e6, description="mean arrival rate of all classes")
    arrivals: ArrivalProcess = Field(PoissonArrivals(), description="inter-arrival process")
    classes: list[RequestClass] = Field(min_length=1, description="[[workload.classes]] tables")
    max_requests: int | None = Field(None, gt=0, description="cap on submitted requests")

    @model_validator(mode="after")
    def _names(self) -> MixWorkload:
        _unique_names(self.classes)
        return self


class TraceWorkload(TraceSource):
    """Replay a trace: arrivals and lengths as recorded, after window, sampling, cap and scaling.

    Order of operations: keep requests in ``[start_s, end_s)`` (seconds after the trace's first
    arrival), keep each with probability ``sample_fraction``, keep the first ``max_requests``,
    then divide times by the speed-up (``speedup``, or the one that makes the mean inter-arrival
    rate ``rate_per_s``). The window start is emu time 0; arrivals after ``duration_s`` are cut.
    """

    kind: Literal["trace"]
    start_s: float = Field(0.0, ge=0, description="window start, s after the first arrival")
    end_s: float | None = Field(None, gt=0, description="window end, s after the first arrival")
    speedup: float | None = Field(None, gt=0, le=1e6, description="trace s per emu s")
    rate_per_s: float | None = Field(None, gt=0, le=1e6,
                                     description="target mean rate (1 / mean inter-arrival)")
    sample_fraction: float = Field(1.0, gt=0, le=1, description="keep each request with this "
                                   "probability (seeded)")
    max_requests: int | None = Field(None, gt=0, description="cap on replayed requests")
    slo_class: str = Field("default", description="label of these requests' SLO class")

    @model_validator(mode="after")
    def _scaling(self) -> TraceWorkload:
        if self.speedup is not None and self.rate_per_s is not None:
            raise ValueError("give speedup or rate_per_s, not both")
        if self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"end_s {self.end_s} must be after start_s {self.start_s}")
        return self


class ClosedLoopWorkload(_Section):
    """N users, each: send, wait until the request ends, think (exponential), send the next.

    Users start after one think time each. No request is sent at or after ``duration_s``.
    With ``classes`` each request's class is drawn by weight; otherwise one class. With
    ``multi_turn`` each user holds a conversation: the next prompt is the previous prompt and
    output plus the newly drawn prompt tokens, and requests carry prefix-block hashes (the
    blocks of the previous prompt keep their ids), until the next prompt would exceed
    ``max_context_tokens`` and the user starts a new conversation.
    """

    kind: Literal["closed_loop"]
    users: int = Field(gt=0, le=1_000_000, description="concurrent users (max requests in flight)")
    think_time_s: float = Field(ge=0, description="mean think time between requests, emu s")
    prompt_tokens: LengthDist = Field(default=_PROMPT, description="prompt lengths")
    output_tokens: LengthDist = Field(default=_OUTPUT, description="output lengths")
    slo_class: str = Field("default", description="label of these requests' SLO class")
    classes: list[RequestClass] = Field(default_factory=list,
                                        description="optional weighted classes (as in mix)")
    max_requests: int | None = Field(None, gt=0, description="cap on submitted requests")
    multi_turn: bool = Field(False, description="each prompt extends the user's conversation "
                             "(previous prompt + output + new tokens), with prefix hashes")
    max_context_tokens: int = Field(32_768, gt=0, le=10_000_000,
                                    description="multi_turn: a longer next prompt starts a new "
                                    "conversation")

    @model_validator(mode="after")
    def _one_source(self) -> ClosedLoopWorkload:
        _unique_names(self.classes)
        if self.classes and {"prompt_tokens", "output_tokens"} & self.model_fields_set:
            raise ValueError("give classes or prompt_tokens/output_tokens, not both")
        return self


# Agentic coding defaults. Published: SWE-agent trajectories on SWE-Bench Pro take a median of
# 29 to 78 steps (LLM calls) per task across four models (nilenso, "SWE-Bench Pro trajectory
# analysis", 2,920 trajectories, nilenso.github.io/swe-bench-pro-cost-token-time-analysis);
# SWE-agent runs on SWE-bench Verified are capped at 250 turns (Lindenbauer et al., "The
# Complexity Trap", arXiv 2508.21433), which also find that tool observations are the bulk of
# each turn's new tokens. Assumed (no published per-call table; sweep them): the first prompt
# (system prompt, tools, issue), the tokens a call adds, its output and the tool delay.
_CALLS = LognormalLength(median=50, sigma=0.5, min=1, max=250)
_FIRST_PROMPT = LognormalLength(median=4_000, sigma=0.5, max=16_384)
_NEW_TOKENS = LognormalLength(median=600, sigma=1.0, max=8_192)
_CALL_OUTPUT = LognormalLength(median=250, sigma=0.7, max=4_096)
_DELAY = LognormalDelay(median_s=1.0, sigma=1.0, max_s=120.0)


class AgenticWorkload(_Section):
    """Agent tasks: chains of dependent calls, each sent when the previous one ended + a delay.

    A call is sent only when the task's previous call ended plus a tool/think delay; its prompt
    is the context so far (previous prompt + output) plus new tokens, with prefix-block hashes,
    so prefix caching and KV kept on decode units apply.

    Tasks arrive at ``rate_per_s`` (tasks per emu s), or as recorded in a session ``trace``
    (agentic Mooncake JSONL; its ``delay`` after each previous call's end is honoured). A call
    whose prompt + output would exceed ``max_context_tokens`` (default: the model's limit):
    ``truncate`` drops the task's earlier calls from the context and keeps its first prompt (as
    agents that mask old observations do; prefix reuse keeps those first blocks), or ends the
    task (``end_task``, status ``context_limit``); a call that does not fit even then ends it.
    """

    kind: Literal["agentic"]
    rate_per_s: float | None = Field(None, gt=0, le=1e6, description="task arrivals per emu s")
    arrivals: ArrivalProcess = Field(PoissonArrivals(), description="task inter-arrivals")
    trace: SessionTrace | None = Field(None, description="replay recorded sessions instead")
    trace_speedup: float = Field(1.0, gt=0, le=1e6,
                                 description="trace: trace s per emu s (arrivals and delays)")
    max_tasks: int | None = Field(None, gt=0, description="cap on tasks started")
    calls_per_task: LengthDist = Field(_CALLS, description="calls (LLM requests) per task")
    first_prompt_tokens: LengthDist = Field(_FIRST_PROMPT, description="the first call's prompt")
    new_tokens: LengthDist = Field(_NEW_TOKENS, description="tokens each later call adds to the "
                                   "context (tool output, observation)")
    output_tokens: LengthDist = Field(_CALL_OUTPUT, description="each call's output tokens "
                                      "(a reasoning preset fits reasoning agents)")
    delay_s: DelayDist = Field(_DELAY, description="tool/think delay after a call ends, emu s")
    max_context_tokens: int | None = Field(None, gt=0, le=10_000_000,
                                           description="context limit; default the model's")
    on_context_limit: Literal["truncate", "end_task"] = Field(
        "truncate", description="a call over the limit: drop earlier calls, or end the task")
    slo_class: str = Field("agent", description="label of the calls' SLO class")

    @model_validator(mode="after")
    def _source(self) -> AgenticWorkload:
        if (self.trace is None) == (self.rate_per_s is None):
            raise ValueError("give rate_per_s (synthetic tasks) or trace (recorded sessions), "
                             "exactly one")
        return self


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("kind", "synthetic"))
    return str(getattr(value, "kind", "synthetic"))


WorkloadSpec = Annotated[
    Annotated[SyntheticWorkload, Tag("synthetic")] | Annotated[MixWorkload, Tag("mix")]
    | Annotated[TraceWorkload, Tag("trace")] | Annotated[ClosedLoopWorkload, Tag("closed_loop")]
    | Annotated[AgenticWorkload, Tag("agentic")],
    Discriminator(_kind),
]
