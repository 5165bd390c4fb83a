"""The JSON shapes of the protocol routes, as the OpenAPI document states them (docs.py)
and schemathesis checks every answer against them (tests/system/test_openapi.py)."""

from __future__ import annotations

from typing import Any

from modelops_runtime.inference import MAX_ID_LENGTH
from modelops_runtime.tensors import DTYPES, MAX_RANK

_SCALAR = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}
PARAMETERS = {"type": "object", "additionalProperties": _SCALAR}
TENSOR_METADATA: dict[str, Any] = {
    "type": "object", "required": ["name", "datatype", "shape"], "properties": {
        "name": {"type": "string"}, "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}}}}
_OUTPUT = {"type": "object", "required": ["name", "datatype", "shape"], "properties": {
    **TENSOR_METADATA["properties"], "data": {"type": "array"}, "parameters": PARAMETERS}}

INFER_REQUEST = {
    "type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string", "maxLength": MAX_ID_LENGTH},
        "parameters": PARAMETERS,
        "inputs": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "shape", "datatype", "data"],
            "additionalProperties": False, "properties": {
                "name": {"type": "string", "minLength": 1},
                "datatype": {"enum": list(DTYPES)},
                "shape": {"type": "array", "maxItems": MAX_RANK,
                          "items": {"type": "integer", "minimum": 0}},
                "data": {"type": "array"},
                "parameters": PARAMETERS}}},
        "outputs": {"type": "array", "items": {
            "type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"}, "parameters": PARAMETERS}}}}}
INFER_RESPONSE = {"type": "object", "required": ["model_name", "model_version", "id", "outputs"],
                  "properties": {"model_name": {"type": "string"},
                                 "model_version": {"type": "string"},
                                 "id": {"type": "string"}, "parameters": PARAMETERS,
                                 "outputs": {"type": "array", "items": _OUTPUT}}}
LIVE = {"type": "object", "required": ["live"], "properties": {"live": {"type": "boolean"}}}
READY = {"type": "object", "required": ["ready"], "properties": {"ready": {"type": "boolean"}}}
MODEL_READY = {"type": "object", "required": ["name", "ready"], "properties": {
    "name": {"type": "string"}, "ready": {"type": "boolean"}}}
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
