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
from disagg.experiments.serve.app import ServeSettings, create_app

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

    def run(self) -> RunResult:
        """Start the cluster, serve until stopped, stop the cluster and write the results;
        raises :class:`ComponentFailed` (once they are written) if a component failed, and
        :class:`StoppedBeforeStart` for a stop while the cluster started (nothing written)."""
        with _signals_as_stop():
            self._start()
            try:
                self._serve_until_stopped()
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

    def _serve_until_stopped(self) -> None:
        app = create_app(self.cluster, self.options.settings)  # type: ignore[arg-type]
        config = uvicorn.Config(app, host=self.options.host, port=self.options.port,
                                log_level="warning", timeout_graceful_shutdown=GRACEFUL_S,
                                lifespan="off", access_log=False)
        self._server = ReadyServer(config, self._listening)
        try:
            asyncio.run(self._serve(self._server))
        except (KeyboardInterrupt, _Stopped):
            pass  # Ctrl-C, SIGTERM or SIGHUP: uvicorn shut down gracefully, then re-raised it
        except SystemExit:  # uvicorn exits when it cannot bind
            raise ListenError(f"argument '--port': cannot listen on {self.options.host}:"
                              f"{self.options.port} (in use, or not allowed)") from None

    async def _serve(self, server: ReadyServer) -> None:
        """Serve HTTP while watching the cluster for a failed component."""
        watch = asyncio.ensure_future(self.cluster.watch())
        try:
            await server.serve()
        finally:
            watch.cancel()

    def _listening(self, port: int) -> None:
        self.port = port
        self.ready.set()

    def stop(self) -> None:
        """Ask the server to stop (thread-safe); :meth:`run` then returns."""
        if self._server is not None:
            self._server.should_exit = True
