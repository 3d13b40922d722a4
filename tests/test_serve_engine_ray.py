"""``disagg serve`` as the ray engine plus a gateway, on the shared Ray fixture: it honours
``[placement]`` (shared unit actors, one control actor), fails loudly (a component that raises:
/health 503, streams end with an error event, the results are written and the failure raised),
and 32 concurrent streaming clients at dilation 1 all complete (the serve crash of issue 21).
The ray engine's ``disagg run`` also ends with ``ComponentFailed`` naming the unit."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from disagg.cluster.config import load_experiment
from disagg.cluster.errors import ComponentFailed
from disagg.experiments.run import run_experiment
from disagg.experiments.serve.app import ServeSettings
from disagg.experiments.serve.protocol import Limits
from disagg.experiments.serve.server import ServeOptions, ServeRunner

pytestmark = pytest.mark.ray
QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.toml"
MODEL = "llama-3.1-70b"
RAISING = {"policies.decode_admission": {"name": "failing_policy.RaisingAdmission",
                                         "params": {"fail_at": 0}}}


@dataclass
class Streamed:
    """One streamed completion as the client saw it."""

    status: int  # the HTTP status
    tokens: int
    done: bool  # ended with [DONE]
    error: str  # the error event's message, if one came


def _stream(base: str, max_tokens: int, prompt: str = "x" * 400) -> Streamed:
    body = {"model": MODEL, "prompt": prompt, "max_tokens": max_tokens, "stream": True}
    tokens, done, error = 0, False, ""
    with httpx.stream("POST", f"{base}/v1/completions", json=body, timeout=300.0) as r:
        status = r.status_code
        if status != 200:
            return Streamed(status, 0, False, r.read().decode())
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            data = line[len("data: "):]
            if data == "[DONE]":
                done = True
                continue
            event = json.loads(data)
            if "error" in event:
                error = event["error"]["message"]
            elif event.get("choices") and event["choices"][0].get("text"):
                tokens += 1
    return Streamed(status, tokens, done, error)


@contextmanager
def served(exp: Any, out: Path) -> Iterator[tuple[ServeRunner, str, list[Any]]]:
    """A ``disagg serve`` session in a thread; yields the runner, its base URL and the list its
    result (or the error it raised) lands in once stopped."""
    runner = ServeRunner(exp, ServeOptions("127.0.0.1", 0, None,
                                           ServeSettings(Limits(MODEL, 131072, 64)), out))
    ended: list[Any] = []

    def run() -> None:
        try:
            ended.append(runner.run())
        except Exception as e:  # noqa: BLE001 - handed to the test
            ended.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert runner.ready.wait(180), "server did not start"
        yield runner, f"http://127.0.0.1:{runner.port}", ended
    finally:
        runner.stop()
        thread.join(180)
    assert ended, "the server did not stop"


def _load(**overrides: Any) -> Any:
    return load_experiment(QUICKSTART, {"experiment.engine": "ray", **overrides})


def test_serve_with_shared_unit_actors_and_one_control_actor(ray_cluster, tmp_path) -> None:
    exp = _load(**{"prefill.units": 4, "placement.units_per_actor": 2,
                   "placement.one_control_actor": True})
    with served(exp, tmp_path / "out") as (runner, base, ended):
        handles = runner.cluster.engine.handles
        units = [f"prefill-{i}" for i in range(4)] + ["decode-0"]
        assert len({handles[u] for u in units}) == 3  # prefill 0-1, prefill 2-3, decode-0
        assert len({handles[n] for n in ("collector", "router", "fabric", "gateway")}) == 1
        got = [_stream(base, 8) for _ in range(3)]
    assert [(s.status, s.done, s.error, s.tokens) for s in got] == [(200, True, "", 8)] * 3
    rows = pq.read_table(tmp_path / "out" / "requests.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["completed"] * 3


def test_serve_fails_loudly_when_a_component_raises(ray_cluster, tmp_path) -> None:
    exp = _load(**RAISING, **{"placement.failure_poll_s": 0.2})
    with served(exp, tmp_path / "out") as (_runner, base, ended):
        first = _stream(base, 16)
        health = httpx.get(f"{base}/health", timeout=30.0)
        later = httpx.post(f"{base}/v1/completions", timeout=60.0,
                           json={"model": MODEL, "prompt": "hi", "max_tokens": 4})
    # refused at once if the failure was seen before its first token, else its stream ends so
    failed = "the request failed in the cluster: emulator_component_failed"
    assert first.status == 503 or (first.done and first.error == failed)
    assert health.status_code == 503 and "component decode-0 failed" in health.text
    assert later.status_code == 503
    (error,) = ended
    assert isinstance(error, ComponentFailed) and error.name == "decode-0"
    rows = pq.read_table(tmp_path / "out" / "requests.parquet").to_pylist()
    # the later request was refused at the door (never reached the cluster): one row
    assert [(r["status"], r["reason"]) for r in rows] == [("failed", "emulator_component_failed")]


def test_32_concurrent_streams_at_dilation_1_all_complete(ray_cluster, tmp_path) -> None:
    exp = _load(**{"experiment.dilation": 1.0})
    with served(exp, tmp_path / "out") as (_runner, base, ended):
        with ThreadPoolExecutor(32) as pool:
            got = list(pool.map(lambda i: _stream(base, 32 + i), range(32)))
    assert [(s.status, s.done, s.error, s.tokens) for s in got] == [
        (200, True, "", 32 + i) for i in range(32)], ended
    rows = pq.read_table(tmp_path / "out" / "requests.parquet").to_pylist()
    assert len(rows) == 32 and {r["status"] for r in rows} == {"completed"}


def test_ray_run_ends_with_component_failed_and_writes_results(ray_cluster, tmp_path) -> None:
    exp = _load(**RAISING, **{"experiment.duration_s": 3.0})
    with pytest.raises(ComponentFailed) as info:
        run_experiment(exp, tmp_path / "out")
    assert (info.value.name, info.value.exc_type, info.value.message) == (
        "decode-0", "KeyError", "0")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    rows = pq.read_table(tmp_path / "out" / "requests.parquet").to_pylist()
    assert len(rows) == summary["submitted"] > 0
    assert {r["reason"] for r in rows if r["status"] == "failed"} >= {"emulator_component_failed"}


