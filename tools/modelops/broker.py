"""A RabbitMQ broker on this machine, for `modelops serve --broker` and the tests.

Debian's rabbitmq-server runs as a user process (not the system service), every port on
127.0.0.1 and chosen free (AMQP, Erlang distribution, epmd), its data in a folder of the
caller's. epmd is started first by us, so that it is our child and stops with the broker
(otherwise Erlang starts it as a daemon that outlives everything).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
INSTALL = "apt-get install rabbitmq-server (`make debian-tools` does)"


class BrokerError(Exception):
    """The broker is not installed or did not start; the message says which."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclasses.dataclass
class LocalBroker:
    folder: Path
    port: int
    process: subprocess.Popen[bytes]
    epmd: subprocess.Popen[bytes]
    environment: dict[str, str]
    management_port: int | None = None
    """The management API's port (what KEDA's rabbitmq scaler reads), when it was asked for."""

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def management_url(self) -> str:
        assert self.management_port is not None, "started without management=True"
        return f"http://127.0.0.1:{self.management_port}"

    def ctl(self, *command: str) -> None:
        """rabbitmqctl against this broker (users, permissions, policies)."""
        subprocess.run([str(SCRIPT.with_name("rabbitmqctl")), *command], check=True,
                       env=self.environment, capture_output=True, timeout=60)

    def vhost(self, name: str) -> str:
        """A new virtual host, for a test of its own: the URL to it."""
        self.ctl("add_vhost", name)
        self.ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{name}"

    def kill(self) -> None:
        """The broker dies at once (kill -9), as in a crash; epmd stays."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def restart(self, timeout: float = 60) -> None:
        """Starts the broker again on the same folder and ports (after kill or stop)."""
        self.process = _launch(self.folder, self.environment)
        _wait_ready(self, timeout)

    def stop(self) -> None:
        for process in (self.process, self.epmd):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)


def _launch(folder: Path, environment: dict[str, str]) -> subprocess.Popen[bytes]:
    log = (folder / "broker.log").open("ab")
    return subprocess.Popen([str(SCRIPT)], env=environment, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def _wait_ready(broker: LocalBroker, timeout: float) -> None:
    """Ready when an AMQP handshake on its port answers (a bare TCP connect is accepted
    before the broker can serve)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if broker.process.poll() is not None:
            tail = (broker.folder / "broker.log").read_text(errors="replace")[-2000:]
            raise BrokerError(f"rabbitmq-server exited with {broker.process.returncode}:\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", broker.port), timeout=1) as s:
                s.sendall(b"AMQP\x00\x00\x09\x01")
                if s.recv(1)[:1] == b"\x01" and (  # a Connection.Start frame
                        broker.management_port is None or _answers(broker.management_port)):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise BrokerError(f"rabbitmq-server did not answer on 127.0.0.1:{broker.port} within "
                      f"{timeout:g} s (log: {broker.folder / 'broker.log'})")


STATISTICS_MS = 250
"""How often the management API's queue counts are refreshed (RabbitMQ's default is
5 s): the local supervisor reads them to decide when a model may sleep."""


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start(folder: Path, timeout: float = 90, management: bool = False) -> LocalBroker:
    """The broker; with `management`, its HTTP API too (queue counts with unacknowledged
    messages, as KEDA's scaler reads them)."""
    if not SCRIPT.exists():
        raise BrokerError(f"RabbitMQ is not installed here ({SCRIPT} is missing): {INSTALL}")
    folder.mkdir(parents=True, exist_ok=True)
    port, dist, epmd_port = free_port(), free_port(), free_port()
    management_port = free_port() if management else None
    (folder / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{port}\n"
        "loopback_users.guest = true\n"
        "log.console = true\nlog.file = false\n" + (
            f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {management_port}\n"
            f"collect_statistics_interval = {STATISTICS_MS}\n" if management else ""))
    (folder / "enabled_plugins").write_text(
        "[rabbitmq_management].\n" if management else "[].\n")
    # A quorum queue reports its counts on its tick (5 s by default), and the management
    # API shows them only from then: counted that late, a new request looks like none.
    (folder / "advanced.config").write_text(
        f"[{{rabbit, [{{quorum_tick_interval, {STATISTICS_MS}}}]}}].\n" if management
        else "[].\n")
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder),
        "LANG": "C.UTF-8",
        "RABBITMQ_NODENAME": f"modelops-{port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist), "ERL_EPMD_PORT": str(epmd_port),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(folder / "advanced.config"),
        "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"), "RABBITMQ_LOG_BASE": str(folder),
        "RABBITMQ_PID_FILE": str(folder / "broker.pid"),
    }
    epmd = subprocess.Popen(["epmd", "-port", str(epmd_port), "-address", "127.0.0.1"],
                            env=environment, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    broker = LocalBroker(folder, port, _launch(folder, environment), epmd, environment,
                         management_port)
    try:
        _wait_ready(broker, timeout)
    except BaseException:
        broker.stop()
        raise
    return broker
