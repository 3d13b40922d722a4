"""Rich renderables for the command line: the run summary, progress lines, the catalog."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group
from rich.table import Table

from disagg.cluster.config import Experiment
from disagg.cluster.hardware.catalog import hardware, models
from disagg.experiments.view.tabular import Tabular


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def slo_targets_line(rows: list[dict[str, Any]]) -> str:
    """'k of n met', and the missed targets with their value > limit (docs/slo.md)."""
    missed = [r for r in rows if not r["met"]]
    text = f"{len(rows) - len(missed)} of {len(rows)} met"
    if missed:
        text += "; missed: " + ", ".join(
            f"{r['slo_class']} {r['target']} {_fmt(r['value'], 3)} > {r['limit']:g}"
            for r in missed)
    return text


def summary_table(s: dict[str, Any]) -> Group:
    """The headline metrics of one run: a latency table and a table of run-wide figures."""
    k = Table(show_header=False, box=None, padding=(0, 2))
    k.add_column(style="bold")
    k.add_column()
    for label, value in _headline_rows(s) + _prefix_rows(s) + _outcome_rows(s):
        k.add_row(label, value)
    return Group(_latency_table(s), k)


def _latency_table(s: dict[str, Any]) -> Table:
    """TTFT, TPOT, ITL and end-to-end latency: p50, p90, p99 and mean in ms."""
    t = Table(title=f"{s['experiment']} — {s['engine']} engine, seed {s['seed']}, "
              f"dilation {s['dilation']:g}", show_header=True)
    t.add_column("latency")
    for col in ("p50", "p90", "p99", "mean"):
        t.add_column(col, justify="right")
    for label, key in (("TTFT ms", "ttft"), ("TPOT ms", "tpot"), ("ITL ms", "itl"),
                       ("E2E ms", "e2el")):
        t.add_row(label, _fmt(s[f"median_{key}_ms"], 2), _fmt(s[f"p90_{key}_ms"], 2),
                  _fmt(s[f"p99_{key}_ms"], 2), _fmt(s[f"mean_{key}_ms"], 2))
    return t


def _headline_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """The run-wide figures every summary has: requests, SLO attainment, goodput, throughput,
    utilization, cost, energy, fabric and the emulator's lag."""
    attain = s["slo_attainment"]
    return [
        ("requests", f"submitted {s['submitted']}, completed {s['completed']}, "
                     f"rejected {s['rejected']}, failed {s['failed']}"
                     + (f", cancelled {s['cancelled']}" if s.get("cancelled") else "")),
        ("SLO attainment", f"{_fmt(None if attain is None else 100 * attain)} %"),
        ("goodput", f"{_fmt(s['request_goodput'], 2)} req/s"),
        ("output throughput", f"{_fmt(s['output_throughput'])} tok/s"),
        ("utilization", f"colocated {_fmt(_pct(s['colocated_utilization']))} %"
         if s.get("colocated_utilization") is not None else
         f"prefill {_fmt(_pct(s['prefill_utilization']))} %, "
         f"decode {_fmt(_pct(s['decode_utilization']))} %"),
        ("cost", "n/a: a pool has no price (set price_per_chip_hour_usd)"
         if s["cost_per_million_tokens"] is None
         else f"${s['cost_per_million_tokens']:,.3f} per million output tokens"),
        ("energy", "n/a: a pool has no power (set power_per_chip_w)"
         if s.get("energy_per_token_j") is None
         else f"{s['energy_per_token_j']:,.3f} J per output token"),
        ("fabric", f"{_fmt(s['fabric_bytes'] / 1e9, 2)} GB, transfer p50 "
                   f"{_fmt(s['p50_transfer_ms'], 2)} ms, p99 {_fmt(s['p99_transfer_ms'], 2)} ms"),
        ("emulator lag", f"p50 {_fmt(s['lag_p50_ms'], 2)} ms, p99 {_fmt(s['lag_p99_ms'], 2)} ms, "
                         f"late decisions {s['late_decisions']}"),
    ]


def _outcome_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """The lines a run has only when they apply: SLO targets, why requests did not complete,
    lost units, a lost component, faults and recovery."""
    rows = []
    if s.get("slo_targets"):
        rows.append(("SLO targets", slo_targets_line(s["slo_targets"])))
    if s.get("reasons"):
        rows.append(("not completed",
                     ", ".join(f"{r}: {n}" for r, n in sorted(s["reasons"].items()))))
    if s.get("lost_units"):
        rows.append(("lost units", ", ".join(s["lost_units"])))
    if s.get("component_lost"):
        rows.append(("run ended", f"the {s['component_lost']} component was lost"))
    for i, fault in enumerate(s.get("faults") or []):
        rows.append(("faults" if i == 0 else "", fault))
    if s.get("redone"):
        rows.append(("recovery", f"{s['redone']} request(s) redone from prefill after a unit "
                                 "loss (requests.parquet column redone_from)"))
    return rows


def _prefix_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """Prefix-cache lines of the summary (none when caching was off)."""
    rows = []
    if "prefix_hit_rate" in s:
        rows.append(("prefix cache", f"hit {_fmt(_pct(s['prefix_hit_rate']))} % of blocks, "
                     f"{_fmt(_pct(s['cached_token_share']))} % of prompt tokens cached"))
    if "decode_kv_hit_rate" in s:
        rows.append(("decode kept KV", f"hit {_fmt(_pct(s['decode_kv_hit_rate']))} % of blocks, "
                     f"{_fmt(s['decode_kv_reused_bytes'] / 1e9, 2)} GB not re-sent"))
    return rows


def _pct(x: float | None) -> float | None:
    return None if x is None else 100 * x


def plain_progress(console: Console, exp: Experiment, every_s: float = 3.0
                   ) -> Callable[[dict[str, Any]], None]:
    """A progress callback that prints one plain line every ``every_s`` wall seconds."""
    last = [0.0]
    horizon = exp.experiment.duration_s

    def show(snap: dict[str, Any]) -> None:
        if time.time() - last[0] < every_s:
            return
        last[0] = time.time()
        when = (f"emu {snap['now_s']:7.1f} s / {horizon:g} s arrivals" if snap["now_s"] >= 0
                else f"starting in {-snap['now_s']:.1f} s")
        console.print(
            f"  {when} · completed {snap['completed']} · rejected {snap['rejected']}"
            f" · failed {snap['failed']}", markup=False,
        )

    return show


def model_table() -> Tabular:
    """The model catalog: one row per model (sizes, KV bytes per token, sources)."""
    rows = []
    for m in models().values():
        kv = m.kv_bytes_per_token_per_layer * (m.layers - m.sliding_window_layers)
        moe = f" ({m.experts} experts, top-{m.experts_per_token})" if m.experts else ""
        rows.append((m.name, f"{m.total_params / 1e9:.2f}B / {m.active_params / 1e9:.2f}B{moe}",
                     str(m.layers), f"{m.hidden_size:,}", f"{m.q_heads}/{m.kv_heads}",
                     str(m.head_dim), f"{kv:,.0f}",
                     "-" if m.max_context_tokens is None else f"{m.max_context_tokens:,}",
                     "; ".join(m.sources.values())))
    return Tabular("models", ("name", "params (total/active)", "layers", "hidden", "q/kv heads",
                              "head dim", "KV bytes/token", "context", "source"), tuple(rows))


def hardware_table() -> Tabular:
    """The hardware catalog: one row per chip or system (peaks, power, price, sources)."""
    rows = tuple(
        (h.name, f"{h.peak_flops_bf16 / 1e12:,.0f}",
         "none" if h.peak_flops_fp8 is None else f"{h.peak_flops_fp8 / 1e12:,.0f}",
         f"{h.memory_bytes / 1e9:,.1f}",
         f"{h.memory_bandwidth_bytes_per_s / 1e12:,.2f}", f"{h.host_nic_bytes_per_s * 8 / 1e9:,.0f}",
         _fmt(h.power_w, 0), _fmt(h.price_per_hour_usd, 3),
         "\n".join(f"{k}: {v}" for k, v in h.sources.items()))
        for h in hardware().values())
    return Tabular("hardware (per chip or system)", ("name", "BF16 TFLOP/s", "FP8 TFLOP/s", "memory GB",
                   "mem BW TB/s", "host NIC Gb/s", "power W", "$/h", "sources"), rows)


def calibration_table() -> Tabular:
    """Every reference figure against the emulated value (the full report: ``disagg calibrate``)."""
    # imported here: only ``disagg catalog`` needs the reference figures (a run: ~4 ms CPU)
    from disagg.cluster.hardware.calibration import calibration_rows

    rows = []
    for row in calibration_rows():
        f = row.figure
        use = f.kind if f.comparable else f"{f.kind} (not comparable)"
        rows.append((f.key, f.configuration, f.metric, f"{f.published:,.2f}",
                     f"{row.emulated:,.2f}", f"{100 * row.error:+.1f} %", use))
    return Tabular("calibration: reference figures against the models (see disagg calibrate)",
                   ("figure", "configuration", "metric", "published", "emulated", "error", "use"),
                   tuple(rows))


def assumption_table() -> Tabular:
    """Every unpublished constant: low / default / high (in the field's unit) and the reasoning."""
    from disagg.cluster.hardware.assumptions import assumptions  # as calibration_rows above

    rows = tuple((a.hardware, a.field, f"{a.low:.4g}", f"{a.default:.4g}", f"{a.high:.4g}",
                  a.reasoning) for a in assumptions())
    return Tabular("unpublished constants (assumptions; sweep low..high)",
                   ("hardware", "constant", "low", "default", "high", "reasoning"), rows)
