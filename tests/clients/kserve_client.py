"""KServe's Python client, as its users call it, in its own venv (build/kserve-venv): reads
{"http": URL, "grpc": HOST:PORT, "models": {name: [input tensors]}} on stdin, sends each
model its inputs over REST (protocol v2) and gRPC with the client's defaults, and prints
{name: {"rest": {output: values}, "grpc": {...}}} on stdout."""

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import to_np_dtype


def request(name: str, tensors: list[dict], transport: str) -> InferRequest:
    inputs = []
    for tensor in tensors:
        array = np.array(tensor["data"], dtype=to_np_dtype(tensor["datatype"])).reshape(
            tensor["shape"])
        item = InferInput(tensor["name"], list(array.shape), tensor["datatype"])
        item.set_data_from_numpy(array)  # binary, the client's default
        inputs.append(item)
    return InferRequest(model_name=name, infer_inputs=inputs, request_id=f"{transport}-{name}")


def values(response) -> dict:
    out = {}
    for output in response.outputs:
        array = output.as_numpy()
        out[output.name] = [v.decode() if isinstance(v, bytes) else v
                            for v in array.ravel().tolist()]
    return out


async def main() -> None:
    job = json.load(sys.stdin)
    rest = InferenceRESTClient(RESTConfig(protocol="v2"))
    grpc = InferenceGRPCClient(url=job["grpc"])
    result = {}
    for name, tensors in job["models"].items():
        assert await rest.is_model_ready(job["http"], name)
        assert await grpc.is_model_ready(name)
        by_rest = await rest.infer(job["http"], request(name, tensors, "rest"), model_name=name)
        by_grpc = await grpc.infer(request(name, tensors, "grpc"))
        result[name] = {"rest": values(by_rest), "grpc": values(by_grpc),
                        "ids": [by_rest.id, by_grpc.id]}
    await grpc.close()
    print(json.dumps(result))


asyncio.run(main())
