"""JSON Schemas exported from the pydantic models, for CI and editors."""

from __future__ import annotations

from typing import Any

from modelops.capacity import CapacityBudget
from modelops.settings import Settings
from modelops.spec import ModelDocument, PoolDocument

BASE_URL = "https://modelops.dev/schemas"  # a stable $id; editors resolve by file path
EXPORTS = {"model.schema.json": ModelDocument, "pool.schema.json": PoolDocument,
           "settings.schema.json": Settings, "capacity.schema.json": CapacityBudget}


def exported() -> dict[str, dict[str, Any]]:
    out = {}
    for file, model in EXPORTS.items():
        schema = model.model_json_schema()
        out[file] = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                     "$id": f"{BASE_URL}/{file}", **schema}
    return out
