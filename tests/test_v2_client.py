"""A standard Open Inference Protocol v2 client library works against the server unchanged."""

from __future__ import annotations

import numpy as np
import tritonclient.http as triton

from servers import config, model


def test_tritonclient_talks_to_the_server(start_server):
    server = start_server(config(model("iris"), model("digits", "onnx")))
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("iris") and client.is_model_ready("iris", "v2")
    assert client.get_server_metadata()["name"] == "modelops"
    meta = client.get_model_metadata("digits")
    assert meta["inputs"][0]["name"] == "X" and meta["inputs"][0]["datatype"] == "FP32"

    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.6, 3.0, 4.4, 1.4]])
    tensor = triton.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows, binary_data=False)
    wanted = [triton.InferRequestedOutput("predict_proba", binary_data=False)]
    result = client.infer("iris", [tensor], model_version="v1", outputs=wanted, request_id="t-1")
    proba = result.as_numpy("predict_proba")
    assert proba.shape == (2, 3) and np.allclose(proba.sum(axis=1), 1.0)
    assert result.get_response()["id"] == "t-1" and result.get_response()["model_version"] == "v1"

    image = np.zeros((1, 64), dtype=np.float32)
    digit = triton.InferInput("X", [1, 64], "FP32")
    digit.set_data_from_numpy(image, binary_data=False)
    labels = client.infer("digits", [digit], outputs=[
        triton.InferRequestedOutput("label", binary_data=False)]).as_numpy("label")
    assert labels.dtype == np.int64 and labels.shape == (1,)
    client.close()
