"""The virtual engine's ``requests.parquet`` stays identical for the same seed.

The digests in ``tests/golden/virtual_requests.json`` were computed with the engine of commit
e541855, before the speed work of issue 14 (own event loop, pooled KV payload bytes), using the
same digest function on that older engine's output. Regenerate them only for a change meant to alter results:
``python -m disagg.experiments.results.digest --update tests/golden/virtual_requests.json``.

Issue 22 (paged KV, now the default) regenerated them only to add the new ``preemptions``
column (0 in every golden run: none of them fills its decode units' KV); every other column's
digest is unchanged.

Issue 23 (comparable figures only) regenerated them because the models changed: the CS-3 decode
model is now fitted to Cerebras' two plain launch figures (8B 1,800, 70B 450 tok/s) instead of
speculative and method-unknown ones, with each layer's FLOPs over its share of the wafer
(234 us per token + layers at 1.1 % of peak: a 70B on 4 wafers ~2.2 ms a token, was ~0.46 ms),
so every run with CS-3 decode units moves.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pytest

from disagg.experiments.results.digest import GOLDEN_RUNS, column_digests, virtual_run_digest

REPO = Path(__file__).resolve().parents[1]
GOLDEN = json.loads((REPO / "tests" / "golden" / "virtual_requests.json").read_text())


def test_golden_file_covers_the_golden_runs() -> None:
    assert set(GOLDEN) == set(GOLDEN_RUNS)
    assert all(GOLDEN[name]["duration_s"] == GOLDEN_RUNS[name] for name in GOLDEN)


def test_column_digest_is_sha256_of_name_and_values() -> None:
    table = pa.table({"a": [1.5, None], "b": ["x", "y"]})
    want_a = hashlib.sha256(b"a" + b"[1.5, None]").hexdigest()[:16]
    want_b = hashlib.sha256(b"b" + b"['x', 'y']").hexdigest()[:16]
    assert column_digests(table) == {"a": want_a, "b": want_b}
    swapped = pa.table({"a": [None, 1.5], "b": ["x", "y"]})
    assert column_digests(swapped)["a"] != want_a


@pytest.mark.parametrize("experiment", sorted(GOLDEN_RUNS))
def test_virtual_requests_match_golden_digests(experiment: str) -> None:
    want = GOLDEN[experiment]
    got = virtual_run_digest(REPO / experiment, want["duration_s"])
    assert got["rows"] == want["rows"]
    changed = sorted(c for c in want["columns"] if got["columns"].get(c) != want["columns"][c])
    assert changed == [], f"{experiment}: columns differ from the golden run: {changed}"
    assert set(got["columns"]) == set(want["columns"])
