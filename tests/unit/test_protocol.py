"""Tensors in the Open Inference Protocol v2 JSON form: every datatype, shapes, and errors
(the HTTP codec in process, no server)."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from modelops_runtime.errors import InvalidRequest
from modelops_runtime.http.codec import decode, dumps
from modelops_runtime.tensors import to_values as encode_tensor


def decode_request(body: bytes):
    return decode(body, None, "m", None, "request-1")


def decode_tensor(tensor: dict):
    """(name, array) of one JSON input."""
    decoded = decode_request(orjson.dumps({"inputs": [tensor]})).inputs[0]
    return decoded.name, decoded.array

SAMPLES = {
    "BOOL": [True, False, True, True], "UINT8": [0, 1, 254, 255], "UINT16": [0, 1, 2, 65535],
    "UINT32": [0, 1, 2, 2**32 - 1], "UINT64": [0, 1, 2, 2**64 - 1],
    "INT8": [-128, -1, 0, 127], "INT16": [-32768, 0, 1, 32767],
    "INT32": [-2**31, 0, 1, 2**31 - 1], "INT64": [-2**63, 0, 1, 2**63 - 1],
    "FP16": [0.5, -1.0, 2.0, 65504.0], "FP32": [0.25, -1.5, 3.0, 1e30],
    "FP64": [0.1, -1e300, 3.0, 2.5], "BYTES": ["a", "", "ünï", "d e"],
}


@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_every_datatype_round_trips(datatype):
    tensor = {"name": "t", "datatype": datatype, "shape": [2, 2], "data": SAMPLES[datatype]}
    name, array = decode_tensor(tensor)
    assert name == "t" and array.shape == (2, 2)
    encoded = orjson.loads(dumps(encode_tensor("t", array)))
    assert encoded == {"name": "t", "datatype": datatype, "shape": [2, 2], "data": SAMPLES[datatype]}


def test_nested_data_is_row_major():
    _, array = decode_tensor({"name": "x", "datatype": "INT32", "shape": [2, 3],
                              "data": [[1, 2, 3], [4, 5, 6]]})
    assert array.tolist() == [[1, 2, 3], [4, 5, 6]]


def test_scalars_and_empty_tensors():
    _, scalar = decode_tensor({"name": "x", "datatype": "FP32", "shape": [], "data": [1.5]})
    _, empty = decode_tensor({"name": "x", "datatype": "FP32", "shape": [0, 4], "data": []})
    assert scalar.shape == () and empty.shape == (0, 4)


@pytest.mark.parametrize("tensor, message", [
    ({"name": "x", "datatype": "FP99", "shape": [1], "data": [1]}, "unknown datatype 'FP99'"),
    ({"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3]},
     "shape [2, 2] needs 4 values, got 3"),
    ({"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]}, "shape must be a list of non-negative"),
    ({"name": "x", "datatype": "INT8", "shape": [1], "data": [300]}, "input 'x'"),
    ({"name": "x", "datatype": "INT32", "shape": [1], "data": [1.5]}, "INT32 data must be integers"),
    ({"name": "x", "datatype": "FP32", "shape": [1], "data": ["1"]}, "FP32 data must be numbers"),
    ({"name": "x", "datatype": "BOOL", "shape": [1], "data": [1]}, "BOOL data must be true or false"),
    ({"name": "x", "datatype": "BYTES", "shape": [1], "data": [1]}, "BYTES data must be strings"),
    ({"datatype": "FP32", "shape": [1], "data": [1]}, "an input has no name"),
    ({"name": "x", "datatype": "FP32", "shape": [1], "data": "1"}, "data must be a list"),
])
def test_bad_tensors_say_which_and_why(tensor, message):
    with pytest.raises(InvalidRequest) as caught:
        decode_tensor(tensor)
    assert message in caught.value.message and caught.value.code == "400"


@pytest.mark.parametrize("body, message", [
    (b"not json", "not valid JSON"), (b"[]", "JSON object"), (b"{}", "non-empty 'inputs'"),
    (b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [1], "data": [1]},'
     b' {"name": "a", "datatype": "FP32", "shape": [1], "data": [1]}]}', "given twice"),
    (b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [1], "data": [1]}], "outputs": [1]}',
     "'outputs' must be a list"),
])
def test_bad_requests(body, message):
    with pytest.raises(InvalidRequest) as caught:
        decode_request(body)
    assert message in caught.value.message


def test_fp16_output_keeps_its_values():
    encoded = orjson.loads(dumps(encode_tensor("h", np.array([0.5, 1.0], dtype=np.float16))))
    assert encoded["datatype"] == "FP16" and encoded["data"] == [0.5, 1.0]


@pytest.mark.parametrize("declared, sent, converted", [
    ("FP32", np.array([[1e300, 1.0]]), None),  # would become infinity
    ("INT32", np.array([[2**40, 1]]), None),  # would wrap around
    ("INT16", np.array([[-40_000, 1]], dtype=np.int32), None),
    ("FP32", np.array([[1, 2]]), [[1.0, 2.0]]),  # what survives is converted
    ("INT32", np.array([[7, -3]]), [[7, -3]]),
])
def test_a_value_that_does_not_survive_the_declared_datatype_is_refused(declared, sent,
                                                                         converted):
    from modelops_runtime.signature import Signature

    signature = Signature.of({"inputs": [{"name": "x", "datatype": declared, "shape": [-1, 2]}]})
    if converted is None:
        with pytest.raises(InvalidRequest, match=f"input 'x': a value is out of the range of "
                                                f"{declared}, the declared datatype"):
            signature.check("m", {"x": sent})
    else:
        out = signature.check("m", {"x": sent})["x"]
        assert out.dtype.name == {"FP32": "float32", "INT32": "int32"}[declared]
        assert out.tolist() == converted
