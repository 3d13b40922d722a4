"""summary.json's prefix-caching figures (only for runs with ``[prefix_cache]`` switched on).

Hit rate is counted in 512-token blocks: leading prompt blocks found in a unit's cache over the
blocks looked up (the measure the Mooncake trace README uses for reuse). ``cached_token_share`` is
the prompt tokens served from prefill caches over the prompt tokens of every prefill run.
"""

from __future__ import annotations

from typing import Any

from disagg.experiments.results.aggregate import RequestAggregates
from disagg.experiments.results.columns import by_name


def _rate(hit: float, looked: float) -> float | None:
    return hit / looked if looked else None


def _pool(comps: dict[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Per unit of a pool: its cache counters plus its hit rate."""
    out = {}
    for name, comp in comps.items():
        stats = comp.get("prefix_cache")
        if name.startswith(kind + "-") and stats is not None:
            out[name] = {**stats, "hit_rate": _rate(stats["hit_blocks"], stats["lookup_blocks"])}
    return out


def prefix_summary(raw: dict[str, Any], agg: RequestAggregates) -> dict[str, Any]:
    """The prefix-cache keys of summary.json; empty when no unit had a cache."""
    comps = by_name(raw)
    prefill, decode = _pool(comps, "prefill"), _pool(comps, "decode")
    out: dict[str, Any] = {}
    if prefill:
        out["prefix_hit_rate"] = _rate(sum(u["hit_blocks"] for u in prefill.values()),
                                       sum(u["lookup_blocks"] for u in prefill.values()))
        out["cached_token_share"] = _rate(agg.cached_tokens, agg.cached_prompt_tokens)
        out["prefix_cache_by_unit"] = prefill
    if decode:
        out["decode_kv_hit_rate"] = _rate(sum(u["hit_blocks"] for u in decode.values()),
                                          sum(u["lookup_blocks"] for u in decode.values()))
        out["decode_kv_reused_bytes"] = float(comps.get("router", {}).get("kv_reused_bytes", 0.0))
        out["decode_kv_by_unit"] = decode
    return out
