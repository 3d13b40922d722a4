"""A JSON-lines trace whose every line is a plain row, parsed in one call by Arrow's JSON reader.

:func:`plain_jsonl` gives exactly the arrays and hash ids that ``traces._read_jsonl`` gives a
file of plain rows (one JSON object per line; timestamp, prompt and output tokens integers in
range and in time order; hash ids lists of non-negative integers), or None for any other file,
which ``traces.py`` then reads line by line (and names the first bad line). On the Mooncake
conversation trace (12,031 lines, 3 MB): ~70 -> ~57 ms CPU, first read in a process.

Why the two readers agree on a file this one accepts: it refuses (None) anything outside UTF-8,
any carriage return (Python's universal newlines would turn it into a line break), any line but
trailing empty ones that is not ``{`` ... ``}`` (no blank line, no space around), and a row
count other than the number of lines. Arrow refuses a raw newline inside a string, and after a
``}`` JSON allows no ``{``, so no object spans two such lines; with as many rows as lines, each
line is one object.
The columns read are typed int64 (Arrow refuses ``1.0``, ``1e3``, ``true``, a duplicated key or
a value beyond 64 bits rather than converting it) and must have no null (a missing key or a
``null``); what the line-by-line reader would check next is checked on the arrays.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import pyarrow as pa

    from disagg.cluster.workload.traces import TraceColumns

INT64_MAX = 2**63 - 1
_BOM = b"\xef\xbb\xbf"  # what the line-by-line reader's utf-8-sig drops at the file's start
_BLOCK_MAX = 1 << 30  # Arrow's block size is an int32


def plain_jsonl(path: str, cols: TraceColumns
                ) -> tuple[NDArray[np.int64], list[tuple[int, ...]]] | None:
    """(rows of arrival ns, prompt and output tokens; hash ids per row) of a JSONL trace of plain
    rows with hash ids (``cols.hashes``), as the line-by-line reader gives them; None for any
    other file (read it line by line)."""
    if cols.hashes is None or cols.unit == "datetime":
        return None
    keys = (cols.timestamp, cols.prompt_tokens, cols.output_tokens, cols.hashes)
    if len(set(keys)) < 4:
        return None
    data = Path(path).read_bytes().removeprefix(_BOM).rstrip(b"\n")
    raw = np.frombuffer(data, dtype=np.uint8)
    breaks = np.flatnonzero(raw == ord("\n"))  # one numpy pass: ~1.6 ms (bytes.count scans: ~8)
    # every line "{...}": starts and ends so, and each line break is between a "}" and a "{"
    # (blank lines or spaces around a line: read line by line)
    if not (data.startswith(b"{") and data.endswith(b"}") and b"\r" not in data
            and (raw[breaks - 1] == ord("}")).all() and (raw[breaks + 1] == ord("{")).all()):
        return None
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    table = _arrow_rows(data, keys)
    if table is None or table.num_rows != len(breaks) + 1:
        return None
    return _checked(table, keys, 1e9 if cols.unit == "s" else 1e6)


def _arrow_rows(data: bytes, keys: tuple[str, ...]) -> pa.Table | None:
    """The file's rows as an Arrow table of the four columns, or None if Arrow refuses it."""
    # imported here: only a JSONL trace needs Arrow's JSON reader (disagg validate of a CSV
    # trace does not import pyarrow)
    import pyarrow as pa
    import pyarrow.json as pj

    int64 = pa.int64()
    schema = pa.schema([(keys[0], int64), (keys[1], int64), (keys[2], int64),
                        (keys[3], pa.list_(int64))])
    try:  # in two blocks or more, parsed on Arrow's threads: ~40 % less wall on 2 cores
        return pj.read_json(
            io.BytesIO(data),
            read_options=pj.ReadOptions(use_threads=True, block_size=_block_size(len(data))),
            parse_options=pj.ParseOptions(explicit_schema=schema,
                                          unexpected_field_behavior="ignore"))
    except pa.ArrowException:
        return None


def _block_size(size: int) -> int:
    """Arrow's JSON block size for ``size`` bytes of lines: half of them (two blocks for Arrow's
    threads; a block ends at a line break), at least 1 MiB, at most what an int32 holds."""
    return min(_BLOCK_MAX, max(1 << 20, size // 2 + 1))


def _checked(table: pa.Table, keys: tuple[str, ...], per_unit_ns: float
             ) -> tuple[NDArray[np.int64], list[tuple[int, ...]]] | None:
    """The rows and hash ids of ``table`` if every row passes the line-by-line reader's checks
    of a plain row (``traces._plain_row``, ``traces._hash_ids``); else None."""
    columns = [table.column(k).combine_chunks() for k in keys]
    ids = columns[3]
    if any(c.null_count for c in columns) or ids.values.null_count:
        return None
    ts, prompt, output = (c.to_numpy() for c in columns[:3])
    starts = ids.offsets.to_numpy()
    values = ids.values.to_numpy()[starts[0]:starts[-1]]
    starts = starts - starts[0]
    if not ((prompt >= 0).all() and (output >= 0).all() and (values >= 0).all()
            and (ts >= -INT64_MAX).all()):
        return None
    # round(float(ts) * unit) as the line-by-line reader: the same double product, rounded half
    # to even (np.rint as round()); in range of int64 and in time order, else None
    ns_f = np.rint(ts.astype(np.float64) * per_unit_ns)
    if not ((ns_f < 2.0**63).all() and (ns_f >= -(2.0**63)).all()):
        return None
    ns = ns_f.astype(np.int64)
    if ns[0] < -INT64_MAX or (ns[1:] < ns[:-1]).any():
        return None
    flat, bounds = values.tolist(), starts.tolist()
    hashes = [tuple(flat[a:b]) for a, b in zip(bounds, bounds[1:])]
    return np.stack([ns, prompt.astype(np.int64), output.astype(np.int64)], axis=1), hashes
