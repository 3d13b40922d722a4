"""``disagg compare``: one experiment under several router policies, request rates and repeats.

Every policy sees the identical request stream at each (rate, repeat): only the router policy
differs between the runs of a cell. Repeat ``k`` uses seed ``experiment.seed + k``. Each run is
written to ``OUT/runs/<policy>/rate-<r>/repeat-<k>/`` (the usual results folder plus ``run.json``);
the whole comparison is built in a temporary sibling folder and renamed into place when complete.
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ContextManager

from disagg.actors.engines.stop import StopFlag, StoppedBeforeStart
from disagg.cluster.config import Experiment, PolicySpec
from disagg.cluster.errors import ConfigError
from disagg.experiments.checks import check_experiment
from disagg.experiments.compare.report import Report, render_report
from disagg.experiments.results.writing import (
    staged_folder,
    swap_into_place,
    write_results,
)
from disagg.experiments.run import assemble, execute

MAX_RATE_PER_S = 1e6


@dataclass(frozen=True)
class PolicyChoice:
    """A router policy as named on the command line: ``name`` or ``name:key=value:key=value``."""

    label: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """The label as a folder name (characters other than letters, digits, ``_.=-`` -> ``_``)."""
        return re.sub(r"[^A-Za-z0-9_.=-]+", "_", self.label)


def _param_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word is a string


def parse_policies(text: str) -> list[PolicyChoice]:
    """``a,b:x=1:y=fast,pkg.mod.Class`` -> policy choices; values are TOML scalars or bare words."""
    choices = []
    for item in (s.strip() for s in text.split(",")):
        name, *pairs = item.split(":")
        if not name:
            raise ConfigError(f"--policies: value {text!r} has an empty policy name; "
                              "allowed: comma-separated names, each optionally name:key=value")
        params = {}
        for pair in pairs:
            key, eq, value = pair.partition("=")
            if not eq or not key:
                raise ConfigError(f"--policies: parameter {pair!r} of {name!r} is not key=value")
            params[key] = _param_value(value)
        choices.append(PolicyChoice(item, name, params))
    slugs = [c.slug for c in choices]
    if len(set(slugs)) != len(slugs):
        raise ConfigError(f"--policies: value {text!r} names a policy twice")
    return choices


def parse_rates(text: str) -> list[float]:
    """``1,2.5,4`` -> sorted distinct request rates (requests per emu s), each in (0, 1e6]."""
    try:
        rates = [float(s) for s in text.split(",")]
    except ValueError:
        rates = []
    if not rates or any(not 0 < r <= MAX_RATE_PER_S for r in rates):
        raise ConfigError(f"--rates: value {text!r} is not allowed; allowed: comma-separated "
                          f"request rates per emu s, each > 0 and <= {MAX_RATE_PER_S:g}")
    return sorted(set(rates))


@dataclass(frozen=True)
class RunPlan:
    """One run of a comparison: a policy at a rate, repeat ``repeat`` (seed = base seed + repeat)."""

    policy: PolicyChoice
    rate_per_s: float
    repeat: int
    experiment: Experiment

    @property
    def rate_label(self) -> str:
        """``@ 2 req/s``, or for the workload's own arrivals (rate 0) ``at its own arrivals``."""
        return f"@ {self.rate_per_s:g} req/s" if self.rate_per_s > 0 else "at its own arrivals"

    @property
    def rel_dir(self) -> Path:
        return Path("runs") / self.policy.slug / f"rate-{self.rate_per_s:g}" / f"repeat-{self.repeat}"

    def meta(self) -> dict[str, Any]:
        """run.json: what distinguishes this run within the comparison."""
        return {"policy": self.policy.label, "policy_name": self.policy.name,
                "policy_params": self.policy.params, "rate_per_s": self.rate_per_s,
                "repeat": self.repeat, "seed": self.experiment.experiment.seed}


def variant(base: Experiment, policy: PolicyChoice, rate_per_s: float, seed: int,
            engine: str) -> Experiment:
    """``base`` with another router policy, arrival rate, seed and engine (all else identical).
    A rate of 0 keeps the workload's own arrivals (closed loop, or a trace at its speed-up)."""
    workload = base.workload
    if rate_per_s > 0:
        fields = workload.model_dump()
        fields["rate_per_s"] = rate_per_s
        if fields.get("speedup") is not None:
            fields["speedup"] = None  # a trace replayed at a target rate instead
        workload = type(workload).model_validate(fields)
    return base.model_copy(update={
        "experiment": base.experiment.model_copy(update={"seed": seed, "engine": engine}),
        "workload": workload,
        "policies": base.policies.model_copy(
            update={"router": PolicySpec(name=policy.name, params=policy.params)}),
    })


def plan_runs(base: Experiment, policies: list[PolicyChoice], rates: list[float] | None,
              repeats: int, engine: str | None = None) -> list[RunPlan]:
    """Every (policy, rate, repeat) run, each policy's experiment checked before anything runs."""

    if repeats < 1:
        raise ConfigError(f"--repeats: value {repeats} is not allowed; allowed: an integer >= 1")
    engine = engine or base.experiment.engine
    nominal = getattr(base.workload, "rate_per_s", None)
    if rates and "rate_per_s" not in type(base.workload).model_fields:
        raise ConfigError(f"--rates: a {base.workload.kind} workload has no arrival rate to set; "
                          "allowed: omit --rates")
    rates = rates or [float(nominal or 0.0)]
    seed0 = base.experiment.seed
    for p in policies:
        try:
            check_experiment(variant(base, p, rates[0], seed0, engine))
        except ConfigError as e:
            raise ConfigError(f"--policies: {p.label!r}: {e}") from None
    return [RunPlan(p, r, k, variant(base, p, r, seed0 + k, engine))
            for r in rates for k in range(repeats) for p in policies]


Progress = Callable[[RunPlan, dict[str, Any]], None]


LiveRun = Callable[[RunPlan], ContextManager[tuple[Any, float]]]


def run_plans(plans: list[RunPlan], out_dir: Path, address: str | None = None,
              use_ray: bool = True, progress: Progress | None = None,
              live: LiveRun | None = None, stop: StopFlag | None = None) -> int:
    """Run every plan and write its results folder under ``out_dir`` (virtual: in parallel);
    returns how many were written. ``live(plan)`` gives (progress callback, live interval) to
    show each ray-engine run. Once ``stop`` is requested no run starts and a run cut short is
    not saved (a comparison holds only complete runs)."""
    saved = [0]

    def save(plan: RunPlan, raw: dict[str, Any]) -> None:
        if raw.get("unfinished", {}).get("status") == "cancelled":
            return
        saved[0] += 1
        result = assemble(plan.experiment, raw)
        extra = {"run.json": (json.dumps(plan.meta(), indent=2) + "\n").encode()}
        write_results(out_dir / plan.rel_dir, plan.experiment, result.tables, result.summary, extra)
        if progress is not None:
            progress(plan, result.summary)

    virtual = [p for p in plans if p.experiment.experiment.engine == "virtual"]
    if virtual:
        from disagg.actors.engines.parallel import map_virtual_runs

        map_virtual_runs([p.experiment for p in virtual], use_ray=use_ray, address=address,
                         on_done=lambda i, raw: save(virtual[i], raw), stop=stop)
    for plan in (p for p in plans if p.experiment.experiment.engine == "ray"):
        if stop is not None and stop.requested:
            break
        try:
            if live is None:
                save(plan, execute(plan.experiment, address=address, stop=stop, checked=True))
                continue
            with live(plan) as (callback, live_s):
                raw = execute(plan.experiment, address=address, progress=callback,
                              live_s=live_s, stop=stop, checked=True)
        except StoppedBeforeStart:
            break  # stopped while the run started: nothing of it to save
        save(plan, raw)
    return saved[0]


def compare(base: Experiment, plans: list[RunPlan], out_dir: Path, address: str | None = None,
            use_ray: bool = True, progress: Progress | None = None,
            live: LiveRun | None = None, stop: StopFlag | None = None,
            manifest_extra: dict[str, Any] | None = None) -> Report | None:
    """Run ``plans``, render the report, and move the finished folder to ``out_dir``;
    ``manifest_extra`` goes into compare.json as it is (e.g. a cluster line-up). Stopped early by
    ``stop``: the report covers the runs that finished (None, and nothing written, if none did)."""

    out_dir = Path(out_dir)
    with staged_folder(out_dir, "compare") as tmp:
        manifest = {"experiment": base.experiment.name,
                    "policies": list(dict.fromkeys(p.policy.label for p in plans)),
                    "rates_per_s": sorted({p.rate_per_s for p in plans}),
                    "repeats": len({p.repeat for p in plans}), "runs": len(plans),
                    **(manifest_extra or {})}
        (tmp / "compare.json").write_text(json.dumps(manifest, indent=2) + "\n")
        saved = run_plans(plans, tmp, address=address, use_ray=use_ray, progress=progress,
                          live=live, stop=stop)
        if saved == 0 and plans:
            shutil.rmtree(tmp, ignore_errors=True)
            return None
        report = render_report(tmp)
        swap_into_place(tmp, out_dir)
    return report

