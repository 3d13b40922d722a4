"""``/metrics``: vLLM's Prometheus series for the emulated cluster, NIXL-style fabric transfer
series, and ``disagg:`` emulator series (docs/serve.md lists each with its source).

Labels are vLLM's: ``model_name`` and ``engine``, where the engine is the emulated unit
(``prefill-0``, ``decode-1``). A request's prefill-side figures (prompt tokens, queue, prefill
time, TTFT) go to its prefill unit; its decode-side figures (generation tokens, inter-token
latency, decode time, end-to-end latency, success) to its decode unit — or to its prefill unit
for a one-token output. All times are emu seconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from disagg.experiments.serve.lag import ITL_WINDOW, LAG_SHARE, LagMonitor
from disagg.experiments.serve.units import UnitCache
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

# Bucket edges as vLLM defines them (vllm/v1/metrics/loggers.py, PrometheusStatLogger)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
               10.0, 20.0, 40.0, 80.0)
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
                           50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
# NIXL connector (vllm/distributed/kv_transfer/kv_connector/v1/nixl_connector.py, NixlPromMetrics)
NIXL_TIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 5.0)
NIXL_BYTES_BUCKETS = tuple(float(2 ** (10 + i)) for i in range(1, 25, 2))
LABELS = ("model_name", "engine")


def one_two_five(max_value: int) -> tuple[float, ...]:
    """vLLM's ``build_1_2_5_buckets``: 1, 2, 5, 10, 20, 50, ... up to ``max_value``."""
    out: list[float] = []
    exponent = 0
    while True:
        for m in (1, 2, 5):
            if m * 10 ** exponent > max_value:
                return tuple(out)
            out.append(float(m * 10 ** exponent))
        exponent += 1


def histogram_specs(max_model_len: int) -> dict[str, tuple[str, str, tuple[float, ...]]]:
    """Key -> (vLLM series name, help text, bucket edges) of every histogram served."""
    nixl = "KV cache transfers on the emulated fabric"
    return {
        "ttft": ("vllm:time_to_first_token_seconds",
                 "Histogram of time to first token in seconds.", TTFT_BUCKETS),
        "itl": ("vllm:inter_token_latency_seconds",
                "Histogram of inter-token latency in seconds.", ITL_BUCKETS),
        "e2e": ("vllm:e2e_request_latency_seconds",
                "Histogram of e2e request latency in seconds.", REQUEST_LATENCY_BUCKETS),
        "queue": ("vllm:request_queue_time_seconds",
                  "Histogram of time spent in WAITING phase for request.",
                  REQUEST_LATENCY_BUCKETS),
        "prefill": ("vllm:request_prefill_time_seconds",
                    "Histogram of time spent in PREFILL phase for request.",
                    REQUEST_LATENCY_BUCKETS),
        "decode": ("vllm:request_decode_time_seconds",
                   "Histogram of time spent in DECODE phase for request.",
                   REQUEST_LATENCY_BUCKETS),
        "prompt_n": ("vllm:request_prompt_tokens", "Number of prefill tokens processed.",
                     one_two_five(max_model_len)),
        "gen_n": ("vllm:request_generation_tokens", "Number of generation tokens processed.",
                  one_two_five(max_model_len)),
        "xfer": ("vllm:nixl_xfer_time_seconds", f"Histogram of transfer duration for {nixl}.",
                 NIXL_TIME_BUCKETS),
        "xfer_bytes": ("vllm:nixl_bytes_transferred",
                       f"Histogram of modeled bytes per transfer for {nixl}.",
                       NIXL_BYTES_BUCKETS),
    }


class ServeMetrics:
    """The registry behind ``/metrics``, fed with finished requests and live unit states."""

    def __init__(self, model_name: str, max_model_len: int, dilation: float) -> None:
        self.model = model_name
        disable_created_metrics()  # no ``_created`` series (vLLM's /metrics has none either)
        self.registry = CollectorRegistry()
        self.cursor = 0  # finished requests folded in so far
        r, lab = self.registry, LABELS
        self.running = Gauge("vllm:num_requests_running", "Number of requests in model "
                             "execution batches.", lab, registry=r)
        self.waiting = Gauge("vllm:num_requests_waiting", "Number of requests waiting to be "
                             "processed.", lab, registry=r)
        self.kv_usage = Gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent "
                              "usage.", lab, registry=r)
        self.prompt = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", lab,
                              registry=r)
        self.generation = Counter("vllm:generation_tokens", "Number of generation tokens "
                                  "processed.", lab, registry=r)
        self.success = Counter("vllm:request_success", "Count of successfully processed "
                               "requests.", (*lab, "finished_reason"), registry=r)
        hist = histogram_specs(max_model_len)
        self.hist = {k: Histogram(n, d, lab, buckets=b, registry=r) for k, (n, d, b) in hist.items()}
        self.preemptions = Counter("vllm:num_preemptions", "Cumulative number of preemption "
                                   "from the engine.", lab, registry=r)
        self.prefix_queries = Counter("vllm:prefix_cache_queries", "Prefix cache queries, in "
                                      "terms of number of queried tokens.", lab, registry=r)
        self.prefix_hits = Counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of "
                                   "number of cached tokens.", lab, registry=r)
        self.cache_info = Gauge("vllm:cache_config_info", "Information of the LLMEngine "
                                "CacheConfig", ("model_name", "engine", "block_size",
                                                "num_gpu_blocks", "enable_prefix_caching",
                                                "cache_dtype"), registry=r)
        self.failed_xfers = Counter("vllm:nixl_num_failed_transfers", "Number of failed KV cache "
                                    "transfers.", lab, registry=r)
        self.lag_monitor = LagMonitor(dilation)
        self._disagg_series(r)
        self.dilation.set(dilation)
        self.suggested.set(dilation)

    def _disagg_series(self, r: CollectorRegistry) -> None:
        self.ended = Counter("disagg:requests_ended", "Requests by final status and reason.",
                             ("model_name", "status", "reason"), registry=r)
        self.link_util = Gauge("disagg:link_utilization", "Fabric link throughput over its "
                               "capacity (0..1), recent window.", ("link",), registry=r)
        self.link_bytes = Gauge("disagg:link_bytes_moved", "Bytes a fabric link has moved "
                                "(modeled).", ("link",), registry=r)
        self.unit_util = Gauge("disagg:unit_utilization", "Busy fraction of a unit, recent "
                               "window.", LABELS, registry=r)
        self.lag = Gauge("disagg:emulator_lag_p99_seconds", "p99 of how late components acted "
                         "against their modeled times (emu s), worst component.", registry=r)
        self.emu_now = Gauge("disagg:emu_time_seconds", "The cluster's emu time.", registry=r)
        self.dilation = Gauge("disagg:dilation", "Wall seconds per emu second.", registry=r)
        self.client_lag = Histogram("disagg:client_lag_seconds", "Wall seconds a first token "
                                    "went out late, or a write's stretch of the gap before it.",
                                    ("kind",), buckets=TTFT_BUCKETS, registry=r)
        self.lag_over = Counter("disagg:client_lag_over_share", f"First tokens (or windows of "
                                f"{ITL_WINDOW} writes) later than {LAG_SHARE:.0%} of their "
                                "modeled TTFT (inter-token gaps).",
                                ("kind",), registry=r)
        self.suggested = Gauge("disagg:suggested_dilation", "A dilation that keeps the server's "
                               "lateness within its share of the modeled times.", registry=r)

    # -- feeding -------------------------------------------------------------------------
    def set_units(self, caches: tuple[UnitCache, ...]) -> None:
        """Every unit's ``vllm:cache_config_info`` (value 1) and its counters, at zero."""
        for c in caches:
            self.cache_info.labels(self.model, c.unit, str(c.block_size), str(c.num_gpu_blocks),
                                   str(c.enable_prefix_caching), "auto").set(1)
            for counter in (self.preemptions, self.prompt, self.generation):
                counter.labels(self.model, c.unit)

    def _lag(self, due: Any) -> None:
        """The release's lateness against its modeled interval (``lag.py``)."""
        if due.modeled_s <= 0:
            return
        kind = "ttft" if due.start == 0 else "itl"
        self.client_lag.labels(kind).observe(due.late_s)
        judged = self.lag_monitor.judge(kind, due.late_s, due.modeled_s)
        if judged is not None and self.lag_monitor.over(*judged):
            self.lag_over.labels(kind).inc()
            self.lag_monitor.observe(kind, *judged)
            self.suggested.set(self.lag_monitor.suggested_dilation)

    def released(self, pacer: Any, due: Any, prompt_tokens: int, decode_leg: bool = False
                 ) -> None:
        """Tokens released to a client (per token, as vLLM's counters move per step): the
        first token's prompt (and its prefix-cache lookup) on the prefill unit, the first token
        there too, the later ones on the decode unit. A P/D decode leg's tokens all count on
        its decode unit (its prompt counted with the prefill leg)."""
        self._lag(due)
        pre = pacer.prefill_unit or pacer.decode_unit or "cluster"
        dec = pacer.decode_unit or pre
        later = due.count
        if due.start == 0 and not decode_leg:
            self.prompt.labels(self.model, pre).inc(prompt_tokens)
            self.prefix_queries.labels(self.model, pre).inc(prompt_tokens)
            self.prefix_hits.labels(self.model, pre).inc(pacer.cached_tokens)
            self.generation.labels(self.model, pre).inc()
            later -= 1
        if later:
            self.generation.labels(self.model, dec).inc(later)

    def add_outcomes(self, outcomes: list[Any]) -> None:
        """Fold finished requests (gateway ``Outcome``s) into counters and histograms."""
        for o in outcomes:
            self.cursor += 1
            self.ended.labels(self.model, o.status, o.reason).inc()
            if o.preemptions:  # paged KV: counted on the decode unit when the request ends
                self.preemptions.labels(self.model, o.decode_unit or o.prefill_unit).inc(
                    o.preemptions)
            if o.status == "completed":
                self._completed(o)
            elif o.reason == "kv_checksum" or o.reason.startswith("kv_missing"):
                self.failed_xfers.labels(self.model, o.prefill_unit or "fabric").inc()

    def _completed(self, o: Any) -> None:
        pre = (self.model, o.prefill_unit)
        dec = (self.model, o.decode_unit or o.prefill_unit)
        first = o.first_token_s if o.first_token_s is not None else o.end_s
        last = o.decode_times_s[-1] if o.decode_times_s else first
        self.success.labels(*dec, "length").inc()
        self.hist["ttft"].labels(*pre).observe(first - o.arrival_s)
        if o.prefill_start_s is not None:
            self.hist["queue"].labels(*pre).observe(o.prefill_start_s - o.arrival_s)
            self.hist["prefill"].labels(*pre).observe(first - o.prefill_start_s)
        self.hist["decode"].labels(*dec).observe(last - first)
        self.hist["e2e"].labels(*dec).observe(last - o.arrival_s)
        self.hist["prompt_n"].labels(*pre).observe(o.prompt_tokens)
        self.hist["gen_n"].labels(*dec).observe(o.output_tokens)
        itl = self.hist["itl"].labels(*dec)
        for gap in np.diff(np.asarray((first, *o.decode_times_s))):
            itl.observe(float(gap))
        if o.transfer_s is not None:
            self.hist["xfer"].labels(*dec).observe(o.transfer_s[1] - o.transfer_s[0])
            self.hist["xfer_bytes"].labels(*dec).observe(o.kv_bytes)

    def set_live(self, status: dict[str, Any]) -> None:
        """Gauges from the collector's live snapshot (``status()`` of the served cluster)."""
        live = status.get("snapshot", {}).get("live", {})
        units = live.get("units", {})
        for u in units.get("prefill", []):
            labels = (self.model, u["name"])
            self.running.labels(*labels).set(u.get("running", 0))
            self.waiting.labels(*labels).set(u.get("queue", 0))
            self.unit_util.labels(*labels).set(u.get("utilization", 0.0))
        for u in units.get("decode", []):
            labels = (self.model, u["name"])
            self.running.labels(*labels).set(u.get("running", 0))
            self.waiting.labels(*labels).set(u.get("pending", 0))
            cap = u.get("kv_capacity_bytes") or 0.0
            self.kv_usage.labels(*labels).set(u.get("kv_used_bytes", 0.0) / cap if cap else 0.0)
            self.unit_util.labels(*labels).set(u.get("utilization", 0.0))
        for link in live.get("fabric", {}).get("links", []):
            cap = link.get("capacity_bytes_per_s") or 0.0
            self.link_util.labels(link["name"]).set(link["bytes_per_s"] / cap if cap else 0.0)
            self.link_bytes.labels(link["name"]).set(link.get("bytes_moved", 0.0))
        self.lag.set(live.get("lag_p99_s", 0.0))
        self.emu_now.set(status.get("now_s", 0.0))

    def exposition(self) -> bytes:
        """The Prometheus text format."""
        return generate_latest(self.registry)
