"""The ``disagg`` command line: run, validate, trace, catalog (compare, report, capacity, plan live
in their own modules).

Exit codes: 0 success; 2 bad input (one message naming the field, the value and what is allowed;
nothing written); 1 internal error (or a run that lost a control-plane component: its results so
far are written); 130 interrupted (Ctrl-C or SIGTERM; results so far are written). ``--debug``
shows the traceback of an internal error.

What a command needs beyond the parser (the engines, pyarrow, scipy, matplotlib, FastAPI, Ray) is
imported inside that command, so ``disagg --help`` and ``disagg validate`` start in a fraction of a
second (tests/test_cli_usability.py checks which modules they load).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from disagg.experiments.cli.gc_rules import exit_now, no_collection, run_gc

# OpenBLAS, loaded with numpy, starts a worker thread per core (~25-35 ms CPU a command) for
# linear algebra disagg never does: one thread, unless the user set it
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# the command line's code: ~80k objects and no garbage, so no collector pass during these
# imports, and they are frozen out of later passes (see no_collection; ~20 ms CPU a command)
with no_collection():
    # numpy first, while the call stack is shallow: deeper, numpy._typing's typing calls straddle
    # a CPython 3.11 frame-stack chunk's end (~3,300 mmap/munmap pairs, ~30 ms CPU a command)
    import numpy  # noqa: F401
    from rich.console import Console

    from disagg.actors.engines.stop import StoppedBeforeStart
    from disagg.cluster.catalog_checks import efficiency_warnings
    from disagg.cluster.errors import ComponentFailed, ConfigError, OutputInTheWay, OutputWriteError
    from disagg.experiments.cli.accuracy import add_command as add_accuracy
    from disagg.experiments.cli.calibrate import add_command as add_calibrate
    from disagg.experiments.cli.capacity import add_command as add_capacity
    from disagg.experiments.cli.common import (
        EXIT_BAD_INPUT,
        EXIT_INTERNAL,
        EXIT_OK,
        Parser,
        add_override_flags,
        load,
        output_path,
    )
    from disagg.experiments.cli.compare import add_commands
    from disagg.experiments.cli.interrupts import EXIT_INTERRUPTED, graceful_stop
    from disagg.experiments.cli.plan import add_command as add_plan
    from disagg.experiments.cli.serve import add_command as add_serve
    from disagg.experiments.results.lock import output_locked
    from disagg.experiments.view.console import (
        assumption_table,
        calibration_table,
        hardware_table,
        model_table,
        summary_table,
    )
    from disagg.experiments.view.runner import live_interval, run_progress
    from disagg.experiments.view.tabular import FORMATS, print_tables

if TYPE_CHECKING:
    from disagg.experiments.run import RunResult


def cmd_validate(args: argparse.Namespace, console: Console) -> int:
    exp = load(args)
    pools = ", ".join(f"{p.units} x {p.chips_per_unit} {p.hardware.name} {kind}"
                      for kind, p in exp.pools.items())
    console.print(
        f"[green]ok[/green] {args.experiment}: {exp.experiment.name} — {exp.model.name}, "
        f"{pools}, engine {exp.experiment.engine}"
    )
    for line in efficiency_warnings(exp):
        console.print(line, markup=False, soft_wrap=True)
    return EXIT_OK


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    with no_collection():
        from disagg.experiments.run import run_experiment  # deferred: see the module docstring

        exp = load(args)
    out_dir = output_path(args, exp)
    with run_gc(), output_locked("--out" if args.out else "output.dir", out_dir):
        output_path(args, exp)  # again, now that no other disagg can be writing it
        console.print(f"disagg: running {exp.experiment.name} on the {exp.experiment.engine} "
                      f"engine ({exp.experiment.duration_s:g} emu s of arrivals, dilation "
                      f"{exp.experiment.dilation:g}) -> {out_dir}")
        started = time.time()
        live = console.is_terminal if args.live is None else args.live
        with graceful_stop() as stop, run_progress(console, exp, live) as progress:
            result = run_experiment(exp, out_dir, address=args.address, progress=progress,
                                    live_s=live_interval(live), stop=stop, checked=True)
            progress.finish(result.summary)  # the last frame agrees with the summary below
    console.print(summary_table(result.summary))
    if result.summary["submitted"] == 0:
        console.print("note: the workload produced no requests within experiment.duration_s")
    console.print(f"results in {result.out_dir} ({time.time() - started:.1f} s wall)")
    return _run_exit(result)


def _run_exit(result: RunResult) -> int:
    """1 if a control-plane component was lost, 130 if interrupted, else 0 (results written)."""
    lost = result.raw.get("component_lost")
    if lost == "gcs":
        print(f"disagg: error: the Ray cluster's control store (GCS) is gone; results so far in "
              f"{result.out_dir}", file=sys.stderr)
        return EXIT_INTERNAL
    if lost:
        units = result.raw.get("lost_units") or []
        also = f" (units lost too: {', '.join(units)})" if units else ""
        print(f"disagg: error: the emulator's {lost} component was lost mid-run{also}; the run ended "
              f"early, unfinished requests are 'failed' with reason emulator_component_lost; "
              f"results so far in {result.out_dir}", file=sys.stderr)
        return EXIT_INTERNAL
    if result.interrupted:
        print(f"disagg: {result.raw['unfinished']['reason']}: results so far in "
              f"{result.out_dir}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def cmd_trace(args: argparse.Namespace, console: Console) -> int:
    from disagg.experiments.results.timeline import TraceFormatError, chrome_trace, read_event_log

    out = Path(args.chrome)
    if out.is_dir():
        raise ConfigError(f"--chrome: value '{out}' is a folder; allowed: a file path")
    if (out.exists() or out.is_symlink()) and not args.force:
        raise ConfigError(f"--chrome: value '{out}' already exists; allowed: a new file, or "
                          "--force to replace it")
    src = Path(args.results) / "events.msgpack"
    if not src.is_file():
        raise ConfigError(f"argument 'DIR': {args.results} has no events.msgpack; run the "
                          f"experiment with output.event_log = true")
    try:
        header, events = read_event_log(src)
    except (TraceFormatError, ValueError) as e:
        raise ConfigError(f"argument 'DIR': {e}") from None
    trace = chrome_trace(events, header.get("experiment", ""))
    tmp = out.with_name(f".{out.name}.tmp")  # written whole, then renamed into place
    try:
        tmp.write_text(json.dumps(trace))
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputWriteError(out, e) from None
    console.print(f"{len(events)} events -> {args.chrome} (open in ui.perfetto.dev)")
    return EXIT_OK


def cmd_check(args: argparse.Namespace, console: Console) -> int:
    """Check a results folder's invariants: 0 when all hold, 1 with one line per violation."""
    from disagg.experiments.results.invariants import check_folder

    violations = check_folder(args.results)
    for v in violations:
        print(v.describe())
    if violations:
        print(f"disagg: {len(violations)} invariant violation(s) in {args.results}",
              file=sys.stderr)
        return EXIT_INTERNAL
    console.print(f"ok {args.results}: every invariant holds", soft_wrap=True)
    return EXIT_OK


def cmd_catalog(args: argparse.Namespace, console: Console) -> int:
    tables = [assumption_table()] if args.assumptions else [model_table(), hardware_table(),
                                                             calibration_table()]
    print_tables(console, tables, args.format)
    return EXIT_OK


def _add_run(sub: Any) -> None:
    """``disagg run``: its arguments and flags."""
    run = sub.add_parser("run", help="run an experiment and write its results folder")
    run.add_argument("experiment", help="experiment TOML file")
    run.add_argument("--engine", choices=["ray", "virtual"])
    run.add_argument("--out", help="results folder (default: the experiment's output.dir); "
                     "must not exist")
    run.add_argument("--force", action="store_true",
                     help="replace the output folder if disagg wrote it (its results files; "
                     "files you added there are kept; nothing else is ever replaced)")
    run.add_argument("--dilation", type=float, help="wall seconds per emu second")
    run.add_argument("--seed", type=int)
    run.add_argument("--duration", type=float, help="emu seconds of arrivals")
    run.add_argument("--address", help="Ray cluster address: auto, HOST:PORT or ray://... "
                     "(default: RAY_ADDRESS, else an embedded local Ray)")
    run.add_argument("--ship-code", action="store_true",
                     help="send the disagg package to the cluster's nodes (runtime_env py_modules)")
    run.add_argument("--event-log", action="store_true",
                     help="also record every event in events.msgpack (output.event_log = true; "
                          "convert with disagg trace)")
    run.add_argument("--live", action=argparse.BooleanOptionalAction, default=None,
                     help="live dashboard (default: on when stdout is a terminal)")
    add_override_flags(run)
    run.set_defaults(func=cmd_run)


def _add_inspect(sub: Any) -> None:
    """``disagg validate``, ``trace``, ``check`` and ``catalog``: commands that look at an
    experiment file, a results folder or the catalog without running anything."""
    val = sub.add_parser("validate", help="check an experiment file without running it")
    val.add_argument("experiment")
    add_override_flags(val, rate=True)
    val.set_defaults(func=cmd_validate)
    trace = sub.add_parser("trace", help="convert a run's events.msgpack to a Chrome trace")
    trace.add_argument("results", metavar="DIR", help="results folder with events.msgpack")
    trace.add_argument("--chrome", required=True, metavar="FILE",
                       help="write Chrome trace JSON (Perfetto, chrome://tracing) here")
    trace.add_argument("--force", action="store_true", help="replace FILE if it exists")
    trace.set_defaults(func=cmd_trace)
    check = sub.add_parser("check", help="check a results folder's invariants "
                           "(batch caps, KV capacity, ledger, conservation, causality)")
    check.add_argument("results", metavar="DIR", help="results folder written by disagg run")
    check.set_defaults(func=cmd_check)
    cat = sub.add_parser("catalog", help="print the model and hardware catalog with sources")
    cat.add_argument("--format", choices=FORMATS, default="auto",
                     help="table, plain (column: value lines), csv or json; auto: table on a wide "
                          "terminal, plain on a narrow one, csv when piped")
    cat.add_argument("--assumptions", action="store_true",
                     help="print only the unpublished constants: low / default / high and why")
    cat.set_defaults(func=cmd_catalog)


def build_parser() -> argparse.ArgumentParser:
    """The ``disagg`` argument parser with every subcommand, in the order ``--help`` lists them."""
    parser = Parser(prog="disagg", description="Emulate disaggregated LLM-inference clusters.")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an internal error")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    _add_run(sub)
    _add_inspect(sub)
    add_calibrate(sub)
    add_accuracy(sub)
    add_commands(sub)
    add_capacity(sub)
    add_serve(sub)
    add_plan(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``disagg`` console script: the exit code of the command ``argv``
    names. Without ``argv`` (this process's own command line: the console script, ``python -m``)
    the process ends here, without the interpreter's teardown, or when it returns if a thread
    still runs (:func:`exit_now`)."""
    code = _command(argv)
    if argv is None:
        exit_now(code)
    return code


def _command(argv: Sequence[str] | None) -> int:
    """The exit code of the command ``argv`` names, each error turned into its exit code."""
    args = build_parser().parse_args(argv)
    console = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    try:
        return int(args.func(args, console))
    except ConfigError as e:
        err.print(f"disagg: error: {e}", markup=False, soft_wrap=True)
        return EXIT_BAD_INPUT
    except StoppedBeforeStart as e:
        err.print(f"disagg: {e}", markup=False, soft_wrap=True)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        err.print("disagg: interrupted: exited at once (any results folder is either as it was "
                  "before or complete)")
        return EXIT_INTERRUPTED
    # disk full, read-only, a file in the way...: the temporary folder is removed
    except (OutputWriteError, OutputInTheWay) as e:
        err.print(f"disagg: error: {e}", markup=False, soft_wrap=True)
        return EXIT_INTERNAL
    except ComponentFailed as e:  # the run ended; the results reached are written
        result = getattr(e, "result", None)
        where = "" if result is None or result.out_dir is None else \
            f"; results so far in {result.out_dir}"
        err.print(f"disagg: error: {e}{where}", markup=False, soft_wrap=True)
        return EXIT_INTERNAL
    except Exception as e:  # noqa: BLE001 - the last line of defence: say what broke
        if args.debug or os.environ.get("DISAGG_DEBUG"):
            err.print(traceback.format_exc(), markup=False, end="")
        err.print(f"disagg: internal error: {type(e).__name__}: {e}", markup=False)
        if not args.debug:
            err.print("disagg: run again with --debug to see the traceback", markup=False)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
