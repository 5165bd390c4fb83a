"""The prediction-log writer: nothing accepted is lost to a bad record, a failing disk or
a kill -9."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from servers import config, model

from modelops_runtime import metrics, predlog
from modelops_runtime.predlog import PredictionLog, recover
from modelops_runtime.records import PredictionRecord

ROW = [5.1, 3.5, 1.4, 0.2]


def record(i: int, inputs=None) -> PredictionRecord:
    return PredictionRecord(id=f"r{i}", model="iris", version="v1", dataset="iris", ts=1.0,
                            inputs=inputs or [{"name": "x", "datatype": "FP64",
                                               "shape": [1, 4], "data": ROW}],
                            outputs=[], latency_ms=1.0, status=200)


def lines(folder) -> list[dict]:
    return [json.loads(line) for f in sorted(folder.rglob("*.jsonl*"))
            for line in f.read_text().splitlines()]


def sample(name: str, **labels) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_record_that_cannot_be_written_is_counted_and_the_rest_go_on(tmp_path):
    deep: object = 1.0
    for _ in range(400):  # past what orjson writes
        deep = [deep]
    log = PredictionLog(tmp_path, "s", 1 << 20, 3600, 100)
    log.start()
    before = sample("modelops_prediction_log_unwritable_total", reason="too_deep")
    log.submit(record(1))
    log.submit(record(2, [{"name": "x", "datatype": "FP64", "shape": [1], "data": deep}]))
    log.submit(record(3))
    wait_for(lambda: len(lines(tmp_path)) == 2)
    log.submit(record(4))
    wait_for(lambda: len(lines(tmp_path)) == 3)
    assert sample("modelops_prediction_log_writer_up") == 1.0
    assert sample("modelops_prediction_log_unwritable_total", reason="too_deep") == before + 1
    log.close()
    assert [r["id"] for r in lines(tmp_path)] == ["r1", "r3", "r4"]
    assert not list(tmp_path.rglob("*.open"))  # closed on stop


def test_a_failing_disk_marks_the_writer_down_and_loses_nothing(tmp_path, monkeypatch):
    log = PredictionLog(tmp_path, "s", 1 << 20, 3600, 100)
    log.start()
    log.submit(record(1))
    wait_for(lambda: len(lines(tmp_path)) == 1)
    real_write, failures = os.write, {"left": 3}

    def flaky(fd, data):
        if failures["left"]:
            failures["left"] -= 1
            os.ftruncate(fd, os.fstat(fd).st_size)  # as if half of it had gone out
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(predlog.os, "write", flaky)
    log.submit(record(2))
    wait_for(lambda: sample("modelops_prediction_log_writer_up") == 0.0)
    log.submit(record(3))
    wait_for(lambda: len(lines(tmp_path)) == 3, timeout=10)
    wait_for(lambda: sample("modelops_prediction_log_writer_up") == 1.0)
    log.close()
    assert sorted(r["id"] for r in lines(tmp_path)) == ["r1", "r2", "r3"]  # each once


def test_recovery_keeps_complete_lines_and_leaves_live_files_alone(tmp_path):
    day = tmp_path / "s" / "2026-01-01"
    day.mkdir(parents=True)
    orphan = day / "host-1-a-000001.jsonl.open"
    orphan.write_bytes(b'{"id": "a"}\n{"id": "b"}\n{"id": "c", "inp')  # torn by a kill
    empty = day / "host-1-a-000002.jsonl.open"
    empty.write_bytes(b"")
    live = PredictionLog(tmp_path, "s", 1 << 20, 3600, 100)
    live.start()  # recovers what it finds, then writes its own file
    live.submit(record(1))
    wait_for(lambda: any(p.name.endswith(".open") for p in tmp_path.rglob("*")))
    held = next(tmp_path.rglob("*.jsonl.open"))
    assert recover(tmp_path) == 0  # the live writer holds its lock
    assert held.exists()
    assert [json.loads(x)["id"] for x in (day / "host-1-a-000001.jsonl").read_text().splitlines()] \
        == ["a", "b"]
    assert not empty.exists()
    live.close()


@pytest.mark.parametrize("round_", range(2))
def test_kill_9_loses_no_record_that_reached_the_file(start_server, tmp_path, round_):
    """Acknowledged requests, then kill -9: the next server start recovers every one."""
    logs = tmp_path / "logs"
    logged = {"enabled": True, "dataset": "iris", "sampleRate": 1.0}
    cfg = config(model("iris", logging=logged), placement="dedicated")
    first = start_server(cfg, log_dir=logs, log_rotate_seconds=3600)
    body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": ROW}]}
    ids = [first.client.post("/v2/models/iris/infer", json=body).headers["x-request-id"]
           for _ in range(200)]
    time.sleep(2 * predlog.FLUSH_SECONDS + 0.1)  # what was queued reaches the file
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    assert list(logs.rglob("*.jsonl.open")) and not list(logs.rglob("*.jsonl"))
    second = start_server(cfg, log_dir=logs, log_rotate_seconds=3600)
    second.client.get("/v2/health/ready")
    recovered = [r["id"] for f in logs.rglob("*.jsonl") for r in map(json.loads, f.read_text()
                                                                       .splitlines())]
    assert sorted(recovered) == sorted(ids)
