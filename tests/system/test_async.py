"""Asynchronous inference through a real RabbitMQ (Debian's rabbitmq-server, started on
127.0.0.1 by these tests): standard clients through the front door, and the failure
cases the feature is judged on (bad input, a poison request, expiry, a full queue, the
broker down and back, a runner killed under load)."""

from __future__ import annotations

import functools
import json
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from conftest import REPO, examples
from servers import Server, config, model
from tritonclient.utils import triton_to_np_dtype

from modelops.broker import LocalBroker, start
from modelops.repo import load

EXAMPLES = load(examples()).models
ASYNC = {"maxAttempts": 3, "timeoutSeconds": 600, "maxQueued": 10_000, "prefetch": 1,
         "resultRetentionHours": 24}
FLAKY = """
import os, time
from pathlib import Path
from modelops_runtime.model import Model


class Flaky(Model):
    '''x < 0 raises (a poison request); otherwise sleeps DELAY seconds and doubles x.
    Every call is counted in MODELOPS_CALLS, one line per value.'''

    def predict(self, inputs):
        x = inputs["x"]
        with open(os.environ["MODELOPS_CALLS"], "a") as calls:
            calls.write(f"{float(x.ravel()[0])}\\n")
        if (x < 0).any():
            raise RuntimeError("negative input breaks this model")
        time.sleep(float(os.environ.get("MODELOPS_DELAY", "0")))
        return {"y": x * 2}
"""


@pytest.fixture
def start_server(start_server):
    """The servers here, started once ready and connected to their broker."""

    def start(config: dict, **settings) -> Server:
        server = start_server(config, **settings)
        versions = sum(len(m["versions"]) for m in config["models"] if m.get("asynchronous"))
        if versions and settings.get("wait", True) is not None:
            connected(server, versions)
        return server
    return start


def connected(server: Server, versions: int = 1, timeout: float = 30) -> None:
    """Waits until the server consumes each version's queue and its dead letters."""
    deadline = time.monotonic() + timeout
    while f"modelops_async_consumers {2.0 * versions}" not in \
            server.client.get("/metrics").text:
        assert time.monotonic() < deadline, server.stderr.read_text()[-2000:]
        time.sleep(0.05)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    local = start(tmp_path_factory.mktemp("broker"))
    yield local
    local.stop()


@pytest.fixture
def broker_url(broker: LocalBroker, request) -> str:
    """A virtual host of this test's own: no queue is shared between tests."""
    return broker.vhost(re.sub(r"\W", "-", request.node.name)[:60])


def flaky(tmp_path: Path, **asynchronous) -> dict:
    code = tmp_path / "flaky.py"
    code.write_text(FLAKY)
    return model("flaky", "python", versions=[{"name": "v1"}], code=str(code),
                 inputs=[{"name": "x", "datatype": "FP64", "shape": [-1, 1]}],
                 outputs=[{"name": "y", "datatype": "FP64", "shape": [-1, 1]}],
                 concurrency=4, asynchronous={**ASYNC, **asynchronous})


def x(value: float) -> dict:
    return {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 1], "data": [value]}]}


def submit(server: Server, name: str, body: dict, request_id: str,
           prefer: str = "respond-async") -> httpx.Response:
    return server.client.post(f"/v2/models/{name}/infer", json=body,
                              headers={"Prefer": prefer, "X-Request-ID": request_id})


def outcome(server: Server, name: str, request_id: str, timeout: float = 60) -> httpx.Response:
    """The request's answer, once it is no longer 202."""
    deadline = time.monotonic() + timeout
    while True:
        got = server.client.get(f"/v2/models/{name}/async/{request_id}")
        if got.status_code != 202:
            return got
        assert time.monotonic() < deadline, \
            f"{request_id} still pending; server: {server.stderr.read_text()[-3000:]}"
        time.sleep(0.05)


def calls(path: Path) -> list[float]:
    return [float(v) for v in path.read_text().split()] if path.exists() else []


def result_files(shared: Path, name: str) -> list[Path]:
    return sorted((shared / "results" / name).glob("*.result"))


@pytest.fixture(scope="module")
def every_example(tmp_path_factory, shared_root, broker):
    """One pool serving every example model, each with `async` on, and a broker."""
    models = [model(name, spec.obj.spec.runtime, asynchronous=ASYNC,
                    **({"code": str(examples() / f"models/{name}/model.py")}
                       if spec.obj.spec.runtime == "python" else {}))
              for name, spec in EXAMPLES.items()]
    server = Server(tmp_path_factory.mktemp("front"), config(*models), shared_root,
                    broker_url=broker.vhost("examples"))
    server.wait()
    connected(server, sum(len(m["versions"]) for m in models))
    yield server
    server.stop()


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_curl_and_tritonclient_drive_every_example_through_the_front_door(every_example,
                                                                          name):
    server = every_example
    example = EXAMPLES[name].obj.spec.example
    body = example.request.model_dump_json(exclude_none=True)
    synchronous = server.client.post(f"/v2/models/{name}/infer", content=body).json()
    # curl, as the README shows it: 202 and a Location, then the answer there
    shown = subprocess.run(
        ["curl", "-s", "-i", "-H", "Prefer: respond-async", "-H", f"X-Request-ID: curl-{name}",
         "-H", "content-type: application/json", "-d", body,
         f"{server.url}/v2/models/{name}/infer"], capture_output=True, text=True, timeout=30)
    head, _, accepted = shown.stdout.partition("\n\n")  # text mode: \r\n read as \n
    assert head.startswith("HTTP/1.1 202"), shown.stdout
    location = re.search(r"(?im)^location: (\S+)", head).group(1)
    assert location == f"/v2/models/{name}/async/curl-{name}"
    assert json.loads(accepted)["status"] == "queued"
    answered = outcome(server, name, f"curl-{name}")
    assert answered.status_code == 200, answered.text
    assert answered.json()["outputs"] == synchronous["outputs"]
    # tritonclient with its defaults (binary tensors both ways), waiting in the same call
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    metadata = client.get_model_metadata(name)
    sent = {t.name: t for t in example.request.inputs}
    inputs = []
    for tensor in metadata["inputs"]:
        array = np.array(sent[tensor["name"]].data, dtype=triton_to_np_dtype(
            tensor["datatype"])).reshape(sent[tensor["name"]].shape)
        given = triton.InferInput(tensor["name"], list(array.shape), tensor["datatype"])
        given.set_data_from_numpy(array)
        inputs.append(given)
    result = client.infer(name, inputs, headers={"Prefer": "respond-async, wait=30"})
    for output in synchronous["outputs"]:
        got = result.as_numpy(output["name"])
        if output["datatype"] == "BYTES":
            assert [v.decode() for v in got.ravel()] == output["data"]
        else:
            assert np.allclose(got.ravel(), output["data"])
    client.close()


def test_unknown_results_and_sync_only_models(every_example, start_server, broker_url):
    missing = every_example.client.get("/v2/models/iris/async/never-sent")
    assert missing.status_code == 404 and "never submitted" in missing.json()["error"]
    plain = start_server(config(model("wine")), broker_url=broker_url)
    refused = submit(plain, "wine", {"inputs": []}, "r1")
    assert refused.status_code == 400 and "takes no asynchronous requests" in \
        refused.json()["error"]


def test_bad_input_is_answered_once_and_never_retried(tmp_path, start_server, broker_url):
    server = start_server(config(flaky(tmp_path)), broker_url=broker_url,
                          shared=tmp_path, **{"calls": tmp_path / "calls"})
    wrong = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]}
    assert submit(server, "flaky", wrong, "bad-1").status_code == 202
    malformed = submit(server, "flaky", {"inputs": "nope"}, "bad-2")
    assert malformed.status_code == 400  # what cannot be read is refused at the door
    answered = outcome(server, "flaky", "bad-1")
    assert answered.status_code == 400 and "expected 1 features per row, got 2" in \
        answered.json()["error"]
    time.sleep(1)
    assert calls(tmp_path / "calls") == []  # the model never saw it, not once
    assert outcome(server, "flaky", "bad-1").status_code == 400
    metrics = server.client.get("/metrics").text
    assert 'modelops_async_completed_total{model="flaky",status="invalid",version="v1"} 1.0' \
        in metrics


def test_a_poison_request_fails_after_its_attempts_and_its_neighbours_do_not(
        tmp_path, start_server, broker_url):
    server = start_server(config(flaky(tmp_path, maxAttempts=3)), broker_url=broker_url,
                          shared=tmp_path, calls=tmp_path / "calls")
    for i in range(5):
        assert submit(server, "flaky", x(i), f"good-{i}").status_code == 202
        if i == 2:
            assert submit(server, "flaky", x(-1), "poison").status_code == 202
    failed = outcome(server, "flaky", "poison")
    assert failed.status_code == 500
    assert "failed on all 3 attempts" in failed.json()["error"]
    assert "request id poison" in failed.json()["error"]  # as a synchronous 500 says it
    assert "negative input breaks this model" in server.stderr.read_text()  # logged
    for i in range(5):
        assert outcome(server, "flaky", f"good-{i}").json()["outputs"][0]["data"] == [2.0 * i]
    assert calls(tmp_path / "calls").count(-1.0) == 3  # exactly its attempts
    assert [c for c in calls(tmp_path / "calls") if c >= 0] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_an_expired_request_and_a_full_queue(tmp_path, start_server, broker_url):
    server = start_server(config(flaky(tmp_path, timeoutSeconds=1, maxQueued=3)),
                          broker_url=broker_url, shared=tmp_path, calls=tmp_path / "calls",
                          delay=1.5)
    answers = [submit(server, "flaky", x(0), "r-0")]
    deadline = time.monotonic() + 10
    while not calls(tmp_path / "calls"):  # r-0 runs; the others wait behind it
        assert time.monotonic() < deadline, (answers[0].text, outcome(server, "flaky", "r-0").text)
        time.sleep(0.02)
    answers += [submit(server, "flaky", x(i), f"r-{i}") for i in range(1, 8)]
    codes = [a.status_code for a in answers]
    # one runs, three wait (a quorum queue checks its bound after taking a message, so it
    # may hold one more), and the queue refuses the rest at once
    assert codes[:4] == [202] * 4 and codes.count(202) in (4, 5) and codes[-1] == 503, codes
    full = next(a for a in answers if a.status_code == 503)
    assert full.headers["Retry-After"] and "queue of model 'flaky' is full" in \
        full.json()["error"]
    results = [outcome(server, "flaky", f"r-{i}").status_code
               for i, a in enumerate(answers) if a.status_code == 202]
    assert results[0] == 200 and set(results[1:]) == {504}, results
    expired = outcome(server, "flaky", "r-3")
    assert "not started within the 1 s" in expired.json()["error"]
    retried = submit(server, "flaky", x(7), "r-7")  # a refused id may be sent again
    assert retried.status_code == 202


def test_the_backlog_is_counted_for_the_alert(tmp_path, start_server, broker_url):
    """What waits in a version's queue, as the broker counts it, beside its bound."""
    server = start_server(config(flaky(tmp_path, maxQueued=50)), broker_url=broker_url,
                          shared=tmp_path, calls=tmp_path / "calls", delay=3)
    for i in range(6):
        assert submit(server, "flaky", x(i), f"b-{i}").status_code == 202
    waiting = re.compile(r'modelops_async_queue_depth\{model="flaky",queue="waiting",'
                         r'version="v1"\} (\d+)')
    deadline = time.monotonic() + 15
    while not (counted := waiting.search(text := server.client.get("/metrics").text)) or \
            counted.group(1) == "0":
        assert time.monotonic() < deadline, text
        time.sleep(0.2)
    # one runs and five wait; counted every 5 s, while one is answered every 3 s
    assert 3 <= int(counted.group(1)) <= 5, counted.group(0)
    assert 'modelops_async_queue_limit{model="flaky",version="v1"} 50.0' in text
    assert 'modelops_async_queue_depth{model="flaky",queue="dead",version="v1"} 0.0' in text


def test_the_catalog_shows_each_async_versions_queue(tmp_path, start_server, broker_url):
    import asyncio

    from modelops_catalog.app import create_catalog_app
    from modelops_catalog.config import CatalogConfig, CatalogModel, CatalogVersion

    server = start_server(config(flaky(tmp_path)), broker_url=broker_url, shared=tmp_path,
                          calls=tmp_path / "calls", delay=3)
    for i in range(4):
        assert submit(server, "flaky", x(i), f"c-{i}").status_code == 202
    listed = CatalogConfig(environment="local", models=[CatalogModel(
        name="flaky", team="t", description="d", runtime="python", placement="dedicated",
        minReplicas=1, maxReplicas=1, queue="3 attempts, at most 10000 waiting, 600 s to start",
        versions=[CatalogVersion(name="v1", weight=100,
                                 readyUrl=f"{server.url}/v2/models/flaky/versions/v1/ready",
                                 metricsUrl=f"{server.url}/metrics")])])
    app = create_catalog_app(listed)

    async def get(path: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                     base_url="http://catalog") as client:
            return await client.get(path)

    deadline = time.monotonic() + 15
    while not ((queue := asyncio.run(get("/catalog/api/models")).json()[0]["versions"][0][
            "queue"]) and queue.get("waiting")):
        assert time.monotonic() < deadline, queue
        time.sleep(0.2)
    assert 1 <= queue["waiting"] <= 3 and queue["dead"] == 0  # one runs, the rest wait
    page = asyncio.run(get("/catalog")).text
    assert "asynchronous: 3 attempts, at most 10000 waiting" in page
    assert 'id="queue-flaky-v1"' in page


def test_a_resubmitted_request_id_is_queued_and_answered_once(tmp_path, start_server,
                                                              broker_url):
    server = start_server(config(flaky(tmp_path)), broker_url=broker_url, shared=tmp_path,
                          calls=tmp_path / "calls")
    first = submit(server, "flaky", x(1), "same")
    again = submit(server, "flaky", x(1), "same")
    assert first.status_code == again.status_code == 202
    assert first.headers["Location"] == again.headers["Location"]
    assert outcome(server, "flaky", "same").status_code == 200
    time.sleep(0.5)
    assert calls(tmp_path / "calls") == [1.0]
    metrics = server.client.get("/metrics").text
    assert 'modelops_async_submitted_total{model="flaky",version="v1"} 1.0' in metrics


def test_sigterm_finishes_the_request_in_hand(tmp_path, start_server, broker_url):
    server = start_server(config(flaky(tmp_path)), broker_url=broker_url, shared=tmp_path,
                          calls=tmp_path / "calls", delay=1.5)
    assert submit(server, "flaky", x(3), "in-hand").status_code == 202
    deadline = time.monotonic() + 10
    while not calls(tmp_path / "calls"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert server.stop(signal.SIGTERM) == 0
    written = (tmp_path / "results/flaky/in-hand.result").read_bytes()
    assert b'"status":"done"' in written and b'"data":[6.0]' in written


def test_the_broker_down_is_a_503_at_once_and_its_restart_loses_no_request(
        tmp_path, start_server):
    own = start(tmp_path / "broker")  # killed here: the other tests keep theirs
    try:
        server = start_server(config(flaky(tmp_path)), broker_url=own.url, shared=tmp_path,
                              calls=tmp_path / "calls", delay=0.5)
        assert submit(server, "flaky", x(-0.5), "warm").status_code == 202
        assert outcome(server, "flaky", "warm").status_code == 500
        time.sleep(5)  # 3.10.8 can lose a quorum queue declared under a second before a crash
        for i in range(5):  # one in hand, four waiting: every one confirmed by the broker
            assert submit(server, "flaky", x(i), f"kept-{i}").status_code == 202
        own.kill()
        began = time.monotonic()
        down = submit(server, "flaky", x(9), "while-down")
        assert down.status_code == 503 and down.headers["Retry-After"], down.text
        assert time.monotonic() - began < 2  # never a hang
        own.restart()
        for i in range(5):
            answered = outcome(server, "flaky", f"kept-{i}")
            assert answered.status_code == 200 and \
                answered.json()["outputs"][0]["data"] == [2.0 * i]
        deadline = time.monotonic() + 30
        while submit(server, "flaky", x(9), "while-down").status_code != 202:
            assert time.monotonic() < deadline  # the front door is back too
            time.sleep(0.5)
        assert outcome(server, "flaky", "while-down").status_code == 200
    finally:
        own.stop()


def test_kill_9_of_a_runner_under_load_five_times_loses_and_duplicates_nothing(
        tmp_path, start_server, broker_url):
    settings = {"broker_url": broker_url, "shared": tmp_path, "calls": tmp_path / "calls",
                "delay": 0.01}
    server = start_server(config(flaky(tmp_path, maxAttempts=10)), **settings)
    total = 300
    for i in range(total):
        assert submit(server, "flaky", x(i), f"load-{i}").status_code == 202
    rng = np.random.default_rng(7)
    for _ in range(5):  # killed at a random moment, then a new runner takes over
        time.sleep(float(rng.uniform(0.1, 0.6)))
        server.stop(signal.SIGKILL)
        server = start_server(config(flaky(tmp_path, maxAttempts=10)), **settings)
    for i in range(total):
        answered = outcome(server, "flaky", f"load-{i}")
        assert answered.status_code == 200 and answered.json()["outputs"][0]["data"] == [2.0 * i]
    files = result_files(tmp_path, "flaky")
    assert len(files) == total  # one result per request, none lost
    done = calls(tmp_path / "calls")
    assert set(done) == {float(i) for i in range(total)}
    with (tmp_path / "kills.txt").open("w") as note:  # what the kills cost, for the eye
        note.write(f"{len(done) - total} predictions repeated after kills\n")


def test_a_server_without_a_broker_says_nothing_of_one(start_server):
    """AsyncBrokerUnreachable reads the broker gauge: a server with no broker has none."""
    server = start_server(config(model("wine")))
    metrics = server.client.get("/metrics").text
    assert "modelops_async_broker_up" not in metrics and "modelops_async_consumers" not in metrics
    refused = submit(server, "wine", {"inputs": []}, "r1")  # Prefer is ignored: synchronous
    assert refused.status_code == 400 and "non-empty 'inputs'" in refused.json()["error"]


def test_a_queued_request_can_be_cancelled_and_never_runs(tmp_path, start_server, broker_url):
    server = start_server(config(flaky(tmp_path)), broker_url=broker_url, shared=tmp_path,
                          calls=tmp_path / "calls", delay=1.0)
    assert submit(server, "flaky", x(0), "first").status_code == 202
    assert submit(server, "flaky", x(1), "second").status_code == 202  # waits behind it
    cancelled = server.client.delete("/v2/models/flaky/async/second")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert outcome(server, "flaky", "first").status_code == 200
    gone = outcome(server, "flaky", "second")
    assert gone.status_code == 410 and "cancelled by the client" in gone.json()["error"]
    time.sleep(1.5)  # its message came and went
    assert calls(tmp_path / "calls") == [0.0]
    assert server.client.delete("/v2/models/flaky/async/first").status_code == 409
    assert server.client.delete("/v2/models/flaky/async/never").status_code == 404


# -- in the cluster: the generated broker objects, applied as the operator applies them ---
def _topology_user(broker: LocalBroker, vhost: str, objects: list[dict],
                   folder: Path) -> None:
    """What the Messaging Topology Operator does with a server's User and Permission: the
    user, with a generated password in its credentials Secret (here a folder)."""
    folder.mkdir()
    (folder / "username").write_text("generated-user")
    (folder / "password").write_text("p@ss:w/rd#1")  # quoted into the URL by the server
    broker.ctl("add_user", "generated-user", "p@ss:w/rd#1")
    allowed = next(o["spec"]["permissions"] for o in objects if o["kind"] == "Permission")
    broker.ctl("set_permissions", "-p", vhost, "generated-user", allowed["configure"],
               allowed["write"], allowed["read"])


def _topology_queues(broker: LocalBroker, vhost: str, objects: list[dict]) -> None:
    """... and with its Queues (quorum, no arguments) and Policy; the results exchange is
    the platform's."""
    import asyncio

    import aio_pika

    async def declare() -> None:
        connection = await aio_pika.connect(f"{broker.url}{vhost}")
        channel = await connection.channel()
        await channel.declare_exchange("modelops.results", aio_pika.ExchangeType.TOPIC,
                                       durable=True)
        for queue in (o for o in objects if o["kind"] == "Queue"):
            await channel.declare_queue(queue["spec"]["name"], durable=True,
                                        arguments={"x-queue-type": queue["spec"]["type"]})
        await connection.close()

    asyncio.run(declare())
    for policy in (o["spec"] for o in objects if o["kind"] == "Policy"):
        broker.ctl("set_policy", "-p", vhost, "--apply-to", policy["applyTo"], "--priority",
                   str(policy["priority"]), policy["name"], policy["pattern"],
                   json.dumps(policy["definition"]))


def test_the_generated_queues_policy_and_user_serve_a_model(tmp_path, start_server, broker):
    """The cluster's way: the server declares nothing and connects as its own user; the
    Policy, not queue arguments, dead-letters a poison request after maxAttempts; the user
    may read only its own queues; a server that starts before its queues exist waits for
    them."""
    import asyncio

    import aio_pika
    import aiormq

    from modelops.generate import broker as generated
    from modelops_runtime.config import AsyncConfig

    limits = AsyncConfig(**{**ASYNC, "maxAttempts": 2, "maxQueued": 2})
    objects = generated.topology("flaky-v1-", [("flaky", "v1", limits)], local=True)
    vhost = "generated-objects"
    broker.ctl("add_vhost", vhost)
    broker.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    _topology_user(broker, vhost, objects, tmp_path / "credentials")
    server = start_server(config(flaky(tmp_path, maxAttempts=2, maxQueued=2)),
                          broker_url=f"amqp://127.0.0.1:{broker.port}/{vhost}",
                          broker_credentials=tmp_path / "credentials", broker_declares="false",
                          shared=tmp_path, calls=tmp_path / "calls", delay=1, wait=None)
    server.wait()  # ready, serving synchronously, and waiting for its queues
    deadline = time.monotonic() + 30
    while "queue modelops.flaky.v1 does not exist yet" not in server.stderr.read_text():
        assert time.monotonic() < deadline, server.stderr.read_text()
        time.sleep(0.1)
    _topology_queues(broker, vhost, objects)  # the operator gets to it later
    connected(server)
    answered = submit(server, "flaky", x(2.0), "fine-1", prefer="respond-async, wait=30")
    assert answered.status_code == 200, answered.text + server.stderr.read_text()
    assert answered.json()["outputs"][0]["data"] == [4.0]
    assert submit(server, "flaky", x(-1.0), "poison-1").status_code == 202
    failed = outcome(server, "flaky", "poison-1")
    assert failed.status_code == 500 and "failed" in failed.json()["error"]
    assert calls(tmp_path / "calls").count(-1.0) == 2
    # the Policy's dead-letter exchange took the rejected message to the dead queue
    dead = 'modelops_async_dead_letters_total{model="flaky",reason="rejected"} 1.0'
    deadline = time.monotonic() + 10
    while dead not in server.client.get("/metrics").text:
        assert time.monotonic() < deadline, server.client.get("/metrics").text[-3000:]
        time.sleep(0.1)
    # ... and its max-length (2) with reject-publish refuses what is beyond it
    codes = [submit(server, "flaky", x(float(i)), f"many-{i}").status_code for i in range(6)]
    assert codes[:3] == [202] * 3 and 503 in codes, codes  # one runs, two wait
    assert "exists with other arguments" not in server.stderr.read_text()

    async def probe() -> list[str]:
        refused = []
        url = f"amqp://generated-user:p%40ss%3Aw%2Frd%231@127.0.0.1:{broker.port}/{vhost}"
        for action in ("consume another model's queue", "declare a queue"):
            connection = await aio_pika.connect(url)
            channel = await connection.channel()
            try:
                if action.startswith("consume"):
                    await channel.declare_queue("modelops.other.v1", durable=True,
                                                arguments={"x-queue-type": "quorum"},
                                                passive=False)
                else:
                    await channel.declare_queue("modelops.flaky.v1.extra", durable=True)
            except aiormq.exceptions.ChannelAccessRefused:
                refused.append(action)
            await connection.close()
        return refused

    assert asyncio.run(probe()) == ["consume another model's queue", "declare a queue"]


# -- over gRPC: modelops.AsyncInference beside the protocol's service -------------------------
@functools.cache
def _messages() -> dict[str, type]:
    """The service's messages, built from the checked-in protos into a pool of their own:
    tritonclient's build of the protocol's `inference` package owns this process's default
    pool (two builds of one package cannot share it)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from grpc_tools import protoc

    out = Path(tempfile.mkdtemp()) / "async.pb"
    assert protoc.main(["protoc", f"-I{REPO / 'serving'}", "--include_imports",
                        f"--descriptor_set_out={out}",
                        "modelops_runtime/grpc/proto/asynchronous.proto"]) == 0
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file:
        pool.Add(file)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
            for name in ("modelops.AsyncSubmitRequest", "modelops.AsyncFetchRequest",
                         "modelops.AsyncResult", "inference.ModelInferRequest")}


class _AsyncStub:
    """modelops.AsyncInference, as a client calls it."""

    def __init__(self, server: Server):
        import grpc

        self.channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        result = _messages()["modelops.AsyncResult"]
        for method in ("Submit", "Fetch", "Cancel"):
            setattr(self, method, self.channel.unary_unary(
                f"/modelops.AsyncInference/{method}",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=result.FromString))


def _submit_request(request, wait: int = 0):
    return _messages()["modelops.AsyncSubmitRequest"](request=request, wait_seconds=wait)


def _fetch_request(name: str, request_id: str):
    return _messages()["modelops.AsyncFetchRequest"](model_name=name, id=request_id)


def _infer_message(name: str, value: np.ndarray, datatype: str = "FP32", values: int = 0):
    raw = value.tobytes() if not values else np.zeros(values, value.dtype).tobytes()
    message = _messages()["inference.ModelInferRequest"](model_name=name)
    message.inputs.add(name="input-0" if name == "iris" else "x", datatype=datatype,
                       shape=list(value.shape))
    message.raw_input_contents.append(raw)
    return message


def _fetched(stub: _AsyncStub, name: str, request_id: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while (got := stub.Fetch(_fetch_request(name, request_id))).status == "queued":
        assert time.monotonic() < deadline, got
        time.sleep(0.05)
    return got


def test_grpc_submits_fetches_and_waits_through_the_front_door(every_example):
    import grpc

    server = every_example
    flower = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
    stub = _AsyncStub(server)
    waited = stub.Submit(_submit_request(_infer_message("iris", flower), wait=30),
                         metadata=(("x-request-id", "grpc-waited"),))
    assert waited.status == "done" and waited.id == "grpc-waited"
    assert waited.response.outputs[0].name == "predict"
    assert np.frombuffer(waited.response.raw_output_contents[0], dtype=np.int64).tolist() == [0]
    queued = stub.Submit(_submit_request(_infer_message("iris", flower)),
                         metadata=(("x-request-id", "grpc-later"),))
    assert queued.status == "queued" and queued.model_version
    fetched = _fetched(stub, "iris", "grpc-later")
    assert fetched.status == "done" and fetched.response.raw_output_contents == \
        waited.response.raw_output_contents
    # one transport's answer is not rewritten for the other: each says where to fetch it
    over_http = server.client.get("/v2/models/iris/async/grpc-later")
    assert over_http.status_code == 409 and "over gRPC" in over_http.json()["error"]
    body = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4],
                        "data": flower.ravel().tolist()}]}
    assert submit(server, "iris", body, "http-submitted").status_code == 202
    assert outcome(server, "iris", "http-submitted").status_code == 200
    with pytest.raises(grpc.RpcError) as refused:
        stub.Fetch(_fetch_request("iris", "http-submitted"))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "GET /v2/models/iris/async/http-submitted" in refused.value.details()
    with pytest.raises(grpc.RpcError) as missing:
        stub.Fetch(_fetch_request("iris", "never-sent"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    for hostile in ("../../../etc/hostname", "..", "x" * 200, ""):  # ids are file names
        for call in (stub.Fetch, stub.Cancel):
            with pytest.raises(grpc.RpcError) as escaped:
                call(_fetch_request("iris", hostile))
            assert escaped.value.code() == grpc.StatusCode.INVALID_ARGUMENT, hostile
    with pytest.raises(grpc.RpcError) as malformed:  # three values for a [1, 4] tensor
        stub.Submit(_submit_request(_infer_message("iris", flower, values=3)))
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as garbage:  # not a message at all
        stub.channel.unary_unary("/modelops.AsyncInference/Submit")(b"\xff\xff\xff")
    assert garbage.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    stub.channel.close()


def test_grpc_outcomes_of_a_poison_request_bad_input_and_a_cancel(tmp_path, start_server,
                                                                 broker_url):
    server = start_server(config(flaky(tmp_path)), broker_url=broker_url, shared=tmp_path,
                          calls=tmp_path / "calls", delay=1)
    stub = _AsyncStub(server)

    def send(value: np.ndarray, request_id: str) -> None:
        stub.Submit(_submit_request(_infer_message("flaky", value, "FP64")),
                    metadata=(("x-request-id", request_id),))

    send(np.array([[5.0]]), "busy")  # holds the one runner slot (prefetch 1) for a second
    send(np.array([[3.0]]), "cancelled-early")
    cancelled = stub.Cancel(_fetch_request("flaky", "cancelled-early"))
    assert cancelled.status == "cancelled"
    send(np.array([[-1.0]]), "poison")
    send(np.array([[1.0, 2.0]]), "two-features")  # well formed, but not the model's shape
    failed = _fetched(stub, "flaky", "poison")
    assert failed.status == "failed" and "negative input breaks this model" not in failed.error
    assert "failed on all 3 attempts" in failed.error
    invalid = _fetched(stub, "flaky", "two-features")
    assert invalid.status == "invalid" and "expected 1 features per row, got 2" in invalid.error
    assert _fetched(stub, "flaky", "cancelled-early").status == "cancelled"
    time.sleep(1.5)
    assert 3.0 not in calls(tmp_path / "calls") and 2.0 not in calls(tmp_path / "calls")
    stub.channel.close()
