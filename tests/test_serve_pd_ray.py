"""``disagg serve --per-unit`` driven by a P/D router (shared Ray fixture): a minimal two-leg
proxy written from vLLM's documented P/D protocol (the disagg proxy examples and vllm-router's
PD mode: a prefill leg with ``max_tokens`` 1 and ``kv_transfer_params.do_remote_decode``, then a
decode leg with the returned ``kv_transfer_params``) picks the units itself; every request's two
legs must run on the units it chose, and the client's TTFT spans both legs. vllm-router itself is
put in front when it is installed."""

from __future__ import annotations

import itertools
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from test_serve_engine_ray import MODEL, _load

from disagg.experiments.serve.app import ServeSettings
from disagg.experiments.serve.protocol import Limits
from disagg.experiments.serve.server import ServeOptions, ServeRunner
from disagg.experiments.serve.units import unit_caches

pytestmark = pytest.mark.ray


def _runner(exp: Any, out: Any) -> ServeRunner:
    settings = ServeSettings(Limits(MODEL, 131072, 64), units=unit_caches(exp),
                             kv_bytes_per_token=1.0)
    return ServeRunner(exp, ServeOptions("127.0.0.1", 0, None, settings, out, per_unit=True))


def two_legs(prefill: str, decode: str, body: dict[str, Any]) -> tuple[float, float, int]:
    """One request through the proxy: (prefill leg's wall s, client TTFT wall s, tokens)."""
    sent = time.time()
    first = httpx.post(f"{prefill}/v1/completions", timeout=120, json={
        **body, "max_tokens": 1, "stream": False,
        "kv_transfer_params": {"do_remote_decode": True, "do_remote_prefill": False}})
    first.raise_for_status()
    leg1_s = time.time() - sent
    params = first.json()["kv_transfer_params"]
    ttft, tokens = None, 0
    with httpx.stream("POST", f"{decode}/v1/completions", timeout=120, json={
            **body, "stream": True, "kv_transfer_params": params}) as r:
        for line in r.iter_lines():
            if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["text"]:
                ttft = ttft or time.time() - sent
                tokens += 1
    assert ttft is not None
    return leg1_s, ttft, tokens


def test_a_two_leg_pd_proxy_drives_the_units_it_chooses(ray_cluster, tmp_path) -> None:
    import threading
    exp = _load(**{"decode.units": 2})
    runner = _runner(exp, tmp_path / "out")
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        assert runner.ready.wait(180)
        url = {u: f"http://127.0.0.1:{p}" for u, p in runner.unit_ports.items()}
        assert sorted(url) == ["decode-0", "decode-1", "prefill-0", "prefill-1"]
        chosen = list(itertools.islice(zip(itertools.cycle(["prefill-1", "prefill-0"]),
                                           itertools.cycle(["decode-0", "decode-1", "decode-1"])),
                                       4))
        got = [two_legs(url[p], url[d], {"model": MODEL, "prompt": "x" * 4000,
                                         "max_tokens": 10 + i})
               for i, (p, d) in enumerate(chosen)]
        metrics = httpx.get(f"{url['decode-1']}/metrics", timeout=30).text
        health = httpx.get(f"{url['prefill-0']}/health", timeout=30).status_code
    finally:
        runner.stop()
        thread.join(180)
    rows = pq.read_table(tmp_path / "out" / "requests.parquet").to_pylist()
    assert [(r["prefill_unit"], r["decode_unit"]) for r in rows] == chosen
    assert [r["output_tokens"] for r in rows] == [10, 11, 12, 13]  # the decode legs' max_tokens
    assert {r["status"] for r in rows} == {"completed"}
    assert [g[2] for g in got] == [10, 11, 12, 13]
    for (leg1_s, ttft_s, _), row in zip(got, rows, strict=True):
        # the client's first token comes after both legs began, and never before the modeled one
        assert ttft_s >= leg1_s and ttft_s >= row["ttft_s"] * exp.experiment.dilation - 0.01
    assert 'engine="decode-1"' in metrics and 'engine="decode-0"' not in metrics
    assert "vllm:cache_config_info" in metrics and health == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _vllm_router() -> str | None:
    """vllm-router's launcher: on PATH, or beside this Python (a venv not on PATH)."""
    beside = Path(sys.executable).parent / "vllm-router"
    return shutil.which("vllm-router") or (str(beside) if beside.exists() else None)


@pytest.mark.skipif(_vllm_router() is None,
                    reason="vllm-router is not installed (pip install vllm-router)")
def test_vllm_router_in_pd_mode_in_front_of_the_units(ray_cluster, tmp_path) -> None:
    import threading
    exp = _load()
    runner = _runner(exp, tmp_path / "out")
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    proc = None
    try:
        assert runner.ready.wait(180)
        url = {u: f"http://127.0.0.1:{p}" for u, p in runner.unit_ports.items()}
        port = _free_port()
        proc = subprocess.Popen(
            [str(_vllm_router()), "--host", "127.0.0.1", "--port", str(port),
             "--vllm-pd-disaggregation", "--prefill", url["prefill-0"], "--prefill",
             url["prefill-1"], "--decode", url["decode-0"], "--policy", "round_robin"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:  # poll the router until it answers (it checks the workers first)
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "vllm-router did not start"
        replies = [httpx.post(f"http://127.0.0.1:{port}/v1/completions", timeout=120,
                              json={"model": MODEL, "prompt": "x" * 2000, "max_tokens": 6})
                   for _ in range(4)]
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        runner.stop()
        thread.join(180)
    assert [r.status_code for r in replies] == [200] * 4, [r.text for r in replies]
    rows = pq.read_table(tmp_path / "out" / "requests.parquet").to_pylist()
    assert len(rows) == 4 and {r["status"] for r in rows} == {"completed"}
    assert {r["prefill_unit"] for r in rows} <= {"prefill-0", "prefill-1"}
    assert [r["output_tokens"] for r in rows] == [6] * 4
