"""The typed inference request and response: what every transport's codec makes of its
own framing (HTTP JSON, HTTP with binary tensors, gRPC, and next the queue), and what
the data plane admits, checks, predicts and records. No transport's types reach past
its codec, so the data plane serves them all alike.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from modelops_runtime import tensors
from modelops_runtime.errors import InvalidRequest

MAX_ID_LENGTH = 256
Parameters = dict[str, str | int | float | bool]


def parameters(where: str, value: object) -> Parameters | None:
    """v2 parameters: an object whose values are strings, numbers or booleans."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
            isinstance(v, (str, int, float, bool)) for v in value.values()):
        raise InvalidRequest(f"{where} parameters must be an object of strings, numbers or "
                             f"booleans")
    return value


def client_id(value: object) -> str | None:
    """The request's own `id`, which the response echoes."""
    if value is not None and (not isinstance(value, str) or len(value) > MAX_ID_LENGTH):
        raise InvalidRequest(f"'id' must be a string of at most {MAX_ID_LENGTH} characters")
    return value or None


@dataclasses.dataclass(slots=True)
class InferInput:
    name: str
    datatype: str
    shape: list[int]
    array: np.ndarray[Any, Any]
    values: list[Any] | None = None
    """The values as the client sent them, flat, when they came as a list: the prediction
    record keeps them rather than converting the array back."""

    def logged(self) -> dict[str, Any]:
        """The input as the prediction record keeps it."""
        values = self.values if self.values is not None else self.array.ravel().tolist()
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape,
                "data": values}


@dataclasses.dataclass(slots=True)
class RequestedOutput:
    name: str
    parameters: Parameters | None = None


@dataclasses.dataclass(slots=True)
class InferRequest:
    model: str
    version: str | None
    """None: the version weights choose."""
    inputs: list[InferInput]
    request_id: str
    """The transport's request id (X-Request-ID): the audit trail through the logs."""
    id: str | None = None
    """The client's own id for the request, echoed in the response."""
    outputs: list[RequestedOutput] = dataclasses.field(default_factory=list)
    parameters: Parameters | None = None

    def __post_init__(self) -> None:
        if not self.inputs:
            raise InvalidRequest("request needs a non-empty 'inputs' list")
        if len(self.inputs) > 1 and len({i.name for i in self.inputs}) < len(self.inputs):
            seen: set[str] = set()
            for tensor in self.inputs:
                if tensor.name in seen:
                    raise InvalidRequest(f"input {tensor.name!r} is given twice")
                seen.add(tensor.name)

    def arrays(self) -> dict[str, np.ndarray[Any, Any]]:
        return {i.name: i.array for i in self.inputs}

    def output_names(self) -> list[str] | None:
        return [o.name for o in self.outputs] if self.outputs else None


@dataclasses.dataclass(slots=True)
class InferResponse:
    """What a model answered, for a transport to encode."""

    model: str
    version: str
    id: str
    parameters: Parameters | None
    outputs: dict[str, np.ndarray[Any, Any]]
    _values: list[dict[str, Any]] | None = None

    def output_values(self) -> list[dict[str, Any]]:
        """The outputs as v2 tensors with lists of values (computed once: the JSON answer
        and the prediction record share them)."""
        if self._values is None:
            self._values = [tensors.to_values(n, a) for n, a in self.outputs.items()]
        return self._values
