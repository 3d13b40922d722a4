"""Many virtual-engine runs at once: one Ray task per run, or one after another in this process.

A virtual run is a pure function of its experiment (deterministic for a seed, no wall clock), so
a sweep is embarrassingly parallel: each run becomes a Ray task that returns the run's raw
component results, and a Ray cluster speeds a sweep up by its number of CPUs. Without Ray (or for
a single run) the runs execute locally in order, with identical results.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from disagg.actors.engines.address import use_token_auth_for_embedded_ray
from disagg.actors.engines.stop import StopFlag
from disagg.actors.engines.virtual import run_virtual
from disagg.cluster.config import Experiment

OnDone = Callable[[int, dict[str, Any]], None]
POLL_S = 0.5  # wall seconds between checks for a stop request while Ray tasks run
_REMOTE: dict[str, Any] = {}  # the remote function, defined once per process (Ray anti-pattern)


def _remote_run() -> Any:
    import ray

    if "run" not in _REMOTE:
        _REMOTE["run"] = ray.remote(num_cpus=1, max_retries=0)(run_virtual)
    return _REMOTE["run"]


def ray_available() -> bool:
    """True when Ray can be imported in this process."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def map_virtual_runs(exps: Sequence[Experiment], use_ray: bool = True, address: str | None = None,
                     on_done: OnDone | None = None, stop: StopFlag | None = None
                     ) -> list[dict[str, Any] | None]:
    """Run every experiment on the virtual engine; returns raw results in the input order.

    ``use_ray`` runs them as Ray tasks (joining ``address``, ``RAY_ADDRESS`` or an already
    initialised Ray, else starting an embedded one that is shut down afterwards); a single run,
    or Ray not installed, runs locally. ``on_done(index, raw)`` is called as each run finishes.
    Once ``stop`` is requested no run starts (a local run in progress ends early, its unfinished
    requests ``cancelled``; Ray tasks not finished are cancelled): their results are None.
    """
    if not use_ray or len(exps) <= 1 or not ray_available():
        return _map_local(exps, on_done, stop)
    return _map_ray(exps, address, on_done, stop)


def _map_local(exps: Sequence[Experiment], on_done: OnDone | None,
               stop: StopFlag | None) -> list[dict[str, Any] | None]:
    out: list[dict[str, Any] | None] = [None] * len(exps)
    for i, exp in enumerate(exps):
        if stop is not None and stop.requested:
            break
        raw = run_virtual(exp, stop=stop)
        if on_done is not None:
            on_done(i, raw)
        out[i] = raw
    return out


def _ensure_ray(address: str | None) -> bool:
    """Join ``address`` (or ``RAY_ADDRESS``) or start an embedded Ray with token authentication,
    unless Ray is already initialised; True if this call started it (and must shut it down)."""
    import ray

    from disagg.actors.engines.signals import driver_signals_kept  # imports Ray: only when used

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        use_token_auth_for_embedded_ray()
    with driver_signals_kept():
        ray.init(address=address or "local", include_dashboard=False,
                 logging_level=logging.WARNING)
    return True


def _shutdown_ray() -> None:
    """``ray.shutdown`` keeping the driver's signal handlers."""
    import ray

    from disagg.actors.engines.signals import driver_signals_kept

    with driver_signals_kept():
        ray.shutdown()


def _map_ray(exps: Sequence[Experiment], address: str | None,
             on_done: OnDone | None, stop: StopFlag | None) -> list[dict[str, Any] | None]:
    import ray

    started = _ensure_ray(address)
    try:
        run = _remote_run()
        refs = [run.remote(exp) for exp in exps]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[dict[str, Any] | None] = [None] * len(exps)
        pending = list(refs)
        while pending:  # handle each run as it finishes (ray.wait), not in submission order
            if stop is not None and stop.requested:
                for ref in pending:
                    ray.cancel(ref, force=True)
                break
            ready, pending = ray.wait(pending, num_returns=1, timeout=POLL_S)
            if not ready:
                continue
            i = index[ready[0]]
            results[i] = ray.get(ready[0])
            if on_done is not None:
                on_done(i, results[i])  # type: ignore[arg-type]
    finally:
        if started:
            _shutdown_ray()
    return results


_CALLS: dict[Any, Any] = {}  # remote wrappers of plain functions, one per function per process


def map_calls(fn: Callable[..., Any], args: Sequence[tuple[Any, ...]], use_ray: bool = True,
              address: str | None = None,
              on_done: Callable[[int, Any], None] | None = None) -> list[Any]:
    """``fn(*a)`` for every ``a`` in ``args`` — as Ray tasks (one CPU each) when ``use_ray`` and
    there is more than one call, else in order in this process; results in input order, and
    ``on_done(index, result)`` as each finishes. ``fn`` must be a module-level function."""
    if not use_ray or len(args) <= 1 or not ray_available():
        out = []
        for i, a in enumerate(args):
            out.append(fn(*a))
            if on_done is not None:
                on_done(i, out[-1])
        return out
    import ray

    started = _ensure_ray(address)
    try:
        if fn not in _CALLS:
            _CALLS[fn] = ray.remote(num_cpus=1, max_retries=0)(fn)
        refs = [_CALLS[fn].remote(*a) for a in args]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(args)
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            i = index[ready[0]]
            results[i] = ray.get(ready[0])
            if on_done is not None:
                on_done(i, results[i])
    finally:
        if started:
            _shutdown_ray()
    return results


@contextmanager
def parallel_session(use_ray: bool, address: str | None = None) -> Iterator[int]:
    """Keep one Ray session for several :func:`map_calls` (joining ``address``/``RAY_ADDRESS``
    or starting an embedded Ray, shut down on exit); yields how many calls run at once."""
    if not use_ray or not ray_available():
        yield 1
        return
    import ray

    started = _ensure_ray(address)
    try:
        yield max(1, int(ray.cluster_resources().get("CPU", 1)))
    finally:
        if started:
            _shutdown_ray()
