"""Triton's binary tensor data extension of the v2 HTTP protocol: what tritonclient sends
and asks for by default.

A request whose `Inference-Header-Content-Length` header is N carries its JSON in the
first N bytes of the body, and after it the raw bytes (tensors.py) of every input whose
parameters give a `binary_data_size`, in the order of the inputs. Outputs come back the
same way when the request asks (`binary_data_output: true` for all, or
`binary_data: true` on one output).
"""

from __future__ import annotations

from collections.abc import Mapping

from modelops_runtime.errors import InvalidRequest
from modelops_runtime.inference import InferRequest

EXTENSION = "binary_tensor_data"
HEADER = "inference-header-content-length"


def split(body: bytes, header_length: str) -> tuple[bytes, memoryview]:
    """(the JSON header, the binary data after it)."""
    try:
        length = int(header_length)
    except ValueError:
        raise InvalidRequest(f"Inference-Header-Content-Length must be a number, got "
                             f"{header_length[:40]!r}") from None
    if not 0 < length <= len(body):
        raise InvalidRequest(f"Inference-Header-Content-Length is {length}, but the body "
                             f"has {len(body)} bytes")
    view = memoryview(body)
    return bytes(view[:length]), view[length:]


def size_of(name: str, parameters: Mapping[str, object] | None) -> int | None:
    """The input's binary_data_size, when its data follows the JSON."""
    size = (parameters or {}).get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidRequest(f"input {name!r}: binary_data_size must be a non-negative "
                             f"integer")
    return size


def wanted(request: InferRequest) -> set[str] | bool:
    """Which outputs go back as binary: True for all, or the names that ask for it."""
    if (request.parameters or {}).get("binary_data_output") is True:
        return True
    return {o.name for o in request.outputs
            if (o.parameters or {}).get("binary_data") is True}
