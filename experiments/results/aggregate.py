"""Running aggregates of the written tables, fed one record batch at a time, so the summary of a
run of any length reads its columns back in bounded memory.

Counts and sums are exact; distributions go into :class:`~disagg.cluster.sketch.QuantileSketch`
(exact up to 65,536 values, so every shipped experiment's percentiles are exact; within 0.5 %
beyond).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from disagg.cluster.hardware.prefill import prefill_flops
from disagg.cluster.hardware.specs import ModelSpec
from disagg.cluster.sketch import QuantileSketch
from disagg.cluster.slo import SloConfig
from disagg.experiments.results.columns import Columns
from disagg.experiments.results.slo_eval import SloTally

REQUEST_COLUMNS_READ = ["status", "slo_class", "reason", "arrival_s", "last_token_s",
                        "first_token_s", "prompt_tokens", "output_tokens", "ttft_s", "tpot_s",
                        "e2e_s", "slo_met", "prefill_view_age_s", "decode_view_age_s",
                        "cached_tokens", "redone_from", "preemptions"]
"""The requests.parquet columns the summary reads back (those the table has: the last two only
with prefix caching on, or unit losses in the fault schedule)."""
BATCH_ROWS = 65_536


@dataclass
class Tally:
    """Counts and latency distributions of a group of requests (all, or one SLO class)."""

    submitted: int = 0
    completed: int = 0
    good: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    ttft: QuantileSketch = field(default_factory=QuantileSketch)
    tpot: QuantileSketch = field(default_factory=QuantileSketch)
    e2e: QuantileSketch = field(default_factory=QuantileSketch)

    def add(self, cols: Columns, mine: np.ndarray) -> None:
        """Fold the rows of ``cols`` selected by ``mine``."""
        done = mine & cols.mask("status", "completed")
        outputs = cols.num("output_tokens")
        self.submitted += int(mine.sum())
        self.completed += int(done.sum())
        self.good += int((mine & (cols.num("slo_met") == 1)).sum())
        self.input_tokens += int(cols.num("prompt_tokens")[done].sum())
        self.output_tokens += int(outputs[done].sum())
        self.ttft.add_many(cols.num("ttft_s")[done])
        self.tpot.add_many(cols.num("tpot_s")[done & (outputs > 1)])
        self.e2e.add_many(cols.num("e2e_s")[done])


@dataclass
class RequestAggregates:
    """Everything the summary needs of requests.parquet."""

    model: ModelSpec
    all: Tally = field(default_factory=Tally)
    classes: dict[str, Tally] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    view_ages: QuantileSketch = field(default_factory=QuantileSketch)
    makespan_s: float = 0.0
    prefill_flops: float = 0.0
    redone: int = 0  # requests redone from prefill after a lost unit
    preemptions: int = 0  # times decode / colocated units preempted a request (paged KV)
    cached_tokens: int = 0  # prompt tokens served from prefill caches
    cached_prompt_tokens: int = 0  # prompt tokens of the prefills that looked their cache up
    slo: SloTally | None = None  # percentile / slowdown targets, when [slo] sets any

    def add(self, table: pa.Table | pa.RecordBatch) -> None:
        """Fold one batch of rows."""
        cols = Columns(pa.Table.from_batches([table]) if isinstance(table, pa.RecordBatch)
                       else table)
        if cols.rows == 0:
            return
        everyone = np.ones(cols.rows, dtype=bool)
        self.all.add(cols, everyone)
        codes, names = cols.codes("slo_class")
        for k, name in enumerate(names):
            self.classes.setdefault(name, Tally()).add(cols, codes == k)
        done = cols.mask("status", "completed")
        for status in ("completed", "rejected", "failed", "cancelled"):
            self.statuses[status] += int(cols.mask("status", status).sum())
        codes, names = cols.codes("reason")
        for k, c in enumerate(np.bincount(codes[~done & (codes >= 0)], minlength=len(names))):
            self.reasons[names[k]] += int(c)
        for name in ("prefill_view_age_s", "decode_view_age_s"):
            ages = cols.num(name)
            self.view_ages.add_many(ages[~np.isnan(ages)])
        ends = np.concatenate((cols.num("last_token_s")[done], cols.num("arrival_s")))
        self.makespan_s = max(self.makespan_s, float(np.nanmax(ends)))
        self._prefills(cols)
        if self.slo is not None:
            codes, names = cols.codes("slo_class")
            lat = {m: cols.num(f"{m}_s") for m in ("ttft", "tpot", "e2e")}
            self.slo.add(list(names), codes, done, cols.num("prompt_tokens"),
                         cols.num("output_tokens"), lat)
        if "redone_from" in cols.table.column_names:
            self.redone += cols.rows - cols.table.column("redone_from").null_count
        self.preemptions += int(np.nansum(cols.num("preemptions")))

    def _prefills(self, cols: Columns) -> None:
        """Model FLOPs of the prefills run (less their cached tokens) and the cached share."""
        ran = ~np.isnan(cols.num("first_token_s"))
        prompts = cols.num("prompt_tokens")[ran]
        cached = cols.num("cached_tokens")[ran]
        looked = ~np.isnan(cached)
        self.cached_tokens += int(cached[looked].sum())
        self.cached_prompt_tokens += int(prompts[looked].sum())
        self.prefill_flops += prefill_flops(prompts.astype(np.int64), self.model,
                                            np.nan_to_num(cached).astype(np.int64))


def batches(table_or_path: pa.Table | Path, columns: list[str],
            dictionary: tuple[str, ...] = ()) -> Iterable[pa.RecordBatch]:
    """A table's (or a Parquet file's) ``columns`` in record batches of bounded size; a file's
    string columns named in ``dictionary`` come as Arrow dictionaries (codes, no string per
    row), in batches that end at the file's row groups (only for what adds up alike in any
    batches, such as a maximum)."""
    if isinstance(table_or_path, pa.Table):
        have = [c for c in columns if c in table_or_path.column_names]
        return table_or_path.select(have).to_batches(max_chunksize=BATCH_ROWS)
    source = pq.ParquetFile(table_or_path, read_dictionary=list(dictionary) or None)
    have = [c for c in columns if c in source.schema_arrow.names]
    return source.iter_batches(batch_size=BATCH_ROWS, columns=have)


def request_aggregates(source: pa.Table | Path, model: ModelSpec,
                       slo: SloConfig | None = None) -> RequestAggregates:
    """Aggregates of requests.parquet (a table in memory or the written file); with an ``slo``
    that sets percentile or slowdown targets, their counts too."""
    tally = SloTally(slo, model) if slo is not None and slo.percentile_form else None
    agg = RequestAggregates(model, slo=tally)
    for batch in batches(source, REQUEST_COLUMNS_READ):
        agg.add(batch)
    return agg


@dataclass
class TransferAggregates:
    """Modeled bytes and transfer durations of transfers.parquet, and the peak link
    utilization of timeseries.parquet."""

    bytes: float = 0.0
    durations: QuantileSketch = field(default_factory=QuantileSketch)
    peak_link_utilization: float = 0.0


def transfer_aggregates(transfers: pa.Table | Path,
                        timeseries: pa.Table | Path) -> TransferAggregates:
    """Aggregates of the transfers and of the link rows of the timeseries."""
    out = TransferAggregates()
    for batch in batches(transfers, ["start_s", "modeled_end_s", "modeled_bytes"]):
        cols = Columns(pa.Table.from_batches([batch]))
        out.bytes += float(cols.num("modeled_bytes").sum())
        out.durations.add_many(cols.num("modeled_end_s") - cols.num("start_s"))
    for batch in batches(timeseries, ["kind", "utilization"], dictionary=("kind",)):
        cols = Columns(pa.Table.from_batches([batch]))
        use = cols.num("utilization")[cols.mask("kind", "link")]
        use = use[~np.isnan(use)]
        if len(use):
            out.peak_link_utilization = max(out.peak_link_utilization, float(use.max()))
    return out
