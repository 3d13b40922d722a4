"""``disagg serve`` behaves as vLLM 0.32 does (stand-in cluster, no Ray): ``n`` choices, stop
strings and ids on the synthetic text, the context clamp, ``X-Request-Id``, per-token counters,
``vllm:cache_config_info``, and a client that disconnects has its requests cancelled. The
expected texts are written out by hand from the word list in docs/serve.md."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from test_serve_api import MODEL, StandIn

from disagg.experiments.serve.app import ServeSettings, create_app
from disagg.experiments.serve.protocol import Limits
from disagg.experiments.serve.units import UnitCache
from serving import serving

# the synthetic output's first 16 tokens (docs/serve.md), one word each after a space
SIXTEEN = (" the cluster emulates a token stream at its modeled time prefill decode fabric kv"
           " cache moves")
UNITS = (UnitCache("prefill-0", "prefill", 512, 100, True),
         UnitCache("decode-0", "decode", 512, 208, False))


def _client(backend: StandIn | None = None, max_model_len: int = 4096) -> TestClient:
    settings = ServeSettings(Limits(MODEL, max_model_len, 32), units=UNITS)
    return TestClient(create_app(backend or StandIn(), settings))


def _chunks(text: str) -> list[dict[str, Any]]:
    events = [e[len("data: "):] for e in text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def test_n_choices_are_n_emulated_requests_streamed_with_their_index() -> None:
    backend = StandIn()
    body = {"model": MODEL, "prompt": "abcdefgh", "max_tokens": 3, "n": 2, "stream": True,
            "stream_options": {"include_usage": True}}
    with _client(backend) as client:
        r = client.post("/v1/completions", json=body)
        whole = client.post("/v1/completions", json={**body, "stream": False})
    assert [s[:2] for s in backend.submitted] == [(2, 3)] * 4  # 8 bytes: 2 prompt tokens
    chunks = _chunks(r.text)
    texts: dict[int, str] = {}
    for c in chunks[:-1]:
        (choice,) = c["choices"]
        texts[choice["index"]] = texts.get(choice["index"], "") + choice["text"]
    assert texts == {0: " the cluster emulates", 1: " the cluster emulates"}
    assert chunks[-1]["usage"] == {"prompt_tokens": 2, "completion_tokens": 6, "total_tokens": 8}
    assert [c["index"] for c in whole.json()["choices"]] == [0, 1]
    assert r.headers["x-disagg-request-id"] == "0,1"


@pytest.mark.parametrize(("extra", "tokens", "text", "stop_reason"), [
    ({"stop": "cluster emulates"}, 3, " the ", "cluster emulates"),
    ({"stop": ["zzz", "a t"]}, 5, " the cluster emulates ", "a t"),  # " a" + " token"
    ({"stop_token_ids": [2]}, 3, " the cluster", 2),  # id 2 is "emulates", left out of the text
    # vLLM looks for a stop from len(stop) characters before the new token's text, so with
    # min_tokens 1 the first "the" would still be found at token 1; with 2 it is the next one
    ({"stop": "the", "min_tokens": 1}, 2, " ", "the"),
    ({"stop": "the", "min_tokens": 2}, 17, SIXTEEN + " ", "the"),  # token 16 is " the"
    ({"stop": "nowhere"}, 20, None, None),
])
def test_stops_cut_the_synthetic_text_and_the_emulated_output(
        extra: dict[str, Any], tokens: int, text: str | None, stop_reason: Any) -> None:
    backend = StandIn()
    with _client(backend) as client:
        r = client.post("/v1/completions", json={"model": MODEL, "prompt": "x",
                                                 "max_tokens": 20, **extra})
    (choice,) = r.json()["choices"]
    assert backend.submitted[0][1] == tokens  # the cluster generates up to the stop
    assert r.json()["usage"]["completion_tokens"] == tokens
    if text is not None:
        assert choice["text"] == text
    assert (choice["finish_reason"], choice["stop_reason"]) == (
        ("stop", stop_reason) if stop_reason is not None else ("length", None))


def test_streamed_stop_text_concatenates_to_the_whole_reply() -> None:
    with _client() as client:
        r = client.post("/v1/chat/completions", json={
            "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9,
            "stop": "cluster emulates", "stream": True})
    chunks = _chunks(r.text)[1:]  # after the role chunk
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == " the "
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_context_clamps_max_tokens_as_vllm_does() -> None:
    backend = StandIn()
    with _client(backend, max_model_len=100) as client:
        r = client.post("/v1/completions", json={"model": MODEL, "prompt": list(range(96)),
                                                 "max_tokens": 50})
        over = client.post("/v1/completions", json={"model": MODEL, "prompt": list(range(100)),
                                                    "max_tokens": 1})
    assert backend.submitted[0][:2] == (96, 4)  # 100 - 96 tokens left in the context
    assert r.json()["choices"][0]["finish_reason"] == "length"
    assert over.status_code == 400 and "maximum context length is 100" in over.text


def test_x_request_id_is_echoed_and_names_the_response() -> None:
    with _client() as client:
        r = client.post("/v1/completions", headers={"X-Request-Id": "abc-1"},
                        json={"model": MODEL, "prompt": "x", "max_tokens": 2})
    assert r.headers["x-request-id"] == "abc-1" and r.json()["id"] == "cmpl-abc-1"


def _value(text: str, name: str, **labels: str) -> float:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise KeyError((name, labels))


def test_cache_config_info_preemptions_and_prefix_series() -> None:
    with _client() as client:
        client.post("/v1/completions", json={"model": MODEL, "prompt_token_ids": [1] * 40,
                                             "max_tokens": 2})
        text = client.get("/metrics").text
    assert _value(text, "vllm:cache_config_info", engine="decode-0", block_size="512",
                  num_gpu_blocks="208", enable_prefix_caching="False") == 1
    assert _value(text, "vllm:num_preemptions_total", engine="decode-0") == 0
    assert _value(text, "vllm:prefix_cache_queries_total", engine="prefill-0") == 40
    assert _value(text, "vllm:prefix_cache_hits_total", engine="prefill-0") == 0


@contextmanager
def _server(backend: StandIn) -> Iterator[int]:
    with serving(create_app(backend, ServeSettings(Limits(MODEL, 10**6, 32), units=UNITS))) as port:
        yield port


def _post(port: int, body: dict[str, Any]) -> socket.socket:
    raw = json.dumps(body)
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(raw)}\r\n\r\n{raw}".encode())
    return s


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_disconnects_has_its_request_cancelled(stream: bool) -> None:
    backend = StandIn()  # 5000 tokens at 2 ms each: 10 s, far longer than the test takes
    with _server(backend) as port:
        s = _post(port, {"model": MODEL, "prompt": "x", "max_tokens": 5000, "stream": stream})
        if stream:
            assert s.recv(1024).startswith(b"HTTP/1.1 200")  # the stream has begun
        s.close()
        assert backend.cancel_seen.wait(30)
    assert backend.cancelled == {0: "client_disconnected"}


def test_a_stream_read_to_its_end_is_not_cancelled_and_counters_move_per_token() -> None:
    backend = StandIn()
    with _server(backend) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}",
                                                timeout=30) as client:
        body = {"model": MODEL, "prompt": "x", "max_tokens": 2000, "stream": True}
        with client.stream("POST", "/v1/completions", json=body) as r:
            lines = r.iter_lines()
            next(lines)  # the first token is out; the stream runs ~4 s more
            mid = _value(client.get("/metrics").text, "vllm:generation_tokens_total")
            rest = sum(1 for line in lines if line.startswith("data: {"))
    assert 1 <= mid < 2000 and rest >= 1
    assert backend.cancelled == {}


def test_per_unit_endpoints_speak_the_pd_protocol() -> None:
    from disagg.experiments.serve.app import ApiCore
    from disagg.experiments.serve.unit_app import create_unit_app

    backend = StandIn()
    core = ApiCore(backend, ServeSettings(Limits(MODEL, 4096, 32), units=UNITS,
                                          kv_bytes_per_token=10.0))
    body = {"model": MODEL, "prompt_token_ids": [1] * 600}
    with TestClient(create_unit_app(core, UNITS[0])) as pre, \
            TestClient(create_unit_app(core, UNITS[1])) as dec:
        leg1 = pre.post("/v1/completions", json={**body, "max_tokens": 1, "stream": True,
                                                 "kv_transfer_params": {"do_remote_decode": True}})
        params = leg1.json()["kv_transfer_params"]
        leg2 = dec.post("/v1/completions", json={**body, "max_tokens": 5,
                                                 "kv_transfer_params": params})
        stale = dec.post("/v1/completions", json={**body, "kv_transfer_params": {
            **params, "remote_request_id": "99"}})
        plain = dec.post("/v1/completions", json={**body, "max_tokens": 2})
        metrics = dec.get("/metrics").text
    # one emulated request for both legs, its prefill pinned there and waiting for its decode leg
    assert (backend.pins[0].prefill_unit, backend.pins[0].decode_leg) == ("prefill-0", True)
    assert params["remote_request_id"] == "0" and params["remote_engine_id"] == "prefill-0"
    assert params["kv_bytes"] == 6000.0 and params["remote_block_ids"] == [0, 1]  # 600 / 512
    assert backend.legs == [(0, "decode-0", 5)]
    assert leg2.json()["usage"]["completion_tokens"] == 5
    assert stale.status_code == 400 and stale.json()["error"]["param"] == "kv_transfer_params"
    assert plain.status_code == 200 and backend.pins[1].decode_unit == "decode-0"
    assert len(backend.submitted) == 2
    assert 'engine="prefill-0"' not in metrics
    # the decode leg's 5 tokens and the plain request's 1 later token count on decode-0
    assert _value(metrics, "vllm:generation_tokens_total", engine="decode-0") == 6


# OpenAI's help article "What are tokens and how to count them": Wayne Gretzky's quote is 11
# tokens (GPT-3's tokenizer); 41 ASCII characters, 9 words
GRETZKY = "You miss 100% of the shots you don't take"


@pytest.mark.parametrize(("rule", "tokens"), [
    ("bytes4", 11), ("chars4", 11), ("words", 12),  # ceil(41/4), ceil(41/4), ceil(9/0.75)
])
def test_tokenizer_modes_on_a_text_of_known_token_count(rule: str, tokens: int) -> None:
    from disagg.experiments.serve.protocol import count_text_tokens
    assert count_text_tokens(GRETZKY, rule) == tokens
    assert count_text_tokens("日本語", rule) == {"bytes4": 3, "chars4": 1, "words": 2}[rule]


def test_serve_tokenizer_flag_counts_prompts_by_its_rule() -> None:
    backend = StandIn()
    settings = ServeSettings(Limits(MODEL, 4096, 32, "chars4"))
    with TestClient(create_app(backend, settings)) as client:
        client.post("/v1/completions", json={"model": MODEL, "prompt": "日本語" * 4,
                                             "max_tokens": 1})
    assert backend.submitted[0][0] == 3  # 12 characters (36 UTF-8 bytes: 9 under bytes4)
