"""How the ``disagg`` process uses Python's garbage collector: set for a run while it goes, and
kept out of the way of the interpreter's exit; and how the process ends."""

from __future__ import annotations

import atexit
import gc
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

GC_YOUNG_OBJECTS = 10_000
"""Container allocations between young-generation GC passes during a run (CPython's default is
700): a run allocates many short-lived messages and rows, and each pass has a fixed cost."""


@contextmanager
def run_gc() -> Iterator[None]:
    """The garbage collector set for one run, and restored after it: what exists before the run
    (modules, the config, the parsed trace) is frozen, so full passes skip it, and young passes
    come every ``GC_YOUNG_OBJECTS`` allocations. Halves the run's GC time (Mooncake trace:
    0.19 -> 0.08 s CPU) for a few MB at most."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_OBJECTS, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


@contextmanager
def no_collection() -> Iterator[None]:
    """No garbage collection inside (turned back on after, if it was on): for loading a run's
    code and config, which make many objects and next to no garbage, so the passes that would
    come every 700 allocations free nothing (~1 % of a small run's CPU). What exists on leaving
    is frozen (``gc.freeze``) before collection resumes: the code and config live as long as the
    process, and otherwise the first allocation after would start a pass over all of them
    (~15 ms CPU of the command line's run, for nothing: :func:`run_gc` freezes them next)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def freeze_for_exit() -> None:
    """Leave every object that exists now out of the collector's passes (``gc.freeze``), in a
    process about to end: the interpreter's exit then frees modules and objects without full
    collections over them all (what is left in reference cycles is not freed one by one: the
    process's end releases it). Saves a run 70 ms CPU of a small run's 0.6 s, 0.15 s of the
    Mooncake trace's 5 s. Only once the command's output is complete (written and closed):
    finalizers of objects in cycles do not run."""
    gc.freeze()


def exit_now(code: int) -> None:
    """End the process with exit status ``code``, once the exit handlers (``atexit``) have run
    and the standard streams are flushed, without the interpreter's teardown: freeing its
    ≈ 600 modules one by one and everything they hold costs ≈ 15-25 ms of a ``disagg run``, for
    nothing a finished command needs (its output is written and closed). Returns instead, with
    what exists frozen for the interpreter's usual exit (:func:`freeze_for_exit`), while another
    thread still runs, which the interpreter would wait for, or if a stream cannot be flushed,
    which the interpreter reports."""
    if threading.active_count() == 1:
        atexit._run_exitfuncs()
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed pipe or stream: the usual exit says so
            pass
        else:
            os._exit(code)
    freeze_for_exit()
