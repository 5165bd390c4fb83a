"""Where a model version's calls run: inline on the event loop, or on a worker thread.

A model whose calls take under INLINE_SECONDS on average runs inline, where a thread
hop would cost more than the prediction; a slower one runs on a worker thread, so it
never blocks health checks or the other models of a pool. Each loaded version keeps
one `CallTiming`, which learns its average from the calls it times.
"""

from __future__ import annotations

import dataclasses
import time

INLINE_SECONDS = 0.002  # models faster than this on average run on the event loop
PROBE_SECONDS = 2.0  # how often a model on the worker threads is timed on the loop again
PROBE_CEILING = 0.05
"""A model slower than this on the worker threads is never timed on the loop: waiting for
the GIL inflates a fast call to milliseconds, not to this, and a probe of a truly slow
model would block every request of the server (a 5 s call, every PROBE_SECONDS)."""
CALIBRATION = 8  # a version's first calls are timed wherever they run


@dataclasses.dataclass
class CallTiming:
    average: float = float("inf")  # moving average of a call's seconds; unknown at first
    fast: bool = False
    probed: float = dataclasses.field(default_factory=lambda: time.monotonic())
    """When a model on the worker threads was last timed on the loop."""
    calls: int = 0

    def inline(self) -> bool:
        """Run the next call on the loop: a fast model, or a probe that is due."""
        return self.fast or (self.average < PROBE_CEILING and self._probe_due())

    def _probe_due(self) -> bool:
        """Time on the loop, once every PROBE_SECONDS, a model the worker threads run:
        there its calls look slower than they are (they wait for the GIL the loop holds),
        so timings from there alone would keep a fast model off the loop for good."""
        now = time.monotonic()
        if now - self.probed < PROBE_SECONDS:
            return False
        self.probed = now
        return True

    def observe(self, seconds: float, inline: bool) -> None:
        """A call's seconds: the first CALIBRATION calls wherever they ran, then those on
        the loop (a probe starts the average afresh)."""
        self.calls += 1
        if self.average == float("inf") or (inline and not self.fast):
            self.average = seconds
        elif inline or self.calls <= CALIBRATION:
            self.average = 0.9 * self.average + 0.1 * seconds
        self.fast = self.average < INLINE_SECONDS
