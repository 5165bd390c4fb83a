"""Adaptive batching in the data plane, in process: concurrent requests from every codec
(HTTP JSON, HTTP binary, gRPC) answered together equal the same requests answered one by
one, row for row; a request that breaks its batch fails alone; and each request is
counted and recorded once. Each test also checks that its requests did share calls, so
none of them could pass with batching quietly off."""

from __future__ import annotations

import asyncio
import json
import random
import textwrap

import numpy as np
import orjson
from tritonclient.grpc import service_pb2 as pb

from modelops_runtime import errors, metrics
from modelops_runtime.config import ServerConfig
from modelops_runtime.dataplane import DataPlane
from modelops_runtime.grpc import codec as grpc_codec
from modelops_runtime.http import codec as http_codec
from modelops_runtime.options import ServerOptions
from modelops_runtime.registry import Registry

PYTHON_MODELS = '''
import numpy as np
from modelops_runtime.model import Model


class Model_(Model):
    def predict(self, inputs):
        x = inputs["x"]
        if (x < 0).any():
            raise RuntimeError("negative input")  # the model's own fault
        if KIND == "sum":  # not row-wise: one answer for all the rows it is given
            return {"y": x.sum(axis=0, keepdims=True)}
        return {"y": x * 2}
'''


def _plane(tmp_path, root, models: list[dict], logs: bool = False) -> DataPlane:
    config = ServerConfig.model_validate({"server": "unit", "placement": "shared",
                                          "models": models})
    registry = Registry(config, root, tmp_path)
    registry.load_all()
    return DataPlane(config, ServerOptions(shared_root=root, log_dir=tmp_path / "logs",
                                           log_rotate_seconds=3600), registry)


def _sklearn(name: str, artifact: str, batching: dict, logging: bool = False) -> dict:
    return {"name": name, "runtime": "sklearn", "concurrency": 256,
            "versions": [{"name": "v1", "artifact": f"pvc://{artifact}"}],
            "logging": {"enabled": logging, "dataset": name}, "batching": batching}


def _python(tmp_path, name: str, kind: str, batching: dict | None = None) -> dict:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(PYTHON_MODELS).replace(
        "Model_", name.title()).replace("KIND", repr(kind)))
    return {"name": name, "runtime": "python", "code": f"{name}.py", "concurrency": 256,
            "versions": [{"name": "v1"}], "logging": {"dataset": name},
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
            **({"batching": batching} if batching else {})}


def _request(model: str, rows: np.ndarray, how: str, rid: str, outputs: list[str] | None = None):
    """One request as each transport's codec makes it."""
    datatype = {"float64": "FP64", "float32": "FP32"}[str(rows.dtype)]
    name = "input-0" if model in ("iris", "forest", "plain") else "x"
    if how == "grpc":
        message = pb.ModelInferRequest(model_name=model, id=rid)
        message.inputs.add(name=name, datatype=datatype, shape=rows.shape)
        message.raw_input_contents.append(rows.astype(rows.dtype.newbyteorder("<")).tobytes())
        for output in outputs or []:
            message.outputs.add(name=output)
        return grpc_codec.decode(message, rid)
    wanted = [{"name": o} for o in outputs] if outputs else None
    if how == "binary":
        header = {"id": rid, "inputs": [{"name": name, "datatype": datatype,
                                         "shape": list(rows.shape),
                                         "parameters": {"binary_data_size": rows.nbytes}}]}
        if wanted:
            header["outputs"] = wanted
        text = json.dumps(header).encode()
        return http_codec.decode(text + rows.tobytes(), str(len(text)), model, None, rid)
    body = {"id": rid, "inputs": [{"name": name, "datatype": datatype,
                                   "shape": list(rows.shape), "data": rows.ravel().tolist()}]}
    if wanted:
        body["outputs"] = wanted
    return http_codec.decode(orjson.dumps(body), None, model, None, rid)


async def _together(plane: DataPlane, requests: list) -> list:
    """The requests at once, as concurrent clients send them: each answer or its error."""
    return await asyncio.gather(*(plane.infer(r) for r in requests), return_exceptions=True)


def _shared_calls(model: str) -> np.ndarray:
    """[requests, calls] of the model's batches so far."""
    histogram = metrics.batch_size(model, "v1")
    return np.array([histogram._sum.get(), sum(b.get() for b in histogram._buckets)])


def test_batched_answers_equal_unbatched_row_for_row_over_every_codec(tmp_path, shared_root):
    plane = _plane(tmp_path, shared_root, [
        _sklearn("forest", "artifacts/iris/v2/model.joblib", {"maxBatchSize": 32}),
        _sklearn("plain", "artifacts/iris/v2/model.joblib", {"enabled": False})])
    rng = random.Random(7)
    shapes = []
    for i in range(120):
        rows = np.round(np.random.default_rng(i).uniform(0, 8, (rng.randint(1, 6), 4)), 2)
        how = rng.choice(["json", "binary", "grpc"])
        outputs = rng.choice([None, ["predict_proba"], ["predict", "predict_proba"]])
        shapes.append((rows.astype(rng.choice([np.float64, np.float32])), how, outputs))
    before = _shared_calls("forest")
    batched = asyncio.run(_together(plane, [_request("forest", r, h, f"b{i}", o)
                                            for i, (r, h, o) in enumerate(shapes)]))
    alone = [asyncio.run(plane.infer(_request("plain", r, h, f"u{i}", o)))
             for i, (r, h, o) in enumerate(shapes)]
    requests, calls = _shared_calls("forest") - before
    assert requests == 120 and calls < 60, (requests, calls)  # they did share calls
    for i, (mine, theirs) in enumerate(zip(batched, alone, strict=True)):
        assert mine.id == f"b{i}" and list(mine.outputs) == list(theirs.outputs)
        for name, array in mine.outputs.items():
            assert array.shape == theirs.outputs[name].shape
            assert array.tolist() == theirs.outputs[name].tolist()  # exactly, row for row


def test_a_request_that_breaks_its_batch_fails_alone(tmp_path, shared_root, capfd):
    plane = _plane(tmp_path, shared_root, [_python(tmp_path, "doubler", "rowwise")])
    good = [np.full((2, 2), i, dtype=np.float32) for i in range(1, 8)]
    bad_value = np.array([[1.0, -1.0]], dtype=np.float32)  # the model raises on it
    bad_shape = np.zeros((1, 3), dtype=np.float32)  # refused before any batch: a 400
    requests = [_request("doubler", a, "grpc", f"g{i}") for i, a in enumerate(good[:4])]
    requests += [_request("doubler", bad_value, "json", "bad"),
                 _request("doubler", bad_shape, "binary", "shape")]
    requests += [_request("doubler", a, "json", f"j{i}") for i, a in enumerate(good[4:])]
    before = {code: metrics.requests("doubler", "v1", code)._value.get()
              for code in ("200", "400", "500")}
    calls_before = _shared_calls("doubler")
    answers = asyncio.run(_together(plane, requests))
    assert isinstance(answers[4], errors.ModelFailed) and "request id bad" in str(answers[4])
    assert isinstance(answers[5], errors.InvalidRequest) and "3" in str(answers[5])
    for answer, rows in zip(answers[:4] + answers[6:], good, strict=True):
        assert answer.outputs["y"].tolist() == (rows * 2).tolist()
    requests_seen, calls = _shared_calls("doubler") - calls_before
    assert requests_seen == 8 and calls == 1  # all eight valid requests were one batch
    after = {code: metrics.requests("doubler", "v1", code)._value.get() for code in before}
    assert {c: after[c] - before[c] for c in after} == {"200": 7, "400": 1, "500": 1}
    assert capfd.readouterr().err.count("failed on request") == 1  # logged once, for "bad"


def test_each_request_is_counted_and_recorded_once(tmp_path, shared_root):
    plane = _plane(tmp_path, shared_root, [_sklearn(
        "iris", "artifacts/iris/v1/model.joblib", {"maxBatchSize": 8}, logging=True)])
    plane.log.start()
    rows = [np.array([[6.6, 3.0, 4.4, 1.4]] * (1 + i % 3)) for i in range(40)]
    latency = metrics.latency("iris", "v1")
    seen_before = sum(b.get() for b in latency._buckets)
    ok_before = metrics.requests("iris", "v1", "200")._value.get()
    calls_before = _shared_calls("iris")
    answers = asyncio.run(_together(plane, [_request("iris", r, "json", f"r{i}")
                                            for i, r in enumerate(rows)]))
    plane.log.close()
    assert all(len(a.outputs["predict"]) == len(r) for a, r in zip(answers, rows, strict=True))
    assert metrics.requests("iris", "v1", "200")._value.get() - ok_before == 40
    assert sum(b.get() for b in latency._buckets) - seen_before == 40
    requests_seen, calls = _shared_calls("iris") - calls_before
    assert requests_seen == 40 and calls <= 20  # at most 8 rows a call: 80 rows, 10+ calls
    records = [json.loads(line) for path in (tmp_path / "logs").rglob("*.jsonl*")
               for line in path.read_text().splitlines()]
    assert sorted(r["id"] for r in records) == sorted(f"r{i}" for i in range(40))
    for record in records:  # each record holds its own rows and answer, not its batch's
        i = int(record["id"][1:])
        assert record["inputs"][0]["shape"] == [len(rows[i]), 4]
        assert len(record["outputs"][0]["data"]) == len(rows[i])


def test_a_model_that_is_not_row_wise_is_answered_alone_and_batching_stops(
        tmp_path, shared_root, capfd):
    plane = _plane(tmp_path, shared_root, [_python(tmp_path, "summer", "sum")])
    arrays = [np.full((2, 2), i, dtype=np.float32) for i in range(1, 6)]
    answers = asyncio.run(_together(plane, [_request("summer", a, "json", f"s{i}")
                                            for i, a in enumerate(arrays)]))
    for answer, rows in zip(answers, arrays, strict=True):
        assert answer.outputs["y"].tolist() == [rows.sum(axis=0).tolist()]
    assert "batching is off for it" in capfd.readouterr().err
    calls_before = _shared_calls("summer")
    asyncio.run(_together(plane, [_request("summer", a, "json", "again") for a in arrays]))
    assert (_shared_calls("summer") == calls_before).all()  # no batch since


def test_batches_hold_at_most_max_batch_size_rows(tmp_path, shared_root):
    plane = _plane(tmp_path, shared_root, [_python(tmp_path, "doubler", "rowwise",
                                                   {"maxBatchSize": 4, "maxWaitMs": 50})])
    sizes = [3, 2, 2, 9, 1]  # 3 | 2+2 | 9 alone (past the maximum) | 1
    arrays = [np.ones((n, 2), dtype=np.float32) * n for n in sizes]
    before = _shared_calls("doubler")
    answers = asyncio.run(_together(plane, [_request("doubler", a, "json", f"m{i}")
                                            for i, a in enumerate(arrays)]))
    for answer, rows in zip(answers, arrays, strict=True):
        assert answer.outputs["y"].tolist() == (rows * 2).tolist()
    requests_seen, calls = _shared_calls("doubler") - before
    assert (requests_seen, calls) == (5, 4)


def test_batching_off_in_the_spec_predicts_each_request_alone(tmp_path, shared_root):
    plane = _plane(tmp_path, shared_root, [_python(tmp_path, "single", "rowwise",
                                                   {"enabled": False})])
    arrays = [np.ones((1, 2), dtype=np.float32)] * 6
    asyncio.run(_together(plane, [_request("single", a, "json", "x") for a in arrays]))
    assert _shared_calls("single").tolist() == [0, 0]


def test_a_client_that_goes_away_leaves_its_batch_mates_their_answers(tmp_path, shared_root):
    plane = _plane(tmp_path, shared_root, [_python(tmp_path, "doubler", "rowwise",
                                                   {"maxWaitMs": 20})])

    async def scene():
        arrays = [np.full((1, 2), i, dtype=np.float32) for i in range(4)]
        tasks = [asyncio.ensure_future(plane.infer(_request("doubler", a, "json", str(i))))
                 for i, a in enumerate(arrays)]
        await asyncio.sleep(0.005)  # all four wait in one batch
        tasks[1].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)
        return arrays, done

    arrays, done = asyncio.run(scene())
    assert isinstance(done[1], asyncio.CancelledError)
    for i in (0, 2, 3):
        assert done[i].outputs["y"].tolist() == (arrays[i] * 2).tolist()
    assert plane.registry.models["doubler"].in_flight == 0  # every slot given back


def test_a_model_declared_for_a_fixed_number_of_rows_never_batches(tmp_path, shared_root):
    fixed = _python(tmp_path, "onerow", "rowwise")
    fixed["inputs"] = [{"name": "x", "datatype": "FP32", "shape": [1, 2]}]  # as an ONNX graph
    plane = _plane(tmp_path, shared_root, [fixed])
    arrays = [np.full((1, 2), i, dtype=np.float32) for i in range(6)]
    answers = asyncio.run(_together(plane, [_request("onerow", a, "json", "x") for a in arrays]))
    assert [a.outputs["y"].tolist() for a in answers] == [(a * 2).tolist() for a in arrays]
    assert _shared_calls("onerow").tolist() == [0, 0]
