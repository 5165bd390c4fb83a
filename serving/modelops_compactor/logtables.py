"""Prediction-log records as table rows: the SQL DuckDB runs over closed log files.

A record holds v2 tensors (`inputs`, `outputs`) whose first dimension counts the
instances in the request. Each instance becomes one row: request id, row index,
time, latency, status, and one column per feature: `in_<tensor>` when the tensor
has one value per instance, `in_<tensor>_<j>` for the j-th of several (outputs
alike, with `out_`). A tensor wider than WIDE values per instance stays one list
column, and a tensor whose first dimension is not the batch is repeated on every row.

Records are grouped by layout (tensor names, datatypes and shapes) so each group
gets SQL that knows its columns; a dataset's groups are unioned by column name. So that
memory stays bounded whatever names clients send, a dataset gets columns for its most
common layouts only (up to MAX_LAYOUTS of them and MAX_COLUMNS feature columns); the
records of any other layout keep their tensors whole, as JSON in `inputs_json` and
`outputs_json`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from modelops_runtime.records import SQL_COLUMNS

WIDE = 256
MAX_LAYOUTS = 32
MAX_COLUMNS = 512
MAX_RECORD_BYTES = 16 * 1024 * 1024
"""The largest line DuckDB reads: a request body is capped at 8 MiB by default, and longer
records are cut into pieces first (screen.py). read_json sizes its buffers by it, so a
larger bound costs memory on every run."""
NAME = r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?"  # dataset names as the spec allows them

SQL_TYPES = {"BOOL": "BOOLEAN", "INT8": "TINYINT", "INT16": "SMALLINT", "INT32": "INTEGER",
              "INT64": "BIGINT", "UINT8": "UTINYINT", "UINT16": "USMALLINT",
              "UINT32": "UINTEGER", "UINT64": "UBIGINT", "FP16": "FLOAT", "FP32": "FLOAT",
              "FP64": "DOUBLE", "BYTES": "VARCHAR"}
_PREFIX = {"inputs": "in_", "outputs": "out_"}


_TENSORS = """'[{"name": "VARCHAR", "datatype": "VARCHAR", "shape": "BIGINT[]", "data": "JSON"}]'"""
_ROWS = ("CASE WHEN len(inputs[1].shape) > 0 THEN inputs[1].shape[1] "
         "ELSE 1 END")  # instances in a record: the first input's first dimension


def _layout(side: str) -> str:
    return (f"list_transform({side}, lambda t: {{'name': t.name, 'datatype': t.datatype, "
            f"'shape': t.shape}})")


def load_sql() -> str:
    """Read the files given as the one parameter into the temporary table `records`.

    Each record's tensors are parsed once, into name, datatype, shape and the data still
    as JSON (cast later, when its type is known), and the record gets the digest of its
    layout."""
    read = {**SQL_COLUMNS, "row_offset": "INTEGER"}  # a piece's first instance (screen.py)
    columns = "{" + ", ".join(f"{k}: '{v}'" for k, v in read.items()) + "}"
    return f"""
        CREATE OR REPLACE TEMP TABLE records AS
        SELECT *, md5(concat_ws('|', dataset, CAST({_layout('inputs')} AS VARCHAR),
                                CAST({_layout('outputs')} AS VARCHAR))) AS layout FROM (
            SELECT * REPLACE (
                CASE WHEN regexp_full_match(coalesce(dataset, model, ''), '{NAME}')
                     THEN coalesce(dataset, model) ELSE 'unnamed' END AS dataset,
                coalesce(model, 'unknown') AS model, coalesce(version, 'unknown') AS version,
                json_transform(inputs, {_TENSORS}) AS inputs,
                json_transform(outputs, {_TENSORS}) AS outputs)
            FROM read_json(?, format = 'newline_delimited', columns = {columns},
                           maximum_object_size = {MAX_RECORD_BYTES}))"""


ROWS_SQL = (f"SELECT count(*) FILTER (WHERE coalesce(row_offset, 0) = 0), "
            f"coalesce(sum({_ROWS}), 0) FROM records")
"""(records, instances): a record cut into pieces counts once."""

LAYOUTS_SQL = f"""
    SELECT layout, dataset, any_value({_layout('inputs')}), any_value({_layout('outputs')}),
           count(*) AS n
    FROM records GROUP BY layout, dataset ORDER BY dataset, n DESC, layout"""


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True)
class Tensor:
    side: str
    index: int
    name: str
    datatype: str
    rank: int
    width: int  # values per row
    per_row: bool  # False: the whole tensor repeats on every row

    def flat_sql(self) -> str:
        """The tensor's data as one flat list, whether the client sent it nested or flat."""
        data = f"{self.side}[{self.index + 1}].data"
        sql_type = SQL_TYPES[self.datatype]
        flat = f"CAST({data} AS {sql_type}[])"
        if self.rank < 2:
            return flat
        nested = f"CAST({data} AS {sql_type}{'[]' * self.rank})"
        for _ in range(self.rank - 1):
            nested = f"flatten({nested})"
        return f"CASE WHEN json_type({data}, '$[0]') = 'ARRAY' THEN {nested} ELSE {flat} END"

    def columns(self, alias: str) -> list[str]:
        """The tensor's feature columns, as `<expression> AS <name>`. A per-row tensor is
        unnested, one row per instance (its j-th column is the list sliced from j by the
        row width): linear in its size, where indexing the whole list on every row was
        quadratic and ran a 200,000-row request out of memory."""
        name = _PREFIX[self.side] + self.name
        w = self.width
        if not self.per_row:  # the same on every row
            if w > WIDE:
                return [f"{alias} AS {quote(name)}"]
            if w == 1:
                return [f"{alias}[1] AS {quote(name)}"]
            return [f"{alias}[{j + 1}] AS {quote(f'{name}_{j}')}" for j in range(w)]
        if w > WIDE:
            rows = f"list_transform(range(n), lambda i: {alias}[i * {w} + 1 : i * {w} + {w}])"
            return [f"unnest({rows}) AS {quote(name)}"]
        if w == 1:
            return [f"unnest({alias}) AS {quote(name)}"]
        return [f"unnest(list_slice({alias}, {j + 1}, len({alias}), {w})) "
                f"AS {quote(f'{name}_{j}')}" for j in range(w)]


def _tensors(side: str, layout: list[dict[str, Any]] | None, rows: int) -> tuple[Tensor, ...]:
    out = []
    for index, tensor in enumerate(layout or []):
        name, datatype, shape = tensor["name"], tensor["datatype"], tensor["shape"]
        if datatype not in SQL_TYPES or shape is None:
            raise ValueError(f"{side} tensor {name!r}: unknown datatype {datatype!r}")
        per_row = len(shape) >= 1 and shape[0] == rows
        width = math.prod(shape[1:]) if per_row else math.prod(shape)
        if width:
            out.append(Tensor(side, index, str(name), datatype, len(shape), width, per_row))
    return tuple(out)


_COMMON = """model, version,
    strftime(make_timestamp(CAST(ts * 1000000 AS BIGINT)), '%Y-%m-%d') AS date,
    id AS request_id, CAST(coalesce(row_offset, 0) + r AS INTEGER) AS "row",
    to_timestamp(ts) AS ts, latency_ms, status"""
_SCALARS = "model, version, ts, id, latency_ms, status, row_offset"
"""What the rows of one record share; its tensors' lists are not carried onto each row."""


def _columns(tensors: tuple[Tensor, ...]) -> set[str]:
    return {column.rsplit(" AS ", 1)[1] for t in tensors for column in t.columns("x")}


def plan_dataset(layouts: list[tuple[Any, ...]]) -> str:
    """One SELECT per group of layouts with the same columns, unioned by name; the
    layouts past the caps share one SELECT that keeps their tensors as JSON.

    `layouts` are rows of LAYOUTS_SQL for one dataset, the most common first.
    """
    groups: dict[tuple[Tensor, ...], list[str]] = {}
    columns: set[str] = set()
    whole: list[str] = []
    for layout, _, inputs, outputs, _count in layouts:
        first = ((inputs or [{}])[0] or {}).get("shape") or []
        rows = first[0] if first else 1
        tensors = _tensors("inputs", inputs, rows) + _tensors("outputs", outputs, rows)
        if tensors not in groups:
            more = columns | _columns(tensors)
            if len(groups) >= MAX_LAYOUTS or len(more) > MAX_COLUMNS:
                whole.append(layout)
                continue
            columns = more
        groups.setdefault(tensors, []).append(layout)
    selects = []
    if whole:
        wanted = ", ".join(f"'{m}'" for m in whole)
        selects.append(f"""
            SELECT {_COMMON}, to_json(inputs) AS inputs_json, to_json(outputs) AS outputs_json
            FROM (SELECT *, {_ROWS} AS n FROM records WHERE layout IN ({wanted})),
                 range(n) AS instances(r)""")
    for tensors, members in groups.items():
        flats = "".join(f", {t.flat_sql()} AS t{i}" for i, t in enumerate(tensors))
        features = [c for i, t in enumerate(tensors) for c in t.columns(f"t{i}")]
        named = "".join(", " + c.rsplit(" AS ", 1)[1] for c in features)
        wanted = ", ".join(f"'{m}'" for m in members)  # md5 hex digests: safe literals
        selects.append(f"""
            SELECT {_COMMON}{named}
            FROM (SELECT {_SCALARS}, unnest(range(n)) AS r{"".join(", " + c for c in features)}
                  FROM (SELECT *, {_ROWS} AS n{flats}
                        FROM records WHERE layout IN ({wanted})))""")
    return "\nUNION ALL BY NAME\n".join(selects)


def copy_sql(select: str, target: str, run: str) -> str:
    """Write the rows as Parquet partitioned model=/version=/date=, files named after the run."""
    path = target.replace("'", "''")
    return f"""COPY ({select}) TO '{path}' (FORMAT parquet, COMPRESSION zstd,
        PARTITION_BY (model, version, date), FILENAME_PATTERN 'part-{run}-{{i}}',
        OVERWRITE_OR_IGNORE true)"""  # a run's loads write side by side: names never meet
