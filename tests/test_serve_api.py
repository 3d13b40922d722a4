"""The ``disagg serve`` HTTP app against a stand-in cluster (no Ray): the OpenAI/vLLM request
and response shapes, SSE framing, errors and their HTTP codes, the API key, the body cap,
and /metrics in vLLM's names."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from disagg.actors.components.gateway import Outcome, PlanUpdate
from disagg.experiments.cli.main import main
from disagg.experiments.serve.app import ServeSettings, create_app
from disagg.experiments.serve.metrics import ITL_BUCKETS, TTFT_BUCKETS, one_two_five
from disagg.experiments.serve.protocol import Limits, count_text_tokens
from serving import serving

MODEL = "m-1"
REJECT_PROMPT = 77  # prompt_token_ids of this length are rejected by admission control
DOWN_PROMPT = 78  # ... and of this one find no unit up


class StandIn:
    """A cluster that answers every request with a fixed plan: first token 10 ms after arrival,
    then one token every 2 ms (emu s), on the wall clock at dilation 1."""

    def __init__(self) -> None:
        self.t0 = time.time()
        self.dilation = 1.0
        self.submitted: list[tuple[int, int, float]] = []
        self.cancelled: dict[int, str] = {}
        self.pins: list[Any] = []
        self.legs: list[tuple[int, str, int]] = []
        self.cancel_seen = threading.Event()

    def emu_now(self) -> float:
        return (time.time() - self.t0) / self.dilation

    async def submit(self, prompt_tokens: int, output_tokens: int, arrival_s: float,
                     pin: Any = None) -> int:
        self.submitted.append((prompt_tokens, output_tokens, arrival_s))
        self.pins.append(pin)
        return len(self.submitted) - 1

    async def decode_leg(self, rid: int, decode_unit: str, output_tokens: int) -> bool:
        if rid >= len(self.submitted):
            return False
        self.legs.append((rid, decode_unit, output_tokens))
        prompt, _, arrival = self.submitted[rid]
        self.submitted[rid] = (prompt, output_tokens, arrival)
        return True

    async def wait(self, rid: int, version: int, from_index: int, timeout_s: float) -> PlanUpdate:
        prompt, output, arrival = self.submitted[rid]
        if prompt in (REJECT_PROMPT, DOWN_PROMPT):
            reason = "slo_unattainable" if prompt == REJECT_PROMPT else "no_prefill_unit_up"
            return PlanUpdate(rid, 1, None, (), from_index, "rejected", reason, arrival)
        first = arrival + 0.01
        times = tuple(first + 0.002 * (k + 1) for k in range(output - 1))
        return PlanUpdate(rid, 1, first, times[from_index:], from_index, "", "", None,
                          "prefill-0", "decode-0")

    async def cancel(self, rid: int, reason: str) -> None:
        self.cancelled[rid] = reason
        self.cancel_seen.set()

    async def outcomes(self, cursor: int) -> list[Outcome]:
        done = [Outcome(0, "completed", "", 100, 3, 0.0, "prefill-0", 0.05, 0.3, "decode-0",
                        2e6, (0.3, 0.31), (0.32, 0.36), 0.36),
                Outcome(1, "rejected", "slo_unattainable", 50, 3, 0.1, "", None, None, "", 0.0,
                        None, (), 0.1)]
        return done[cursor:]

    async def status(self) -> dict[str, Any]:
        units = {"prefill": [{"name": "prefill-0", "queue": 2, "running": 1}],
                 "decode": [{"name": "decode-0", "running": 3, "pending": 1,
                             "kv_used_bytes": 25.0, "kv_capacity_bytes": 100.0}]}
        links = [{"name": "p0>d0", "bytes_per_s": 5.0, "capacity_bytes_per_s": 10.0,
                  "bytes_moved": 1e6}]
        return {"errors": [], "now_s": self.emu_now(), "snapshot": {"live": {
            "units": units, "fabric": {"links": links}, "lag_p99_s": 0.002}}}


def _client(api_key: str | None = None, max_body_bytes: int = 1 << 20) -> TestClient:
    settings = ServeSettings(Limits(MODEL, 4096, 32), api_key, max_body_bytes)
    return TestClient(create_app(StandIn(), settings))


def _events(text: str) -> list[str]:
    assert text.endswith("\n\n")
    events = text.split("\n\n")[:-1]
    assert all(e.startswith("data: ") for e in events)
    return [e[len("data: "):] for e in events]


def test_chat_stream_is_vllm_shaped_sse_with_usage() -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello there"}],
            "max_tokens": 4, "stream": True, "stream_options": {"include_usage": True}}
    with _client() as client:
        r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-disagg-dilation"] == "1"
    events = _events(r.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    tokens = chunks[1:-1]
    assert len(tokens) == 4
    assert [c["choices"][0]["finish_reason"] for c in tokens] == [None, None, None, "length"]
    # "user: hello there\n" is 18 UTF-8 bytes: ceil(18 / 4) = 5 prompt tokens
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}


def test_dilation_header_and_token_release_no_earlier_than_scaled_times() -> None:
    backend = StandIn()
    backend.dilation = 2.0  # first token 10 emu ms after arrival: 20 wall ms
    with TestClient(create_app(backend, ServeSettings(Limits(MODEL, 4096, 32)))) as client:
        sent = time.time()
        r = client.post("/v1/completions", json={"model": MODEL, "prompt": "x", "max_tokens": 3})
        took_s = time.time() - sent
    assert r.headers["x-disagg-dilation"] == "2"
    assert took_s >= 2.0 * (0.01 + 2 * 0.002) - 1e-3  # last token: 14 emu ms after arrival


def test_completion_whole_reply_and_token_ids() -> None:
    with _client() as client:
        r = client.post("/v1/completions", json={"model": MODEL, "prompt": [1, 2, 3, 4, 5, 6, 7],
                                                 "max_tokens": 3})
        default = client.post("/v1/completions", json={"model": MODEL, "prompt": "abcd"})
    assert r.status_code == 200
    out = r.json()
    assert out["object"] == "text_completion" and out["id"].startswith("cmpl-")
    assert out["choices"][0]["text"] == " the cluster emulates"
    assert out["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert default.json()["usage"]["completion_tokens"] == 16  # OpenAI's completions default


def test_counting_rule() -> None:
    assert count_text_tokens("") == 1
    assert count_text_tokens("abcd") == 1 and count_text_tokens("abcde") == 2
    assert count_text_tokens("é" * 4) == 2  # 8 UTF-8 bytes


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"model": "other", "prompt": "x"}, 404, "model"),
    ({"model": MODEL, "prompt": "x", "max_tokens": 0}, 400, "max_tokens"),
    ({"model": MODEL, "prompt": list(range(4096)), "max_tokens": 1}, 400, "prompt"),
    ({"model": MODEL, "prompt": "x", "n": 0}, 400, "n"),
    ({"model": MODEL, "prompt": "x", "temperature": -1}, 400, "temperature"),
    ({"model": MODEL, "prompt": "x", "temperature": 3.0}, 400, "temperature"),
    ({"model": MODEL, "prompt": "x", "top_p": 0}, 400, "top_p"),
    ({"model": MODEL, "prompt": "x", "stop": ["the", ""]}, 400, "stop"),
    ({"model": MODEL, "prompt": ["a", "b"]}, 400, "prompt"),
    ({"prompt": "x"}, 400, "model"),
])
def test_bad_requests_get_openai_errors(body: dict[str, Any], status: int, param: str) -> None:
    with _client() as client:
        r = client.post("/v1/completions", json=body)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["code"] == status and err["param"] == param and err["message"]


def test_bad_json_key_and_body_cap() -> None:
    with _client(api_key="k", max_body_bytes=200) as client:
        ok_headers = {"Authorization": "Bearer k"}
        assert client.get("/v1/models").status_code == 401
        assert client.get("/v1/models", headers=ok_headers).json()["data"][0]["id"] == MODEL
        bad = client.post("/v1/completions", content=b"{nope", headers=ok_headers)
        big = client.post("/v1/completions", headers=ok_headers,
                          json={"model": MODEL, "prompt": "x" * 500})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "BadRequestError"
    assert big.status_code == 413


def test_cluster_rejections_are_429_and_503_with_the_reason() -> None:
    with _client() as client:
        slo = client.post("/v1/completions", json={"model": MODEL, "prompt_token_ids":
                                                   list(range(REJECT_PROMPT)), "stream": True})
        down = client.post("/v1/chat/completions", json={
            "model": MODEL, "messages": [], "prompt_token_ids": list(range(DOWN_PROMPT))})
    assert slo.status_code == 429 and "slo_unattainable" in slo.json()["error"]["message"]
    assert down.status_code == 503 and "no_prefill_unit_up" in down.json()["error"]["message"]


def test_metrics_have_vllm_names_labels_and_buckets() -> None:
    with _client() as client:  # counters move as tokens are released: one request of 3 tokens
        client.post("/v1/completions", json={"model": MODEL, "prompt_token_ids": [1] * 100,
                                             "max_tokens": 3})
        text = client.get("/metrics").text
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
            "vllm:prompt_tokens", "vllm:generation_tokens", "vllm:request_success",
            "vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds",
            "vllm:e2e_request_latency_seconds", "vllm:request_queue_time_seconds",
            "vllm:request_prefill_time_seconds", "vllm:request_decode_time_seconds",
            "vllm:nixl_xfer_time_seconds", "vllm:nixl_bytes_transferred",
            "disagg:link_utilization", "disagg:emulator_lag_p99_seconds"} <= set(fams)

    def value(name: str, suffix: str = "", **labels: str) -> float:
        for s in fams[name].samples:
            if s.name == name + suffix and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
        raise KeyError((name, suffix, labels))

    assert value("vllm:prompt_tokens", "_total", engine="prefill-0", model_name=MODEL) == 100
    # the first token on the prefill unit, the other two on the decode unit
    assert value("vllm:generation_tokens", "_total", engine="prefill-0") == 1
    assert value("vllm:generation_tokens", "_total", engine="decode-0") == 2
    assert value("vllm:request_success", "_total", finished_reason="length") == 1
    assert value("vllm:kv_cache_usage_perc", engine="decode-0") == 0.25
    assert value("vllm:num_requests_waiting", engine="prefill-0") == 2
    assert value("disagg:link_utilization", link="p0>d0") == 0.5
    # TTFT 0.3 s; ITL gaps 0.02 and 0.04 s; queue 0.05 s, prefill 0.25 s, decode 0.06 s
    assert value("vllm:time_to_first_token_seconds", "_sum", engine="prefill-0") == 0.3
    assert value("vllm:inter_token_latency_seconds", "_count", engine="decode-0") == 2
    assert value("vllm:inter_token_latency_seconds", "_sum") == pytest.approx(0.06)
    assert value("vllm:request_decode_time_seconds", "_sum") == pytest.approx(0.06)
    edges = sorted({float(s.labels["le"]) for s in fams["vllm:time_to_first_token_seconds"].samples
                    if "le" in s.labels} - {float("inf")})
    assert tuple(edges) == TTFT_BUCKETS and len(ITL_BUCKETS) == 19
    assert value("disagg:requests_ended", "_total", status="rejected") == 1


def test_one_two_five_buckets() -> None:
    assert one_two_five(100) == (1, 2, 5, 10, 20, 50, 100)


@pytest.mark.parametrize(("flag", "value", "needle"), [
    ("--port", "70000", "argument '--port': value 70000"),
    ("--max-model-len", "0", "argument '--max-model-len': value 0"),
    ("--tokenizer", "bpe", "argument '--tokenizer': value 'bpe' is not one of"),
    ("--base-port", "-1", "argument '--base-port': value -1"),
])
def test_serve_cli_bad_flags_exit_2_with_one_line(flag: str, value: str, needle: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    exp = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.toml"
    assert main(["serve", str(exp), flag, value]) == 2
    assert needle in capsys.readouterr().err


class Instant(StandIn):
    """Every token is due at once: a reply is as large as its token count allows."""

    async def wait(self, rid: int, version: int, from_index: int, timeout_s: float) -> PlanUpdate:
        _, output, arrival = self.submitted[rid]
        times = tuple(arrival for _ in range(output - 1))
        return PlanUpdate(rid, 1, arrival, times[from_index:], from_index, "", "", None)


def test_a_client_that_stops_reading_does_not_stall_others() -> None:
    settings = ServeSettings(Limits(MODEL, 10**6, 32))
    with serving(create_app(Instant(), settings)) as port:
        body = json.dumps({"model": MODEL, "prompt": "x", "max_tokens": 50000, "stream": True})
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                        f"application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode())
        stalled.recv(1024)  # the reply (~10 MB of events) has begun; now it is never read
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as other:
            for _ in range(3):
                r = other.post("/v1/completions", json={"model": MODEL, "prompt": "y",
                                                        "max_tokens": 5})
                assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 5
        stalled.close()
