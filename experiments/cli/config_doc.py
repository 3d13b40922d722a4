"""The config reference in Markdown, generated from the pydantic tree (docs/config.md embeds it;
a test keeps the two equal). Run ``python -m disagg.experiments.cli.config_doc`` to regenerate."""

from __future__ import annotations

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from disagg.cluster import config as c
from disagg.cluster import faults as fk
from disagg.cluster import pool_config as pc
from disagg.cluster import run_config as rc
from disagg.cluster import serving_config as sc
from disagg.cluster import slo
from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec
from disagg.cluster.workload import delays as d
from disagg.cluster.workload import kinds as ws
from disagg.cluster.workload import synthetic as w
from disagg.cluster.workload.sessions_trace import SessionTrace

SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("[experiment]", rc.ExperimentSection), ("[prefill] and [decode]", pc.PoolConfig),
    ("[decode] (and [colocated]) adds", pc.DecodePoolConfig),
    ("[decode.speculative] (or [colocated.speculative])", sc.SpeculativeConfig),
    ("[colocated] (instead of [prefill] and [decode])", pc.ColocatedPoolConfig),
    ("[fabric]", c.FabricConfig), ('[workload] kind = "synthetic" (the default)', c.WorkloadConfig),
    ('[workload] kind = "mix"', ws.MixWorkload), ("[[workload.classes]]", ws.RequestClass),
    ('[workload] kind = "trace"', ws.TraceWorkload),
    ('[workload] kind = "closed_loop"', ws.ClosedLoopWorkload),
    ('[workload] kind = "agentic"', ws.AgenticWorkload), ("[workload.trace] (agentic)", SessionTrace),
    ("[slo]", c.SloConfig),
    ("[slo.classes.NAME]", slo.ClassTargets), ("[slo] slowdown = { ... }", slo.SlowdownTargets),
    ("slowdown reference = { ... }", slo.ReferenceUnit),
    ("[policies]", c.PoliciesConfig), ("[output]", rc.OutputConfig),
    ('[[faults]] kind = "unit_loss"', fk.UnitLoss), ('[[faults]] kind = "host_loss"', fk.HostLoss),
    ('[[faults]] kind = "straggler"', fk.Straggler),
    ('[[faults]] kind = "link"', fk.LinkFault),
    ('[[faults]] kind = "kv_drop" or "kv_corrupt"', fk.KvFault),
    ("[placement]", rc.PlacementConfig), ("[prefix_cache]", c.PrefixCacheConfig),
    ("[model] inline spec", ModelSpec), ("hardware inline spec", HardwareProfile),
    ('length kind = "fixed"', w.FixedLength), ('length kind = "uniform"', w.UniformLength),
    ('length kind = "lognormal"', w.LognormalLength),
    ('length kind = "empirical"', w.EmpiricalLength), ('length kind = "preset"', w.PresetLength),
    ('delay kind = "fixed"', d.FixedDelay), ('delay kind = "exponential"', d.ExponentialDelay),
    ('delay kind = "lognormal"', d.LognormalDelay),
    ('arrivals kind = "poisson"', w.PoissonArrivals), ('arrivals kind = "gamma"', w.GammaArrivals),
    ('arrivals kind = "constant"', w.ConstantArrivals), ('arrivals kind = "onoff"', w.OnOffArrivals),
    ('arrivals kind = "diurnal"', w.DiurnalArrivals),
]


def _type(annotation: object) -> str:
    text = str(annotation)
    for junk in ("typing.", "<class '", "'>", "disagg.cluster.hardware.specs.", "disagg.cluster.config.",
                 "disagg.cluster.pool_config.", "disagg.cluster.run_config.",
                 "disagg.cluster.serving_config."):
        text = text.replace(junk, "")
    if "RequestClass" in text or "UnitLoss" in text:
        return "list of tables"
    if "SessionTrace" in text:
        return "table"
    if "Length" in text or "Arrivals" in text or "Workload" in text or "Delay" in text:
        return "table with `kind`"
    return text.replace("|", "or")


def _default(field: object) -> str:
    default = getattr(field, "default")
    factory = getattr(field, "default_factory")
    if default is PydanticUndefined and factory is None:
        return "**required**"
    if factory is not None:
        return f"`{factory()!r}`"
    if isinstance(default, BaseModel):
        return f"`{default.model_dump(exclude_defaults=False)!r}`".replace("|", "or")
    return f"`{default!r}`"


def _bounds(field: object) -> str:
    parts = []
    for meta in getattr(field, "metadata"):
        for key, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(meta, key, None)
            if value is not None:
                parts.append(f"{sign} {value:g}" if isinstance(value, float) else f"{sign} {value}")
    return ", ".join(parts)


def config_reference_markdown() -> str:
    """Every section and field with type, default, bounds and meaning."""
    out = []
    for title, model in SECTIONS:
        doc = (model.__doc__ or "").strip().splitlines()[0]
        out += [f"### {title}", "", doc, "", "| field | type | default | bounds | meaning |",
                "|---|---|---|---|---|"]
        for name, f in model.model_fields.items():
            out.append(f"| `{name}` | {_type(f.annotation)} | {_default(f)} | {_bounds(f)} | "
                       f"{f.description or ''} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(config_reference_markdown())
