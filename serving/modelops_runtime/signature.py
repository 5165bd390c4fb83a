"""A model's declared tensors, and the check every request passes before `predict`.

The declaration comes from the runtime (a scikit-learn estimator's feature count, an
ONNX graph's inputs), from a python model's class (`metadata()`), or from the spec
(`spec.inputs` / `spec.outputs`, else derived from its example by `modelops generate`).
A request that breaks it gets a 400 naming the tensor and the rule, so a model's own
code sees only what it declared; what it still raises is the model's fault (a 500).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from modelops_runtime.errors import InvalidRequest
from modelops_runtime.tensors import DTYPES, datatype_of


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1: any size

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def _convertible(got: np.dtype, want: np.dtype) -> bool:
    """Numbers convert within reason (INT64 to FP32, FP64 to FP32); strings and booleans
    never become numbers."""
    if got == want:
        return True
    if got.kind in "OSUb" or want.kind in "OSUb":
        return False
    return bool(np.can_cast(got, want, casting="same_kind"))


@dataclasses.dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @classmethod
    def of(cls, metadata: dict[str, list[dict[str, Any]]]) -> Signature:
        def specs(side: str) -> tuple[TensorSpec, ...]:
            return tuple(TensorSpec(t["name"], t["datatype"], tuple(t["shape"]))
                         for t in metadata.get(side) or [])

        return cls(specs("inputs"), specs("outputs"))

    def check(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The inputs, converted to the declared datatypes; a 400 when they break the
        declaration. A model that declares no inputs takes whatever it is sent."""
        if not self.inputs:
            return inputs
        declared = {t.name: t for t in self.inputs}
        unknown = sorted(set(inputs) - set(declared))
        if unknown:
            raise InvalidRequest(f"model {model!r} has no input {unknown[0]!r}; it takes "
                                 f"{_listing(self.inputs)}")
        missing = [t.name for t in self.inputs if t.name not in inputs]
        if missing:
            raise InvalidRequest(f"model {model!r} needs input {missing[0]!r}; it takes "
                                 f"{_listing(self.inputs)}")
        out = {}
        for name, array in inputs.items():
            spec = declared[name]
            want = DTYPES[spec.datatype]
            if not _convertible(array.dtype, want):
                raise InvalidRequest(f"input {name!r}: expected datatype {spec.datatype}, got "
                                     f"{datatype_of(array)}")
            if array.ndim != len(spec.shape):
                raise InvalidRequest(f"input {name!r}: expected shape {list(spec.shape)} "
                                     f"({len(spec.shape)} dimensions), got {list(array.shape)}")
            for axis, (size, wanted) in enumerate(zip(array.shape, spec.shape, strict=True)):
                if wanted >= 0 and size != wanted:
                    what = "features per row" if axis == 1 and len(spec.shape) == 2 \
                        else f"values along dimension {axis}"
                    raise InvalidRequest(f"input {name!r}: expected {wanted} {what}, got "
                                         f"{size} (shape {list(array.shape)})")
            if spec.shape and spec.shape[0] == -1 and array.shape[0] == 0:
                raise InvalidRequest(f"input {name!r}: the batch has no rows")
            out[name] = array if array.dtype == want else _converted(name, array, spec)
        return out

    def metadata(self) -> dict[str, list[dict[str, Any]]]:
        return {"inputs": [t.describe() for t in self.inputs],
                "outputs": [t.describe() for t in self.outputs]}


def _converted(name: str, array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """The array as the declared datatype, refused when a value does not survive the
    conversion: FP64 1e300 would become FP32 infinity, INT64 2**40 would wrap in INT32."""
    want = DTYPES[spec.datatype]
    with np.errstate(over="ignore", invalid="ignore"):
        converted = array.astype(want)
    if want.kind == "f":
        kept = bool(np.isfinite(converted).all())
    else:
        kept = bool((converted == array).all())
    if not kept:
        raise InvalidRequest(f"input {name!r}: a value is out of the range of {spec.datatype}, "
                             f"the declared datatype")
    return converted


def _listing(tensors: tuple[TensorSpec, ...]) -> str:
    return ", ".join(f"{t.name} ({t.datatype} {list(t.shape)})" for t in tensors)
