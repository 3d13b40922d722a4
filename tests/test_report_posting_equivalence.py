"""Load reports posted to the router (the virtual engine's shortcut, router_reports.py) give the
same run as the same reports delivered as messages, as the ray engine delivers them: every
request's row and every transfer equal on experiments whose router reads the reports (prefix-aware
routing: held blocks and queues; least-loaded decode placement, decode units waited for)."""

from __future__ import annotations

from pathlib import Path

import pytest

from disagg.actors.components.router import Router
from disagg.actors.engines import virtual
from disagg.actors.engines.virtual_peers import LocalPeer
from disagg.cluster.config import load_experiment
from disagg.experiments.run import execute

REPO = Path(__file__).resolve().parents[1]


def _rows(experiment: str, duration_s: float) -> tuple[list, list]:
    exp = load_experiment(REPO / "experiments" / experiment,
                          {"experiment.engine": "virtual", "experiment.duration_s": duration_s})
    raw = execute(exp)
    return raw["requests"], raw["transfers"]


@pytest.mark.parametrize(("experiment", "duration_s"), [("mooncake_conv.toml", 120.0),
                                                         ("multi_turn_chat.toml", 60.0)])
def test_posted_reports_give_the_run_that_delivered_reports_give(
        experiment: str, duration_s: float, monkeypatch: pytest.MonkeyPatch) -> None:
    posted = []
    post = Router.post_report

    def counted(router: Router, msg: object) -> bool:
        taken = post(router, msg)  # type: ignore[arg-type]
        posted.append(taken)
        return taken

    monkeypatch.setattr(Router, "post_report", counted)
    posted_rows, posted_transfers = _rows(experiment, duration_s)
    assert sum(posted) > 100  # the shortcut was taken: reports posted, not delivered
    monkeypatch.setattr(virtual, "_peer_class", lambda comp: LocalPeer)  # every report a message
    posted.clear()
    delivered_rows, delivered_transfers = _rows(experiment, duration_s)
    assert posted == []
    assert len(posted_rows) > 20  # the experiment ran requests through the router
    assert posted_rows == delivered_rows
    assert posted_transfers == delivered_transfers
