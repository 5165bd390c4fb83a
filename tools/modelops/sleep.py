"""`modelops serve --scale-to-zero`: models that sleep, on this machine, by the rule KEDA
applies in the cluster.

A model whose spec sets `autoscaling.minReplicas: 0` is not loaded by the local server:
that server is its front door and relays every request through the model's queue. This
supervisor starts a runner for it (the same server, serving that model alone) as soon as
more requests wait or run than `activationQueueDepth`, counted as KEDA's rabbitmq scaler
counts them over the broker's management API (ready plus unacknowledged), and stops it
with SIGTERM (a drain) once `idleSeconds` have passed with that count at the threshold or
below and nothing unacknowledged. A runner that dies is started again while work waits;
the broker hands its unacknowledged requests out again, so none is lost.

The management API's counts lag: measured here, a new queue's first count shows about
4 s after its first message, and an acknowledgement about 2 s late. KEDA reads the same
counts, which is why its cooldown should outlast them; locally idle periods are seconds,
so a runner is also asked (its metrics) what it holds, one that is still waking (not yet
consuming) is never put to sleep, and its first look at its queue counts as activity: it
gets a whole idle period to take the work it woke for.

Locally a sleeping model wakes to one runner; more replicas under load are the cluster
HPA's part (KEDA's `targetQueueDepth`). Runners are forked from a warm process that has
already imported the server and the models' libraries (multiprocessing's forkserver), so
a wake costs a fork and the model's load, not the imports: scikit-learn alone takes
1.7 s to import on the machines this is measured on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
import threading
import time
from multiprocessing.process import BaseProcess
from pathlib import Path
from urllib.parse import quote

import httpx
from prometheus_client.parser import text_string_to_metric_families

from modelops.broker import free_port
from modelops.spec import Autoscaling
from modelops_runtime import queues
from modelops_runtime.config import ModelConfig, ServerConfig

WARM = ("modelops_runtime.__main__", "modelops_runtime.server", "modelops_runtime.amqp.front",
        "modelops_runtime.amqp.runner")
LIBRARIES = {"sklearn": ("joblib", "sklearn.ensemble", "sklearn.linear_model",
                         "sklearn.pipeline", "sklearn.tree"),
             "onnx": ("onnxruntime",), "python": ("joblib",)}
"""What a runner of each runtime imports, imported once in the warm process."""
POLL_SECONDS = 0.25
"""How often the queues are counted (KEDA's pollingInterval; the cluster's is 5 s)."""
STOP_SECONDS = 60.0
"""A runner still running this long after SIGTERM is killed."""


@dataclasses.dataclass
class Sleeper:
    """One model that sleeps, and its runner process while it is awake."""

    model: ModelConfig  # as its runner serves it: loaded, no relay
    rule: Autoscaling
    process: BaseProcess | None = None
    active_at: float | None = None  # when its count was last above the threshold
    stopping: bool = False
    wakes: int = 0
    woken_at: float = 0.0
    consuming: bool = False  # its runner has started taking work since it woke
    port: int = 0  # its HTTP port: its metrics say what it holds

    @property
    def name(self) -> str:
        return self.model.name

    def queues(self) -> list[str]:
        return [queues.queue_name(self.name, v.name) for v in self.model.versions]

    def awake(self) -> bool:
        return self.process is not None and self.process.is_alive()


class Supervisor:
    def __init__(self, sleepers: list[Sleeper], broker_url: str, management_url: str,
                 shared_root: Path, folder: Path, credentials: tuple[str, str] = ("guest",
                                                                                   "guest")):
        self.sleepers = {s.name: s for s in sleepers}
        self.broker_url, self.shared_root, self.folder = broker_url, shared_root, folder
        self.management = httpx.Client(base_url=management_url, auth=credentials, timeout=2)
        self._nudged: set[str] = set()
        self._wake = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sleep-supervisor", daemon=True)
        self._forks = multiprocessing.get_context("forkserver")

    # -- what the front door and the CLI call ---------------------------------------------
    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        runtimes = {s.model.runtime for s in self.sleepers.values()}
        self._forks.set_forkserver_preload(
            [*WARM, *(lib for r in sorted(runtimes) for lib in LIBRARIES.get(r, ()))])
        multiprocessing.forkserver.ensure_running()  # warm now, not at the first wake
        self._thread.start()

    def nudge(self, name: str) -> None:
        """A request was queued for `name`: count again now rather than at the next poll
        (the front door knows of the work before the broker's counts show it)."""
        if name in self.sleepers:
            self._nudged.add(name)
            self._wake.set()

    def stop(self) -> None:
        self._done.set()
        self._wake.set()
        self._thread.join(10)
        for sleeper in self.sleepers.values():
            if sleeper.awake():
                self._put_to_sleep(sleeper)
        for sleeper in self.sleepers.values():
            if sleeper.process is not None:
                _reap(sleeper.process)
        self.management.close()

    # -- the rule ---------------------------------------------------------------------------
    def count(self, sleeper: Sleeper) -> int | None:
        """Requests waiting or running for the model (None: the broker did not say)."""
        total = 0
        for name in sleeper.queues():
            try:
                answer = self.management.get(f"/api/queues/%2F/{quote(name, safe='')}")
            except httpx.HTTPError:
                return None
            if answer.status_code == 404:  # not declared yet: nothing has been sent
                continue
            if answer.status_code != 200:
                return None
            found = answer.json()
            total += int(found.get("messages_ready", 0)) + int(
                found.get("messages_unacknowledged", 0))
        return total

    def holds(self, sleeper: Sleeper) -> int | None:
        """Requests its runner has taken and not acknowledged; None while it is not
        consuming yet (waking) or does not answer."""
        try:
            text = httpx.get(f"http://127.0.0.1:{sleeper.port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return None
        found = {sample.name: sample.value for family in text_string_to_metric_families(text)
                 for sample in family.samples}
        if not found.get("modelops_async_consumers"):
            return None
        return int(found.get("modelops_async_in_hand", 0))

    def step(self) -> None:
        """One look at every model: wake it, keep it, or put it to sleep."""
        nudged, self._nudged = self._nudged, set()
        now = time.monotonic()
        for sleeper in self.sleepers.values():
            count = self.count(sleeper)
            held = self.holds(sleeper) if sleeper.awake() else 0
            threshold = sleeper.rule.activationQueueDepth
            started = held is not None and sleeper.awake() and not sleeper.consuming
            if started:  # awake at last: the work it woke for may not be in its hands yet
                sleeper.consuming = True
            if started or sleeper.name in nudged or (
                    count is not None and count > threshold) or (
                    held is not None and held > threshold):
                sleeper.active_at = now
            if sleeper.process is not None and not sleeper.awake():
                if not sleeper.stopping:
                    print(f"modelops serve: {sleeper.name}'s runner exited with "
                          f"{sleeper.process.exitcode}", file=sys.stderr, flush=True)
                sleeper.process, sleeper.stopping = None, False
            recent = sleeper.active_at is not None and (
                now - sleeper.active_at < sleeper.rule.idleSeconds)
            if recent and sleeper.process is None:
                self._launch(sleeper)
            elif not recent and count == 0 and held == 0 and sleeper.awake() \
                    and not sleeper.stopping:
                self._put_to_sleep(sleeper)

    def _loop(self) -> None:
        while not self._done.is_set():
            try:
                self.step()
            except Exception as exc:  # noqa: BLE001  # the supervisor must outlive any one look
                print(f"modelops serve: supervisor: {type(exc).__name__}: {exc}",
                      file=sys.stderr, flush=True)
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()

    # -- runners ------------------------------------------------------------------------------
    def _launch(self, sleeper: Sleeper) -> None:
        config = self.folder / f"{sleeper.name}.yaml"
        config.write_text(ServerConfig(server=f"{sleeper.name}-runner", placement="dedicated",
                                       models=[sleeper.model]).model_dump_json())
        sleeper.port = free_port()
        environment = {"MODELOPS_CONFIG": str(config),
                       "MODELOPS_BROKER_URL": self.broker_url,
                       "MODELOPS_HOST": "127.0.0.1", "MODELOPS_PORT": str(sleeper.port),
                       "MODELOPS_GRPC_PORT": "0",
                       "MODELOPS_SHARED_ROOT": str(self.shared_root)}
        sleeper.process = self._forks.Process(target=_serve, args=(environment,),
                                              name=f"{sleeper.name}-runner", daemon=False)
        sleeper.process.start()
        sleeper.wakes += 1
        sleeper.woken_at = time.monotonic()
        sleeper.consuming = False
        print(f"modelops serve: waking {sleeper.name} (pid {sleeper.process.pid})",
              file=sys.stderr, flush=True)

    def _put_to_sleep(self, sleeper: Sleeper) -> None:
        assert sleeper.process is not None
        print(f"modelops serve: {sleeper.name} idle for {sleeper.rule.idleSeconds} s: "
              "asleep", file=sys.stderr, flush=True)
        sleeper.stopping = True
        with contextlib.suppress(ProcessLookupError, TypeError):  # TypeError: gone already
            os.kill(sleeper.process.pid, signal.SIGTERM)  # type: ignore[arg-type]


def _reap(process: BaseProcess) -> None:
    process.join(STOP_SECONDS)
    if process.is_alive():
        process.kill()
        process.join(10)


def _serve(environment: dict[str, str]) -> None:
    """A runner, in a process forked from the warm one: the server's own entry point."""
    os.environ.update(environment)
    from modelops_runtime.__main__ import main

    main()
