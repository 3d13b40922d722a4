"""The server's own lateness against modeled token times (experiments/serve/lag.py): judged
against the share of the modeled TTFT / inter-token gap, one warning line per period, a
suggested dilation worked out by hand."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from test_serve_api import MODEL, StandIn
from test_serve_vllm import _value

from disagg.experiments.serve.app import ServeSettings, create_app
from disagg.experiments.serve.lag import LagMonitor
from disagg.experiments.serve.protocol import Limits


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_share_threshold_suggestion_and_one_line_per_period() -> None:
    clock = FakeClock()
    mon = LagMonitor(dilation=2.0, share=0.1, every_s=30.0, clock=clock)
    # a 10 emu ms gap is 20 wall ms at dilation 2: 2 ms late is exactly 10 %, not over
    assert mon.observe("itl", 0.002, 0.010) is None
    line = mon.observe("itl", 0.004, 0.010)  # 20 %: dilation 0.004 / (0.1 x 0.010) = 4
    assert line is not None and "20%" in line and "--dilation 4 or more" in line
    assert mon.judge("ttft", 0.3, 0.2) == (0.3, 0.2)  # each first token at once
    clock.now = 29.0
    assert mon.observe("ttft", 0.5, 0.1) is None  # within the period: counted, not logged
    assert mon.suggested_dilation == pytest.approx(50.0)  # 0.5 / (0.1 x 0.1)
    clock.now = 31.0
    assert "--dilation 50 or more" in (mon.observe("itl", 0.004, 0.010) or "")


class Behind(StandIn):
    """A cluster whose clock is 1 s behind the wall: every token is due 1 s before the server
    can write it (the first 10 emu ms after arrival)."""

    def emu_now(self) -> float:
        return super().emu_now() - 1.0


def test_a_late_server_warns_once_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="disagg.serve"), \
            TestClient(create_app(Behind(), ServeSettings(Limits(MODEL, 4096, 32)))) as client:
        for _ in range(3):
            client.post("/v1/completions", json={"model": MODEL, "prompt": "x", "max_tokens": 2})
        text = client.get("/metrics").text
    assert len([r for r in caplog.records if "client timings measure this host" in r.message]) == 1
    assert _value(text, "disagg:client_lag_over_share_total", kind="ttft") == 3
    # >= 0.99 s late on a 10 ms TTFT at dilation 1: 0.99 / (0.1 x 0.01) = 990
    assert _value(text, "disagg:suggested_dilation") >= 990


def test_inter_token_stretches_are_judged_per_window() -> None:
    from disagg.experiments.serve.lag import ITL_WINDOW
    mon = LagMonitor(dilation=1.0, clock=FakeClock())
    judged = [mon.judge("itl", 0.0001, 0.0005) for _ in range(ITL_WINDOW)]
    assert judged[:-1] == [None] * (ITL_WINDOW - 1)
    late, modeled = judged[-1]  # type: ignore[misc]
    assert late == pytest.approx(0.0001 * ITL_WINDOW) and modeled == pytest.approx(0.05)
    assert mon.over(late, modeled)  # a 20 % stretch of every 0.5 ms gap
