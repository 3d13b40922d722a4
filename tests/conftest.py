"""Shared test factories and the one real-Ray fixture."""

from __future__ import annotations

import copy
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from disagg.cluster.config import Experiment, experiment_from_dict
from disagg.cluster.messages import Request
from disagg.experiments import run as run_module
from disagg.experiments.results import invariants, writing

BASE: dict[str, Any] = {
    "experiment": {"name": "t", "seed": 7, "duration_s": 5.0, "engine": "virtual"},
    "model": "llama-3.1-70b",
    "prefill": {"hardware": "trainium2", "chips_per_unit": 4, "units": 2},
    "decode": {"hardware": "cs3", "chips_per_unit": 4, "units": 1},
    "workload": {
        "rate_per_s": 4.0,
        "prompt_tokens": {"kind": "lognormal", "median": 1000, "sigma": 0.8, "max": 8192},
        "output_tokens": {"kind": "lognormal", "median": 100, "sigma": 0.6, "max": 1024},
    },
    "slo": {"ttft_s": 1.0, "tpot_s": 0.02},
    "output": {"payload_scale": 1e-4},
}


def experiment_dict(**overrides: Any) -> dict[str, Any]:
    """The base experiment as a dict, with ``section__field=value`` overrides."""
    raw = copy.deepcopy(BASE)
    for key, value in overrides.items():
        node = raw
        *parents, leaf = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return raw


def own_lines(err: str) -> list[str]:
    """``err``'s lines less the log lines Ray forwards to the driver from its raylets and
    workers (coloured, or prefixed ``(raylet)`` / ``(Name pid=...)``): those come from the
    machine (a nearly full disk, a slow worker start) and are not the emulator's to assert on."""
    return [line for line in err.splitlines()
            if not ("\x1b[" in line or line.startswith("(raylet)")
                    or (line.startswith("(") and " pid=" in line.split(")")[0]))]


def make_experiment(**overrides: Any) -> Experiment:
    """A small validated experiment; ``workload__rate_per_s=8`` style overrides."""
    return experiment_from_dict(experiment_dict(**overrides))


def make_request(**overrides: Any) -> Request:
    """A request with sensible defaults."""
    fields: dict[str, Any] = {"request_id": 0, "arrival_s": 0.0, "prompt_tokens": 1000,
                              "output_tokens": 100, "ttft_slo_s": 1.0, "tpot_slo_s": 0.05}
    fields.update(overrides)
    return Request(**fields)


@dataclass
class RayTestCluster:
    """The shared test cluster: a head (control plane), a Trainium/GPU node and a CS-3 node."""

    cluster: Any
    address: str
    head_node_id: str
    trainium_node_id: str
    cs3_node_id: str


@pytest.fixture(scope="session")
def ray_cluster():
    """One 3-node Ray cluster on this machine for every real-Ray test (shut down at the end)."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    # the Ray workers import test-only modules by dotted path too (tests/failing_policy.py)
    tests_dir = str(Path(__file__).resolve().parent)
    path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = tests_dir + (os.pathsep + path if path else "")
    mib = 2**20
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "resources": {"disagg_control": 64}, "object_store_memory": 300 * mib})
    trn = cluster.add_node(num_cpus=0, object_store_memory=150 * mib, resources={
        "trainium2": 256, "trainium3": 256, "h100": 256, "h200": 256, "b200": 256})
    cs3 = cluster.add_node(num_cpus=0, object_store_memory=150 * mib, resources={"cs3": 256})
    cluster.wait_for_nodes()
    # log_to_driver=False: the raylets' own lines (a nearly full disk, a slow worker start) are
    # the machine's, printed from a Ray thread at any moment; forwarded, they would land in
    # whatever test is capturing stderr then (a one-line error check, say)
    ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
    yield RayTestCluster(cluster, cluster.address, cluster.head_node.node_id, trn.node_id,
                         cs3.node_id)
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture
def actor_handles(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The ray engine's actor handles by component name, filled once the run has started them
    (for tests that kill an actor mid-run)."""
    ray_engine = pytest.importorskip("disagg.actors.engines.ray_engine")
    handles: dict[str, Any] = {}
    real_start = ray_engine.start_actors

    def start_and_keep(*args: Any, **kwargs: Any) -> Any:
        out = real_start(*args, **kwargs)
        handles.update(out[0])
        return out

    monkeypatch.setattr(ray_engine, "start_actors", start_and_keep)
    return handles


@pytest.fixture
def noticed_losses(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """Unit -> the emu time the ray engine's supervisor declared it lost, filled as the run goes
    (its actor was dead by then: what arrived later cannot have run on it, however late a loaded
    machine lets the supervisor notice)."""
    supervisor = pytest.importorskip("disagg.actors.engines.supervisor")
    noticed: dict[str, float] = {}
    real_unit_down = supervisor.Supervisor.unit_down

    def record(sup: Any, name: str, why: str, at_s: float) -> None:
        noticed.setdefault(name, at_s)
        real_unit_down(sup, name, why, at_s)

    monkeypatch.setattr(supervisor.Supervisor, "unit_down", record)
    return noticed


@pytest.fixture
def played_kills(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """Unit -> the emu time by which the ray engine's supervisor had played its injected kill
    (the actor killed, or a shared actor's unit stopped, and the router told), filled as the run
    goes: a loaded driver plays a kill late, so what arrives between its scheduled time and this
    one may still run on the unit."""
    supervisor = pytest.importorskip("disagg.actors.engines.supervisor")
    played: dict[str, float] = {}
    real_kill = supervisor.RayFaultHost.kill_unit

    def record(host: Any, unit: str, at_s: float) -> None:
        real_kill(host, unit, at_s)
        played.setdefault(unit, host.sup.emu_now())

    monkeypatch.setattr(supervisor.RayFaultHost, "kill_unit", record)
    return played


ASSEMBLERS = ("disagg.experiments.run", "disagg.experiments.serve.server",
              "disagg.experiments.compare.capacity", "disagg.experiments.compare.runs")
RESULTS_FILES = ("config.toml", "requests.parquet", "transfers.parquet", "summary.json")


@pytest.fixture(autouse=True)
def results_invariants(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Check the invariants (``experiments/results/invariants.py``) of every run a test makes:
    each results folder as it is swapped into place (complete, before the test can touch it),
    and each run assembled in memory. The test fails at teardown with one line per violation.
    A test that feeds the writer hand-made or deliberately broken results opts out with
    ``@pytest.mark.no_invariants``; ``@pytest.mark.no_invariants("kv_capacity", ...)`` skips only
    the invariants named."""
    mark = request.node.get_closest_marker("no_invariants")
    if mark is not None and not mark.args:
        yield
        return
    skipped = set(mark.args) if mark is not None else set()  # only these invariants are skipped
    found: list[str] = []
    real_swap, real_assemble = writing.swap_into_place, run_module.assemble

    def swap_checked(tmp: Path, out_dir: Path) -> None:
        if all((tmp / f).is_file() for f in RESULTS_FILES):
            found.extend(f"{out_dir}: {v.describe()}" for v in invariants.check_folder(tmp)
                         if v.invariant not in skipped)
        real_swap(tmp, out_dir)

    def assemble_checked(exp: Experiment, raw: dict[str, Any]) -> Any:
        result = real_assemble(exp, raw)
        found.extend(f"{exp.experiment.name} (in memory): {v.describe()}" for v in
                     invariants.check_results(exp, result.tables["requests"],
                                              result.tables["transfers"], result.summary,
                                              result.tables.get("tasks"))
                     if v.invariant not in skipped)
        return result

    monkeypatch.setattr(writing, "swap_into_place", swap_checked)
    for name in ASSEMBLERS:  # the modules that call assemble, where they are imported
        module = sys.modules.get(name)
        if module is not None and getattr(module, "assemble", None) is real_assemble:
            monkeypatch.setattr(module, "assemble", assemble_checked)
    yield
    if found:
        pytest.fail("results invariants violated:\n" + "\n".join(found[:20]), pytrace=False)
