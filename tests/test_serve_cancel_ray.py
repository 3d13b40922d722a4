"""A client that goes away mid-stream has its request aborted in the emulated cluster, as vLLM
aborts it: the row is ``cancelled`` with reason ``client_disconnected`` (not ``completed``), the
decode unit stops generating it at its next iteration boundary and frees its KV. Also the
sampling checks and ``n`` through the real cluster (shared Ray fixture)."""

from __future__ import annotations

import time

import httpx
import pyarrow.parquet as pq
import pytest
import ray
from test_serve_engine_ray import MODEL, _load, _stream, served

pytestmark = pytest.mark.ray
LONG = 100_000  # output tokens: ~50 emu s of decode on one CS-3 at >= 0.48 ms per token
CS3_MIN_TPOT_S = 0.00048  # docs/serve.md: the quickstart CS-3's step time at batch 1


def test_disconnect_mid_stream_cancels_the_request_in_the_cluster(ray_cluster, tmp_path) -> None:
    exp = _load()
    with served(exp, tmp_path / "out") as (_runner, base, ended):
        body = {"model": MODEL, "prompt": "x" * 400, "max_tokens": LONG, "stream": True}
        with httpx.stream("POST", f"{base}/v1/completions", json=body, timeout=120) as r:
            lines = r.iter_lines()
            got: list[str] = []
            for line in lines:  # read until some tokens are out, then hang up
                if line.startswith("data: {"):
                    got.append(line)
                if len(got) >= 5:
                    break
        after = _stream(base, 8)  # the KV was freed: the next request is served as usual
        bad = httpx.post(f"{base}/v1/completions", timeout=30,
                         json={"model": MODEL, "prompt": "x", "temperature": -1})
        two = httpx.post(f"{base}/v1/completions", timeout=60,
                         json={"model": MODEL, "prompt": "x", "max_tokens": 4, "n": 2})
    assert len(got) == 5 and (after.status, after.done, after.tokens) == (200, True, 8)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "temperature"
    assert [c["index"] for c in two.json()["choices"]] == [0, 1]
    rows = pq.read_table(tmp_path / "out" / "requests.parquet").to_pylist()
    first = rows[0]
    assert (first["status"], first["reason"]) == ("cancelled", "client_disconnected")
    # it left the decode batch long before its last token would have been due
    assert first["last_token_s"] - first["first_token_s"] < 0.5 * LONG * CS3_MIN_TPOT_S
    assert [r["status"] for r in rows[1:]] == ["completed"] * 3  # the 8-token one and n=2


def test_health_is_503_once_a_unit_is_lost(ray_cluster, tmp_path) -> None:
    exp = _load(**{"prefill.units": 2, "placement.failure_poll_s": 0.2})
    with served(exp, tmp_path / "out") as (runner, base, _ended):
        assert httpx.get(f"{base}/health", timeout=30).status_code == 200
        ray.kill(runner.cluster.engine.handles["prefill-1"], no_restart=True)
        deadline = time.monotonic() + 120  # the watcher pings every 0.2 wall s
        while True:  # poll what the test asserts on until the watcher has seen the loss
            health = httpx.get(f"{base}/health", timeout=30)
            if health.status_code == 503 or time.monotonic() > deadline:
                break
        served_after = _stream(base, 4)  # the other prefill unit still serves
    assert health.status_code == 503 and "unit prefill-1 was lost" in health.text
    assert (served_after.status, served_after.tokens) == (200, 4)
