"""The floor for benchmarks/serve.py: a bare Starlette route that parses the same v2 JSON
with orjson, calls the same model's predict and returns the result. No validation,
no metrics, no logs: what the model and the framework cost at the least.

Usage: python benchmarks/bare_server.py ARTIFACT PORT
"""

import sys

import joblib
import numpy as np
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

model = joblib.load(sys.argv[1])


async def infer(request: Request) -> Response:
    tensor = orjson.loads(await request.body())["inputs"][0]
    rows = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
    prediction = model.predict(rows)
    return Response(orjson.dumps({"model_name": "iris", "outputs": [
        {"name": "predict", "datatype": "INT64", "shape": list(prediction.shape),
         "data": prediction}]}, option=orjson.OPT_SERIALIZE_NUMPY),
        media_type="application/json")


async def ready(request: Request) -> Response:
    return Response(b'{"ready":true}', media_type="application/json")


app = Starlette(routes=[Route("/v2/models/iris/infer", infer, methods=["POST"]),
                        Route("/v2/health/ready", ready)])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), loop="uvloop", http="httptools",
                access_log=False, log_level="warning")
