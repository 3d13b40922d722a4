"""The fluid max-min fabric model (hand-computed cases, properties) and KV payloads."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from disagg.fabric.flows import FluidNetwork, max_min_rates
from disagg.fabric.payload import PayloadError, make_payload, tamper, verify_payload

GB = 1e9


def _drain(net: FluidNetwork) -> dict[int, float]:
    done = {}
    while (nxt := net.next_completion()) is not None:
        net.finish(nxt[1], nxt[0])
        done[nxt[1]] = nxt[0]
    return done


def test_one_flow_alone_takes_bytes_over_bandwidth() -> None:
    net = FluidNetwork({"e": 50 * GB, "i": 100 * GB})
    net.add(1, ("e", "i"), 10 * GB, 0.0)
    assert _drain(net)[1] == pytest.approx(0.2, rel=1e-12)


def test_n_equal_flows_from_one_host_share_its_egress() -> None:
    net = FluidNetwork({"e": 10 * GB, "i1": 100 * GB, "i2": 100 * GB, "i3": 100 * GB})
    for k in range(3):
        net.add(k, ("e", f"i{k + 1}"), 5 * GB, 0.0)
    done = _drain(net)
    assert all(t == pytest.approx(3 * 5 / 10, rel=1e-12) for t in done.values())


def test_disjoint_pairs_do_not_slow_each_other() -> None:
    net = FluidNetwork({"a-e": 10 * GB, "b-i": 10 * GB, "c-e": 10 * GB, "d-i": 10 * GB})
    net.add(1, ("a-e", "b-i"), 10 * GB, 0.0)
    net.add(2, ("c-e", "d-i"), 10 * GB, 0.0)
    assert _drain(net) == {1: pytest.approx(1.0), 2: pytest.approx(1.0)}


def test_flow_joining_halfway_finishes_when_max_min_says() -> None:
    # A: 10 GB alone on a 10 GB/s egress; B (10 GB) joins at 0.5 s when A has 5 GB left.
    # Both then get 5 GB/s: A ends at 1.5 s; B has 5 GB left, runs alone at 10 GB/s -> 2.0 s.
    net = FluidNetwork({"e": 10 * GB, "i1": 100 * GB, "i2": 100 * GB})
    net.add(1, ("e", "i1"), 10 * GB, 0.0)
    net.add(2, ("e", "i2"), 10 * GB, 0.5)
    assert _drain(net) == {1: pytest.approx(1.5), 2: pytest.approx(2.0)}


def test_tiny_flows_on_fast_links_finish_late_in_a_long_run() -> None:
    # 4 KB at 400 GB/s takes 10 ns; at t = 1e4 s, float rounding of the completion time alone is
    # worth ~1e-12 s x 4e11 B/s of bytes — more than any fixed byte tolerance for a tiny flow.
    net = FluidNetwork({"e": 400 * GB})
    for k in range(200):
        net.add(k, ("e",), 4096.0, 1e4 + k * 1.3e-3)
        t, fid = net.next_completion()
        net.finish(fid, t)
    assert len(net) == 0


def test_a_flow_cannot_finish_early() -> None:
    net = FluidNetwork({"e": 1 * GB})
    net.add(1, ("e",), 1 * GB, 0.0)
    with pytest.raises(RuntimeError, match="bytes left"):
        net.finish(1, 0.5)


def test_max_min_gives_leftover_to_unconstrained_flows() -> None:
    # f1 and f2 share link x (cap 10); f2 also crosses y (cap 2) -> f2 = 2, f1 = 8
    rates = max_min_rates({1: ("x",), 2: ("x", "y")}, {"x": 10.0, "y": 2.0})
    assert rates == {1: pytest.approx(8.0), 2: pytest.approx(2.0)}


def test_per_flow_cap_limits_a_lone_flow() -> None:
    assert max_min_rates({1: ("x",)}, {"x": 10.0}, per_flow_cap=3.0) == {1: 3.0}


def test_a_lone_flow_gets_its_slowest_link_up_to_the_cap() -> None:
    caps = {"a": 10.0, "b": 4.0}
    assert max_min_rates({1: ("a", "b")}, caps) == {1: 4.0}
    assert max_min_rates({1: ("a", "b")}, caps, per_flow_cap=3.0) == {1: 3.0}
    assert max_min_rates({1: ()}, caps, per_flow_cap=3.0) == {1: 3.0}  # crosses no link


def test_a_lone_flow_crossing_a_link_twice_gets_half_of_it() -> None:
    # 10 B over a 10 B/s link crossed twice: 5 B/s each way -> done at 2 s
    net = FluidNetwork({"x": 10.0})
    net.add(1, ("x", "x"), 10.0, 0.0)
    assert net.next_completion() == (2.0, 1)


def test_next_completion_follows_a_capacity_change_and_a_backdate() -> None:
    # 10 B at 10 B/s from 0; at 0.5 s (5 B left) the link halves: 5 B at 5 B/s -> 1.5 s
    net = FluidNetwork({"x": 10.0})
    net.add(1, ("x",), 10.0, 0.0)
    assert net.next_completion() == (1.0, 1)
    net.set_capacity("x", 5.0, 0.5)
    assert net.next_completion() == (1.5, 1)
    # flow 2 (5 B) joins at 0.5 s, credited 0.2 s at its fair share (2.5 B/s): 4.5 B left ->
    # done at 0.5 + 1.8 = 2.3 s, before flow 1 (5 B left at 2.5 B/s -> 2.5 s)
    net.add(2, ("x",), 5.0, 0.5)
    assert net.backdate(2, 0.2) == 0.0
    t, fid = net.next_completion()
    assert (t, fid) == (pytest.approx(2.3), 2)


def test_a_mix_of_routes_seen_again_gets_its_rates_again_until_a_capacity_changes() -> None:
    # x (10 B/s) shared by two flows, f2 also on y (2 B/s): f2 gets 2, f1 the other 8 (max-min)
    net = FluidNetwork({"x": 10.0, "y": 2.0})
    net.add(1, ("x",), 8.0, 0.0)
    net.add(2, ("x", "y"), 2.0, 0.0)
    assert net.link_loads() == {"x": (10.0, 2), "y": (2.0, 1)}
    assert _drain(net) == {1: 1.0, 2: 1.0}
    # the same routes in the same order under other ids: the same rates
    net.add(7, ("x",), 8.0, 2.0)
    net.add(9, ("x", "y"), 1e6, 2.0)
    assert (net._flows[7].rate, net._flows[9].rate) == (8.0, 2.0)
    # in the other order (f9 first): x still leaves 8 to the flow that only crosses x
    net.finish(7, 3.0)
    net.add(8, ("x",), 1e6, 3.0)
    assert (net._flows[9].rate, net._flows[8].rate) == (2.0, 8.0)
    # x drops to 5 B/s: this mix's rates are worked out again (2 and 3), not remembered
    net.set_capacity("x", 5.0, 4.0)
    assert (net._flows[9].rate, net._flows[8].rate) == (2.0, 3.0)


def test_link_loads_sum_the_rates_and_count_the_flows_on_each_busy_link() -> None:
    # f1 on x (cap 10) alone after f2 takes y's 2 B/s: x carries 8 + 2, y carries 2
    net = FluidNetwork({"x": 10.0, "y": 2.0, "z": 7.0})
    net.add(1, ("x",), 100.0, 0.0)
    net.add(2, ("x", "y"), 100.0, 0.0)
    assert net.link_loads() == {"x": (10.0, 2), "y": (2.0, 1)}
    net.finish(2, 50.0)
    assert net.link_loads() == {"x": (10.0, 1)}


def test_link_loads_of_a_mix_seen_before_follow_a_capacity_change_and_an_empty_network() -> None:
    # the loads are remembered with the mix's rates: a capacity change must not hand out the
    # old ones. Two 10 B flows share x (10 B/s): 5 B/s each; at 1 s (5 B left each) x drops to
    # 4 B/s: 2 B/s each, both done at 1 + 5 / 2 = 3.5 s; then x carries nothing
    net = FluidNetwork({"x": 10.0})
    net.add(1, ("x",), 10.0, 0.0)
    net.add(2, ("x",), 10.0, 0.0)
    assert net.link_loads() == {"x": (10.0, 2)}
    net.set_capacity("x", 4.0, 1.0)
    assert net.link_loads() == {"x": (4.0, 2)}
    assert _drain(net) == {1: 3.5, 2: 3.5}
    assert net.link_loads() == {}
    # the same mix again at the new capacity: its remembered loads
    net.add(3, ("x",), 10.0, 4.0)
    net.add(4, ("x",), 10.0, 4.0)
    assert net.link_loads() == {"x": (4.0, 2)}


@settings(max_examples=150, deadline=None)
@given(
    caps=st.lists(st.floats(1.0, 100.0), min_size=2, max_size=5),
    flows=st.lists(
        st.tuples(st.floats(0.0, 5.0), st.floats(0.1, 50.0), st.sets(st.integers(0, 4), min_size=1)),
        min_size=1, max_size=12,
    ),
)
def test_bytes_conserved_and_links_never_over_capacity(caps, flows) -> None:
    links = {i: c for i, c in enumerate(caps)}
    net = FluidNetwork(links)
    moved = {i: 0.0 for i in range(len(flows))}
    events = sorted((start, i) for i, (start, _, _) in enumerate(flows))
    pending = list(events)
    now = 0.0
    sizes = {i: size for i, (_, size, _) in enumerate(flows)}
    while pending or len(net):
        nxt = net.next_completion()
        t_start = pending[0][0] if pending else float("inf")
        t = min(t_start, nxt[0] if nxt else float("inf"))
        for fid, flow in net._flows.items():  # rates are constant between events
            moved[fid] += flow.rate * (t - now)
        for link, rate in net.link_rates().items():
            assert rate <= links[link] * (1 + 1e-9)
        now = t
        if pending and t_start <= t:
            _, i = pending.pop(0)
            path = tuple(sorted(x % len(caps) for x in flows[i][2]))
            net.add(i, path, sizes[i], t)
        else:
            net.finish(nxt[1], t)
    assert all(moved[i] == pytest.approx(sizes[i], rel=1e-6) for i in sizes)


def test_payload_round_trip_and_tamper_detection() -> None:
    p = make_payload(5, 1000, "llama-3.1-70b", 2, 80, 327_680_000, 1e-3)
    assert p.num_rows == 80 and p.nbytes == 327_680
    assert verify_payload(p, 5) is p
    with pytest.raises(PayloadError) as e:
        verify_payload(tamper(p), 5)
    assert e.value.reason == "kv_checksum"
    with pytest.raises(PayloadError) as e:
        verify_payload(None, 5)
    assert e.value.reason == "kv_missing"
    with pytest.raises(PayloadError) as e:
        verify_payload(p, 6)
    assert e.value.reason == "kv_schema"
