"""Pool members loaded on demand (a pool's `onDemand`): many models, few in memory.

A member loads on its first request, which waits for it up to `loadSeconds` (then 503
with Retry-After; the load goes on for the next one). Loaded members are kept under the
pool's memory request, less what the server itself took before loading any: to make
room, the least recently used members that serve nothing at the moment are unloaded
first. A member idle for `unloadAfterIdleSeconds` is unloaded too.

A member's size is counted before it loads as its artifacts' size on disk times
SIZE_FACTOR (at least MIN_SIZE each), and once loaded as the larger of that and the
resident memory its load added. Loads run one at a time on their own thread, so that
measure is the model's, and a load never holds up the event loop. The first load of each
runtime also imports its libraries, which stay when the model goes: what it adds beyond
its count is the server's, taken from the budget for good.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from modelops_runtime import metrics, objectstore
from modelops_runtime.config import OnDemandConfig
from modelops_runtime.errors import Unavailable
from modelops_runtime.registry import Registry, ServedModel, resolve_artifact

SIZE_FACTOR = 2
"""Memory a model takes per byte of its artifact, before it is measured (ModelMesh's
estimate is of this kind too)."""
MIN_SIZE = 1024 * 1024
"""What a version is counted at, however small its file: the objects around it."""
PAGE = os.sysconf("SC_PAGE_SIZE")


def resident() -> int:
    """This process's resident memory now, in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


class NoRoom(Exception):
    pass


class Demand:
    def __init__(self, registry: Registry, config: OnDemandConfig, memory: int):
        self.registry, self.config, self.memory = registry, config, memory
        self.loader = ThreadPoolExecutor(1, thread_name_prefix="load-on-demand")
        self.pending: dict[str, asyncio.Future[None]] = {}
        self.budget: int | None = None  # known at the first load, once start-up is over
        self.loaded_bytes = 0
        self.runtimes: set[str] = set()  # whose libraries are imported
        self._lock = threading.Lock()  # the loaded set, between loader and sweeper
        metrics.POOL_LOADED_BYTES.set_function(lambda: float(self.loaded_bytes))
        metrics.POOL_LOADED.set_function(
            lambda: float(sum(1 for s in registry.models.values() if s.versions)))

    # -- on the event loop --------------------------------------------------------------
    async def ensure(self, name: str) -> None:
        """The model is loaded when this returns (or raises Unavailable, saying why)."""
        served = self.registry.served(name)
        served.last_used = time.monotonic()
        if served.versions:
            return
        future = self.pending.get(name)
        if future is None:
            future = asyncio.get_running_loop().run_in_executor(self.loader, self._load, name)
            self.pending[name] = future
            future.add_done_callback(lambda _: self.pending.pop(name, None))
        try:
            await asyncio.wait_for(asyncio.shield(future), self.config.loadSeconds)
        except TimeoutError:
            raise Unavailable(f"model {name!r} is loading (over {self.config.loadSeconds} s "
                              "so far); retry shortly", retry_after=1) from None
        except NoRoom as exc:
            raise Unavailable(str(exc), retry_after=1) from None
        served.last_used = time.monotonic()

    async def sweep_idle(self) -> None:
        """Unloads the members idle past `unloadAfterIdleSeconds`, now and then."""
        idle = self.config.unloadAfterIdleSeconds
        if idle is None:
            return
        while True:
            await asyncio.sleep(min(idle / 2, 30.0))
            cutoff = time.monotonic() - idle
            for name, served in list(self.registry.models.items()):
                if served.versions and served.in_flight == 0 and served.last_used < cutoff:
                    await asyncio.get_running_loop().run_in_executor(
                        self.loader, self._unload, name, "idle")

    def stop(self) -> None:
        self.loader.shutdown(wait=False, cancel_futures=True)

    # -- on the loader thread -------------------------------------------------------------
    def size(self, served: ServedModel) -> int:
        """What a member is counted at before it loads."""
        total = 0
        for version in served.config.versions:
            on_disk = 0
            uri = version.artifact or ""
            if uri and not uri.startswith(objectstore.SCHEME):  # not fetched to count it
                path = resolve_artifact(uri, version.sha256, self.registry.shared_root)
                on_disk = path.stat().st_size if path and Path(path).is_file() else 0
            total += max(on_disk * SIZE_FACTOR, MIN_SIZE)
        return total

    def _load(self, name: str) -> None:
        served = self.registry.models[name]
        if served.versions:
            return
        if self.budget is None:
            self.budget = self.memory - resident()
            metrics.POOL_BUDGET_BYTES.set(self.budget)
        size = self.size(served)
        self._make_room(size, name)
        before = resident()
        self.registry.load(name, on_demand=True)
        if not served.versions:
            return  # failed: its state and reason say why
        grown = resident() - before
        if served.config.runtime not in self.runtimes:  # its libraries came with it
            self.runtimes.add(served.config.runtime)
            self.budget -= max(0, grown - size)
            metrics.POOL_BUDGET_BYTES.set(self.budget)
            grown = size
        served.size = max(size, grown)
        reason = "first" if served.loads == 0 else served.unloaded_for
        served.loads += 1
        metrics.MODEL_LOADS.labels(name, reason).inc()
        with self._lock:
            self.loaded_bytes += served.size
        self._make_room(0, name)  # it measured more than it was counted at

    def _make_room(self, size: int, keep: str) -> None:
        """Unloads the least recently used idle members until `size` more fits."""
        assert self.budget is not None
        if size > self.budget:
            raise NoRoom(f"model {keep!r} needs about {size >> 20} MiB, more than the "
                         f"pool's memory leaves its models ({max(self.budget, 0) >> 20} MiB)")
        while self.loaded_bytes + size > self.budget:
            idle = [(s.last_used, n) for n, s in self.registry.models.items()
                    if s.versions and n != keep and s.in_flight == 0]
            if not idle:
                raise NoRoom(f"the pool's memory is taken by models serving requests now; "
                             f"model {keep!r} cannot load yet")
            self._unload(min(idle)[1], "memory")

    def _unload(self, name: str, reason: str) -> None:
        served = self.registry.models[name]
        if not served.versions:
            return
        self.registry.unload(name)
        served.unloaded_for = "evicted" if reason == "memory" else "idle"
        metrics.MODEL_EVICTIONS.labels(name, reason).inc()
        with self._lock:
            self.loaded_bytes -= served.size
        served.size = 0
