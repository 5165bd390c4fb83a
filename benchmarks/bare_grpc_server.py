"""The gRPC floor for benchmarks/serve.py: grpcio's asyncio server (what this server and
MLServer both use) with a ModelInfer that reads the raw input bytes with numpy, calls the
same model's predict and returns the raw output. No validation, no metrics, no logs, no
request id: what the model and grpcio cost at the least.

Usage: python benchmarks/bare_grpc_server.py ARTIFACT PORT
"""

import sys

import grpc
import joblib
import numpy as np
import uvloop

from modelops_runtime.grpc.proto import inference_pb2 as pb
from modelops_runtime.grpc.proto import inference_pb2_grpc as pb_grpc

model = joblib.load(sys.argv[1])


class Floor(pb_grpc.GRPCInferenceServiceServicer):
    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=True)

    async def ModelInfer(self, request, context):
        tensor = request.inputs[0]
        rows = np.frombuffer(request.raw_input_contents[0], dtype="<f8").reshape(tensor.shape)
        prediction = model.predict(rows)
        response = pb.ModelInferResponse(model_name=request.model_name)
        response.outputs.add(name="predict", datatype="INT64", shape=prediction.shape)
        response.raw_output_contents.append(prediction.astype("<i8").tobytes())
        return response


async def serve(port: int) -> None:
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(Floor(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[2])))
