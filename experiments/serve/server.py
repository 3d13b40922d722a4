"""Run ``disagg serve``: start the served cluster, serve HTTP until told to stop (Ctrl-C,
SIGTERM, SIGHUP, or :meth:`ServeRunner.stop`), then write the results folder as ``disagg run`` does.

uvicorn installs its own SIGINT/SIGTERM handlers when it runs in the main thread and returns from
``serve`` after a graceful shutdown (open streams get ``GRACEFUL_S`` wall seconds); the run then
ends at once, as an interrupted ``disagg run`` does: requests still in flight are ``cancelled``,
and every request that came in is written with its one status. While serving, the cluster is
watched (:meth:`ServedCluster.watch`): a component failure makes ``/health`` answer 503 and ends
open streams with an error; the results are still written on stop, then the failure is raised
(:class:`ComponentFailed`: ``disagg serve`` exits 1 naming the component).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from disagg.actors.engines.serve_engine import ServedCluster
from disagg.actors.engines.stop import StoppedBeforeStart
from disagg.cluster.config import Experiment
from disagg.cluster.errors import ConfigError
from disagg.experiments.run import RunResult, write_run
from disagg.experiments.serve.app import ApiCore, ServeSettings, create_app
from disagg.experiments.serve.unit_app import create_unit_app

GRACEFUL_S = 5  # wall seconds open connections get once a stop is requested


class _Stopped(Exception):
    """SIGTERM arrived (raised by our handler once uvicorn re-raises the signal)."""


@contextlib.contextmanager
def _signals_as_stop() -> Iterator[None]:
    """In the main thread, make SIGTERM and SIGHUP raise :class:`_Stopped` instead of killing
    the process (uvicorn replaces the SIGTERM handler while it serves and re-raises the signal
    when it returns), so that the results are still written."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Stopped()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class ListenError(ConfigError):
    """The server could not listen where it was told to (bad input: exit code 2)."""


@dataclass
class ServeOptions:
    """Where to listen and what to enforce (see ``disagg serve --help``)."""

    host: str = "127.0.0.1"
    port: int = 8000
    address: str | None = None
    settings: ServeSettings | None = None
    out_dir: Path | None = None
    live_s: float = 0.5  # wall s between unit state reports (the gauges of /metrics)
    per_unit: bool = False  # also one endpoint per unit (``--per-unit``)
    base_port: int = 0  # the first unit's port (then one up per unit); 0: any free ports


class ReadyServer(uvicorn.Server):
    """uvicorn's server; ``on_ready(port)`` is called once it listens (with the bound port)."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[int], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets)
        port = int(self.servers[0].sockets[0].getsockname()[1]) if self.servers else 0
        self._on_ready(port)


class ServeRunner:
    """One ``disagg serve`` session: :meth:`run` blocks until the server stops, then writes and
    returns the run's results. ``ready`` is set once the server listens on ``port``."""

    def __init__(self, exp: Experiment, options: ServeOptions) -> None:
        if options.settings is None:
            raise ValueError("ServeOptions.settings is required")
        self.exp, self.options = exp, options
        self.ready = threading.Event()
        self.port = options.port
        self.cluster = ServedCluster(exp, options.address, options.live_s)
        self._server: ReadyServer | None = None
        self._servers: list[ReadyServer] = []
        self.unit_ports: dict[str, int] = {}  # --per-unit: each unit's bound port
        self._waiting = 0  # servers not listening yet

    def run(self) -> RunResult:
        """Start the cluster, serve until stopped, stop the cluster and write the results;
        raises :class:`ComponentFailed` (once they are written) if a component failed, and
        :class:`StoppedBeforeStart` for a stop while the cluster started (nothing written)."""
        with _signals_as_stop():
            self._start()
            try:
                self._build_servers()
                try:
                    asyncio.run(self._serve())
                except (KeyboardInterrupt, _Stopped):
                    pass  # Ctrl-C, SIGTERM or SIGHUP: uvicorn shut down gracefully, re-raised it
                except SystemExit:  # uvicorn exits when it cannot bind
                    raise ListenError(f"argument '--port': cannot listen on {self.options.host}:"
                                      f"{self.options.port} (in use, or not allowed)") from None
            finally:
                results = self.cluster.stop("interrupted")
        return write_run(self.exp, results, self.options.out_dir)

    def _start(self) -> None:
        try:
            self.cluster.start()
        except (KeyboardInterrupt, _Stopped):
            self.cluster.close()
            raise StoppedBeforeStart("interrupted") from None
        except BaseException:
            self.cluster.close()
            raise

    def _config(self, app: Any, port: int) -> uvicorn.Config:
        return uvicorn.Config(app, host=self.options.host, port=port, log_level="warning",
                              timeout_graceful_shutdown=GRACEFUL_S, lifespan="off",
                              access_log=False)

    def _build_servers(self) -> None:
        """The gateway's server and (``--per-unit``) one per unit, on one shared core."""
        settings = self.options.settings
        assert settings is not None
        core = ApiCore(self.cluster, settings)  # type: ignore[arg-type]
        app = create_app(self.cluster, settings, core)  # type: ignore[arg-type]
        self._server = ReadyServer(self._config(app, self.options.port), self._listening)
        self._servers = [self._server]
        if self.options.per_unit:
            for i, unit in enumerate(settings.units):
                port = self.options.base_port + i if self.options.base_port else 0
                self._servers.append(ReadyServer(
                    self._config(create_unit_app(core, unit), port),
                    functools.partial(self._unit_listening, unit.unit)))
        self._waiting = len(self._servers)

    async def _serve(self) -> None:
        """Serve HTTP while watching the cluster for a failed component; when one server
        stops (Ctrl-C reaches one of them), all stop."""
        watch = asyncio.ensure_future(self.cluster.watch())
        tasks = [asyncio.ensure_future(s.serve()) for s in self._servers]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for s in self._servers:
                s.should_exit = True
            await asyncio.gather(*tasks)
        finally:
            watch.cancel()

    def _listening(self, port: int) -> None:
        self.port = port
        self._one_ready()

    def _unit_listening(self, unit: str, port: int) -> None:
        self.unit_ports[unit] = port
        self._one_ready()

    def _one_ready(self) -> None:
        self._waiting -= 1
        if self._waiting <= 0:
            self.ready.set()

    def stop(self) -> None:
        """Ask the server to stop (thread-safe); :meth:`run` then returns."""
        for server in self._servers:
            server.should_exit = True
