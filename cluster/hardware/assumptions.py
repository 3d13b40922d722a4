"""Every constant nobody publishes, as a typed table: low / default / high with the reasoning.

The default is the catalog's value (tests/test_assumptions.py checks they agree); low and high
bound what a sweep should cover. ``disagg catalog --assumptions`` prints the table; other
commands read :func:`assumptions` (a sweep over a constant takes its range from here).
Units are in each field's name (seconds, watts, US dollars per hour, fractions).
"""

from __future__ import annotations

from dataclasses import dataclass

from disagg.cluster.hardware.reference import ASSUMED_ALPHA


@dataclass(frozen=True)
class Assumption:
    """One unpublished constant of a catalog entry: its range and why."""

    hardware: str
    field: str
    low: float
    default: float
    high: float
    reasoning: str


def _a(hw: str, field: str, low: float, default: float, high: float, why: str) -> Assumption:
    return Assumption(hw, field, low, default, high, why)


def assumptions() -> list[Assumption]:
    """The table, CS-3 first, then Trainium, then GPUs without a fit, then speculation."""
    return [
        _a("cs3", "price_per_hour_usd", 60.0, 114.0, 230.0, "no list price; ~$3M per system "
           "(press estimates, $1.5-6M) over 3 years of continuous use"),
        _a("cs3", "power_w", 15_000.0, 23_000.0, 30_000.0, "third-party summaries ~23 kW; the "
           "range covers idle-to-peak and cooling overhead being in or out"),
        _a("cs3", "hop_latency_s", 1e-6, 5e-6, 50e-6, "no wafer-to-wafer figure; 1 us is a "
           "direct link, 50 us an Ethernet round trip through a switch"),
        _a("cs3", "concurrency_exponent", 0.0, 0.5, 1.0, "no multi-user curve published: 0 = "
           "per-user speed flat in streams, 1 = streams share one pipeline"),
        _a("cs3", "layer_latency_s", 0.0, 0.0, 10e-6, "two plain figures cannot separate a "
           "size-independent per-layer latency from the fitted per-Gparam term"),
        _a("cs3", "compute_efficiency", 0.1, 0.25, 0.5, "dense peak unpublished: half the sparse "
           "125 PFLOP/s at 50 % utilisation; sets prefill and large-batch decode"),
        _a("trainium2", "power_w", 350.0, 500.0, 700.0, "not published; Trainium3 is ~1 kW "
           "(press), H100 700 W at similar silicon"),
        _a("trainium2", "memory_efficiency", 0.5, 0.67, 0.9, "no batched-decode curve published: "
           "the GPU figure; batched decode on Trainium is unmeasured"),
        _a("trainium3", "power_w", 800.0, 1_000.0, 1_200.0, "press ~1 kW"),
        _a("trainium3", "compute_efficiency", 0.15, 0.277, 0.4, "no Trainium3 figure: "
           "Trainium2's fitted value"),
        _a("h200", "compute_efficiency", 0.35, 0.485, 0.6, "no H200 figure fitted: H100's "
           "fitted value (same serving stack)"),
        _a("b200", "compute_efficiency", 0.3, 0.485, 0.6, "no B200 figure fitted: H100's "
           "fitted value; a new architecture may reach less at first"),
        _a("any", "speculative_alpha", 0.6, ASSUMED_ALPHA, 0.8, "acceptance per proposed token "
           "where a source publishes none (Leviathan et al. 2023; EAGLE papers)"),
    ]
