"""The prediction record: one line of a prediction log.

The server's data plane writes it (predlog.py), the log compactor reads it
(modelops_compactor.logtables): this class is the one definition of its shape, and
the suffixes below are the one definition of which files a reader may take.
"""

from __future__ import annotations

import dataclasses
from typing import Any

OPEN_SUFFIX = ".jsonl.open"  # being written: never read
CLOSED_SUFFIX = ".jsonl"  # complete (fsynced, renamed): the compactor's input


@dataclasses.dataclass(slots=True)
class PredictionRecord:
    """One served request (orjson writes a dataclass as a JSON object, field by field)."""

    id: str
    """The request id (X-Request-ID): the audit trail from response to dataset row."""
    model: str
    version: str
    dataset: str
    """The dataset the compacted record feeds."""
    ts: float
    """Unix time the response was sent."""
    inputs: list[dict[str, Any]]
    """The request's v2 input tensors, as sent."""
    outputs: list[dict[str, Any]]
    """The response's v2 output tensors."""
    latency_ms: float
    status: int


_SQL = {"str": "VARCHAR", "float": "DOUBLE", "int": "INTEGER", "list[dict[str, Any]]": "JSON"}
SQL_COLUMNS = {f.name: _SQL[str(f.type)] for f in dataclasses.fields(PredictionRecord)}
"""Each field's type as DuckDB reads it from a log line."""
