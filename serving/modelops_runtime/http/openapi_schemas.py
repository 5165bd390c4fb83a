"""The JSON shapes of the protocol routes, as the OpenAPI document states them (docs.py)
and schemathesis checks every answer against them (tests/system/test_openapi.py)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from modelops_runtime.inference import MAX_ID_LENGTH
from modelops_runtime.signature import Signature, TensorSpec
from modelops_runtime.tensors import DTYPES, MAX_RANK

_SCALAR = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}
PARAMETERS = {"type": "object", "additionalProperties": _SCALAR}
_GIVEN_PARAMETERS = {**PARAMETERS, "type": ["object", "null"]}  # a request's null: none
TENSOR_METADATA: dict[str, Any] = {
    "type": "object", "required": ["name", "datatype", "shape"], "properties": {
        "name": {"type": "string"}, "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}}}}
_OUTPUT = {"type": "object", "required": ["name", "datatype", "shape"], "properties": {
    **TENSOR_METADATA["properties"], "data": {"type": "array"}, "parameters": PARAMETERS}}

INFER_REQUEST: dict[str, Any] = {
    "type": "object", "required": ["inputs"], "properties": {
        "id": {"type": ["string", "null"], "maxLength": MAX_ID_LENGTH},
        "parameters": _GIVEN_PARAMETERS,
        "inputs": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "shape", "datatype", "data"],
            "additionalProperties": False, "properties": {
                "name": {"type": "string", "minLength": 1},
                "datatype": {"enum": list(DTYPES)},
                "shape": {"type": "array", "maxItems": MAX_RANK,
                          "items": {"type": "integer", "minimum": 0}},
                "data": {"type": "array"},
                "parameters": _GIVEN_PARAMETERS}}},
        "outputs": {"type": ["array", "null"], "items": {
            "type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"}, "parameters": _GIVEN_PARAMETERS}}}}}
INFER_RESPONSE = {"type": "object", "required": ["model_name", "model_version", "id", "outputs"],
                  "properties": {"model_name": {"type": "string"},
                                 "model_version": {"type": "string"},
                                 "id": {"type": "string"}, "parameters": PARAMETERS,
                                 "outputs": {"type": "array", "items": _OUTPUT}}}
LIVE = {"type": "object", "required": ["live"], "properties": {"live": {"type": "boolean"}}}
READY = {"type": "object", "required": ["ready"], "properties": {"ready": {"type": "boolean"}}}
MODEL_READY = {"type": "object", "required": ["name", "ready"], "properties": {
    "name": {"type": "string"}, "ready": {"type": "boolean"},
    "state": {"enum": ["asleep", "waking", "ready"],
              "description": "A model that sleeps, at its front door: whether it is awake"}}}
SERVER_METADATA = {"type": "object", "required": ["name", "version", "extensions"], "properties": {
    "name": {"type": "string"}, "version": {"type": "string"},
    "extensions": {"type": "array", "items": {"type": "string"}}}}
MODEL_METADATA = {"type": "object", "required": ["name", "versions", "platform", "inputs",
                                                 "outputs"], "properties": {
    "name": {"type": "string"}, "versions": {"type": "array", "items": {"type": "string"}},
    "platform": {"type": "string"}, "inputs": {"type": "array", "items": TENSOR_METADATA},
    "outputs": {"type": "array", "items": TENSOR_METADATA}}}
REPOSITORY_INDEX = {"type": "array", "items": {
    "type": "object", "required": ["name", "runtime", "state", "versions"], "properties": {
        "name": {"type": "string"}, "runtime": {"type": "string"}, "state": {"type": "string"},
        "reason": {"type": "string"}, "placement": {"type": "string"},
        "server": {"type": "string"}, "versions": {"type": "array", "items": {
            "type": "object", "required": ["name", "weight", "state"], "properties": {
                "name": {"type": "string"}, "weight": {"type": "integer"},
                "state": {"type": "string"},
                "loadSeconds": {"type": ["number", "null"]},
                "loadedAt": {"type": ["number", "null"]}}}}}}}
RELOADED = {"type": "object", "required": ["name", "state", "versions"], "properties": {
    "name": {"type": "string"}, "state": {"type": "string"},
    "versions": {"type": "array", "items": {"type": "string"}}}}
ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}


SHAPES_LISTED = 8
"""How many shapes a model's request schema lists for an input with free dimensions.
JSON Schema cannot say that `data` holds as many values as the shape's product, so each
listed shape names its exact count; the server takes larger shapes by the same rule."""


def _values(datatype: str) -> dict[str, Any]:
    """The JSON values a tensor of `datatype` holds (the range the server checks)."""
    if datatype == "BOOL":
        return {"type": "boolean"}
    if datatype == "BYTES":
        return {"type": "string"}
    dtype = DTYPES[datatype]
    if dtype.kind == "f":
        top = float(np.finfo(dtype).max)
        return {"type": "number", "minimum": -top, "maximum": top}
    info = np.iinfo(dtype)
    return {"type": "integer", "minimum": int(info.min), "maximum": int(info.max)}


def _shapes(shape: tuple[int, ...]) -> list[list[int]]:
    """Concrete shapes for a declared one (-1: any size), at most SHAPES_LISTED of them."""
    free = [axis for axis, size in enumerate(shape) if size < 0]
    per_axis = 1
    while (per_axis + 1) ** len(free) <= SHAPES_LISTED:
        per_axis += 1
    listed = []
    for sizes in itertools.product(range(1, per_axis + 1), repeat=len(free)):
        concrete = list(shape)
        for axis, size in zip(free, sizes, strict=True):
            concrete[axis] = size
        listed.append(concrete)
    return listed


def _input(tensor: TensorSpec) -> dict[str, Any]:
    return {"type": "object", "required": ["name", "shape", "datatype", "data"],
            "additionalProperties": False, "properties": {
                "name": {"const": tensor.name}, "datatype": {"const": tensor.datatype},
                "shape": {"type": "array", "items": {"type": "integer"}},
                "data": {"type": "array", "items": _values(tensor.datatype)},
                "parameters": _GIVEN_PARAMETERS},
            "oneOf": [{"properties": {"shape": {"const": shape}, "data": {
                "minItems": math.prod(shape), "maxItems": math.prod(shape)}}}
                for shape in _shapes(tensor.shape)]}


def infer_request(signature: Signature | None) -> dict[str, Any]:
    """The infer request of one model: its declared inputs by name, datatype, shape and
    value range, and its outputs by name. A model that declares no inputs takes any."""
    if signature is None or not signature.inputs:
        return INFER_REQUEST
    inputs: dict[str, Any] = {
        "type": "array", "minItems": len(signature.inputs), "maxItems": len(signature.inputs),
        "items": {"oneOf": [_input(t) for t in signature.inputs]}}
    if len(signature.inputs) > 1:  # each one once
        inputs["allOf"] = [{"contains": {"properties": {"name": {"const": t.name}}}}
                           for t in signature.inputs]
    properties = {**INFER_REQUEST["properties"], "inputs": inputs}
    if signature.outputs:
        properties["outputs"] = {"type": ["array", "null"], "items": {
            "type": "object", "required": ["name"],
            "properties": {"name": {"enum": [t.name for t in signature.outputs]},
                           "parameters": _GIVEN_PARAMETERS}}}
    return {**INFER_REQUEST, "properties": properties}
