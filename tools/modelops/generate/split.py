"""Run half of a batch in a forked child process: the generator's second core.

Why: `modelops generate --check` on 1,000 specs spent 1.06 s making, comparing and
writing overlays in one process and 0.62 s with a forked child taking every other
overlay (benchmarks/generate.py). Forking copies the loaded repository for free, and
only a small picklable result comes back. Used only where it is safe: two cores or more,
`fork` available, and no other thread whose locks a child could inherit held.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor

_INHERITED: Callable[[], object] | None = None
"""The work of the process being forked: it inherits it (and the loaded repository it
reaches) with the rest of the parent's memory, rather than receiving a pickled copy."""


def may_fork() -> bool:
    return hasattr(os, "fork") and (os.cpu_count() or 1) > 1 and threading.active_count() == 1


def _run_inherited() -> object:
    assert _INHERITED is not None, "only called in the process forked for it"
    return _INHERITED()


@contextlib.contextmanager
def in_child(work: Callable[[], object]) -> Iterator[Future[object]]:
    """Start `work` in a forked process at once; its future holds the (picklable) result,
    or the exception it raised. Leaving the block waits for the child and its pool's
    manager thread: a pool left to shut down at interpreter exit races that thread for
    its wake-up pipe and can print "Bad file descriptor" after the command's output."""
    global _INHERITED
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as executor:
        _INHERITED = work
        try:
            future = executor.submit(_run_inherited)  # the process is forked here
        finally:
            _INHERITED = None
        yield future
