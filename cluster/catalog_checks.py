"""Checks of an experiment against its model's and chips' published limits: FP8 weights need
FP8 compute, fixed lengths must fit the model's context, and chips whose efficiencies no
calibration fitted are named in a warning. Pure; ``check_experiment`` runs the refusals."""

from __future__ import annotations

from disagg.cluster.config import Experiment
from disagg.cluster.errors import ConfigError
from disagg.cluster.hardware.catalog_literature import DEFAULT_EFFICIENCY_SRC
from disagg.cluster.hardware.specs import HardwareProfile
from disagg.cluster.workload.synthetic import FixedLength

EFFICIENCY_FIELDS = ("compute_efficiency", "memory_efficiency")


def check_fp8(exp: Experiment) -> None:
    """ConfigError when FP8 weights (1 byte per parameter) meet a chip without FP8 compute."""
    if exp.model.weight_bytes_per_param > 1:
        return
    for kind, pool in exp.pools.items():
        if not pool.hardware.fp8_capable:
            dtype = exp.model.weight_dtype or f"{exp.model.weight_bytes_per_param:g} byte(s)"
            raise ConfigError(
                f"field 'model.weight_dtype': value {dtype!r} needs FP8 compute, which "
                f"hardware {pool.hardware.name!r} ([{kind}]) does not have (no peak_flops_fp8); "
                "allowed: bf16 or fp16 weights on this chip")


def _fixed_pairs(exp: Experiment) -> list[tuple[str, int, int]]:
    """(where, prompt, output) of each workload part whose prompt and output are both fixed."""
    w = exp.workload
    holders = [("workload", w), *((f"workload.classes.{c.name}", c)
                                  for c in getattr(w, "classes", []))]
    out = []
    for where, h in holders:
        p, o = getattr(h, "prompt_tokens", None), getattr(h, "output_tokens", None)
        if isinstance(p, FixedLength) and isinstance(o, FixedLength):
            out.append((where, p.value, o.value))
    return out


def check_context(exp: Experiment) -> None:
    """ConfigError when fixed prompt + output lengths exceed the model's context (catalog or
    inline) and no request could run: under ``over_context = "reject"`` every one would be
    rejected; under ``truncate`` only when the output alone leaves no room for a prompt.
    Distributions and traces are checked per request by the router (rejected or truncated)."""
    limit = exp.model.max_context_tokens
    if limit is None:
        return
    truncate = exp.experiment.over_context == "truncate"
    for where, prompt, output in _fixed_pairs(exp):
        if prompt + output <= limit or (truncate and output < limit):
            continue
        raise ConfigError(
            f"field '{where}.prompt_tokens': value {prompt} + output {output} = "
            f"{prompt + output} tokens exceeds model {exp.model.name!r}'s context of {limit}; "
            "allowed: prompt + output <= the context (or experiment.over_context = 'truncate' "
            "with output < the context)")


def check_slo_classes(exp: Experiment) -> None:
    """ConfigError when ``[slo.classes.NAME]`` names a class the workload never produces."""
    w = exp.workload
    names = {getattr(w, "slo_class", None), *(c.name for c in getattr(w, "classes", []) or [])}
    for name in exp.slo.classes:
        if name not in names:
            known = ", ".join(sorted(n for n in names if n is not None))
            raise ConfigError(f"field 'slo.classes.{name}': the workload has no SLO class "
                              f"{name!r}; allowed: {known}")


def efficiency_warnings(exp: Experiment) -> list[str]:
    """One line per chip (of a pool, or a slowdown SLO's reference unit) whose efficiencies are
    the documented defaults, not fitted values."""
    out: list[str] = []
    seen: list[HardwareProfile] = []
    refs = [t.slowdown.reference.profile for t in (exp.slo, *exp.slo.classes.values())
            if t.slowdown is not None]
    for hw in [*(pool.hardware for pool in exp.pools.values()), *refs]:
        if hw in seen:  # the same profile in two pools: one warning
            continue
        seen.append(hw)
        used = EFFICIENCY_FIELDS if hw.decode_model == "roofline" else ("compute_efficiency",)
        unfitted = [f for f in used
                    if f not in hw.model_fields_set or hw.sources.get(f) == DEFAULT_EFFICIENCY_SRC]
        if unfitted:
            values = ", ".join(f"{f} = {getattr(hw, f):g}" for f in unfitted)
            out.append(f"warning: hardware {hw.name!r} has no fitted efficiency; using the "
                       f"default {values} (docs/calibration.md, 'chips not fitted')")
    return out
