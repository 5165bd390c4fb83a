"""Pause the cyclic garbage collector for a whole batch command (the CLI's validate,
generate, render and plan: their entry points, never the library below them).

Why: loading and generating 1,000 specs allocates millions of small dicts,
lists and pydantic objects, none of them garbage cycles. The collector would
rescan the growing heap again and again (a quarter of the run time in
benchmarks/generate.py) without ever freeing anything; reference counting
still frees everything as usual while it is paused.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


def paused(fn: F) -> F:
    @functools.wraps(fn)
    def run(*args, **kwargs):
        if not gc.isenabled():  # an outer pass already paused it
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()

    return run  # type: ignore[return-value]
