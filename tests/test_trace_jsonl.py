"""The one-call JSONL reader (cluster/workload/trace_jsonl.py) against the line-by-line reader:
the same rows and hash ids where it reads a file, None (read line by line) wherever the two could
differ, so a bad line is still named by the line-by-line reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from disagg.cluster.errors import ConfigError
from disagg.cluster.workload import traces
from disagg.cluster.workload.trace_jsonl import plain_jsonl

MOONCAKE = traces.FORMATS["mooncake"]
REPO = Path(__file__).resolve().parents[1]
ROW = '{{"timestamp": {t}, "input_length": {p}, "output_length": {o}, "hash_ids": {h}}}'


def _line_by_line(path: Path) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    rows, hashes = traces._read_jsonl_lines(str(path), MOONCAKE)
    return np.array(rows, dtype=np.int64).reshape(-1, 3), hashes


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "t.jsonl"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["mooncake_conversation_trace.jsonl",
                                  "mooncake_synthetic_trace.jsonl"])
def test_the_shipped_traces_read_the_same_in_one_call(name: str) -> None:
    path = REPO / "experiments" / "traces" / name
    fast = plain_jsonl(str(path), MOONCAKE)
    assert fast is not None
    rows, hashes = _line_by_line(path)
    assert fast[0].dtype == np.int64 and np.array_equal(fast[0], rows)
    assert fast[1] == hashes


def test_plain_rows_by_hand(tmp_path: Path) -> None:
    """ms to ns by hand: 1.5e3 ms -> 1.5e9 ns; a BOM, trailing empty lines and keys in any order
    or extra keys are a plain file."""
    text = ("\ufeff" + ROW.format(t=0, p=10, o=2, h="[0, 1]") + "\n"
            + '{"hash_ids": [], "output_length": 0, "x": [1.5, null], "input_length": 7, '
              '"timestamp": 1500}\n\n')
    fast = plain_jsonl(str(_write(tmp_path, text)), MOONCAKE)
    assert fast is not None
    assert fast[0].tolist() == [[0, 10, 2], [1_500_000_000, 7, 0]]
    assert fast[1] == [(0, 1), ()]


@pytest.mark.parametrize("text", [
    ROW.format(t=1, p=2, o=3, h="[1]") + " " + ROW.format(t=1, p=2, o=3, h="[1]"),  # two a line
    ROW.format(t=1.0, p=2, o=3, h="[1]"),  # a float timestamp (1.0: the line reader takes it)
    ROW.format(t=1, p=2, o=3, h="[1, true]"),
    ROW.format(t=1, p=2, o=3, h="[1, null]"),
    ROW.format(t=1, p=2, o=3, h="[-1]"),
    ROW.format(t=1, p=-2, o=3, h="[1]"),
    ROW.format(t=2**63, p=2, o=3, h="[1]"),
    ROW.format(t=2**62, p=2, o=3, h="[1]"),  # beyond 64 bits once in ns
    '{"timestamp": 1, "input_length": 2, "output_length": 3}',  # no hash ids: () line by line
    '{"timestamp": 1, "timestamp": 2, "input_length": 2, "output_length": 3, "hash_ids": []}',
    ROW.format(t=5, p=2, o=3, h="[1]") + "\n" + ROW.format(t=4, p=2, o=3, h="[1]"),  # order
    ROW.format(t=1, p=2, o=3, h="[1]") + "\n\n" + ROW.format(t=2, p=2, o=3, h="[1]"),  # blank
    " " + ROW.format(t=1, p=2, o=3, h="[1]"),
    ROW.format(t=1, p=2, o=3, h="[1]") + "\r\n" + ROW.format(t=2, p=2, o=3, h="[1]"),
    '{"timestamp": 1, "input_length": 2,\n "output_length": 3, "hash_ids": [1]}',  # two lines
    '{"s": "a\tb", "timestamp": 1, "input_length": 2, "output_length": 3, "hash_ids": [1]}',
    "[1, 2]",
    "",
])
def test_anything_else_is_read_line_by_line(tmp_path: Path, text: str) -> None:
    assert plain_jsonl(str(_write(tmp_path, text + "\n")), MOONCAKE) is None


def test_invalid_utf8_is_read_line_by_line(tmp_path: Path) -> None:
    line = ROW.format(t=1, p=2, o=3, h="[1]").encode()
    path = _write(tmp_path, line[:-1] + b', "s": "\xff"}\n')
    assert plain_jsonl(str(path), MOONCAKE) is None
    with pytest.raises(ConfigError, match="not UTF-8"):
        traces.read_trace(path, MOONCAKE, jsonl=True)


def test_a_bad_line_is_still_named(tmp_path: Path) -> None:
    text = "\n".join([ROW.format(t=1, p=2, o=3, h="[1]"), ROW.format(t=2, p=2, o=3, h="[1]"),
                      ROW.format(t=3, p=2, o=3, h='["x"]')]) + "\n"
    with pytest.raises(ConfigError, match="line 3: key 'hash_ids'"):
        traces.read_trace(_write(tmp_path, text), MOONCAKE, jsonl=True)
