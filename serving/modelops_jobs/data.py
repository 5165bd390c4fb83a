"""Datasets on the shared volume as numpy arrays, read with DuckDB: a Parquet or CSV file,
or a folder of them (the compactor's hive-partitioned output among them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from modelops_compactor.logtables import quote
from modelops_runtime.model import Model

SUFFIXES = (".parquet", ".csv")


class DataError(Exception):
    """A dataset that cannot be read as asked: missing, or without a column."""


def files(path: Path, inside: Path) -> list[Path]:
    """The data files of a dataset, in a stable order (skipping the compactor's
    `_drift.json` and anything else that is not data). A symbolic link may not lead out
    of `inside` (the volume's datasets/): a job reads only what its datasets hold."""
    if path.is_file():
        found = [path]
    elif not path.is_dir():
        raise DataError(f"{path} does not exist")
    else:
        found = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file()
                       and not any(part.startswith(("_", "."))
                                   for part in p.relative_to(path).parts))
    root = inside.resolve()
    for file in found:
        if not file.resolve().is_relative_to(root):
            raise DataError(f"{file} leads out of {inside} (a symbolic link?)")
    if not found:
        raise DataError(f"{path} holds no .parquet or .csv file")
    return found


def source(paths: list[Path], row_numbers: bool = False) -> str:
    """A DuckDB table function over these files (all Parquet, or all CSV); `row_numbers`
    adds Parquet's `file_row_number`, whose filters skip whole row groups."""
    listed = ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)
    if all(p.suffix == ".parquet" for p in paths):
        numbered = ", file_row_number = true" if row_numbers else ""
        return f"read_parquet([{listed}], union_by_name = true{numbered})"
    if all(p.suffix == ".csv" for p in paths):
        return f"read_csv([{listed}], union_by_name = true)"
    raise DataError("a dataset mixes Parquet and CSV files")


def matrix(fetched: dict[str, Any], names: list[str]) -> np.ndarray[Any, Any]:
    """Columns as one float64 matrix, NULL as NaN."""
    if not names:
        return np.empty((0, 0))
    return np.column_stack([np.ma.filled(fetched[n].astype(np.float64), np.nan)
                            if isinstance(fetched[n], np.ma.MaskedArray)
                            else np.asarray(fetched[n], dtype=np.float64) for n in names])


def select(names: list[str], types: dict[str, str] | None = None) -> str:
    """The columns as DOUBLE; those already DOUBLE (given `types`) are read as they are,
    since a cast would copy them."""
    return ", ".join(quote(n) if types and types.get(n) == "DOUBLE" else
                     f"CAST({quote(n)} AS DOUBLE) AS {quote(n)}" for n in names)


def types(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    return {row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()}


def input_tensor(model: Model) -> str:
    """The name of the one input tensor a job feeds its feature matrix to."""
    inputs = model.metadata().get("inputs")
    return inputs[0]["name"] if inputs else "input-0"
