"""Drift of each input feature against a reference: the population stability index (PSI).

The reference's deciles cut both samples into ten bins; PSI sums
(current% - reference%) * ln(current% / reference%) over the bins. Conventional
reading: under 0.1 stable, 0.1 to 0.25 moderate shift, above 0.25 significant.
Below MIN_ROWS rows a day the index is noise (four rows gave PSI 4.9 to 7.0): the value is
kept, and the verdict is "too few rows".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from modelops_compactor.logtables import quote

BINS = 10
FLOOR = 1e-4  # an empty bin would make the logarithm infinite
MODERATE, SIGNIFICANT = 0.1, 0.25
MIN_ROWS = 100
"""Rows a day below which no verdict is given: ten per bin, on average."""


def psi(reference: np.ndarray, current: np.ndarray, bins: int = BINS) -> float:
    reference = reference[~np.isnan(reference)]
    current = current[~np.isnan(current)]
    if not len(reference) or not len(current):
        return float("nan")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    expected = np.bincount(np.searchsorted(edges, reference, side="right"),
                           minlength=len(edges) + 1) / len(reference)
    actual = np.bincount(np.searchsorted(edges, current, side="right"),
                         minlength=len(edges) + 1) / len(current)
    expected, actual = np.maximum(expected, FLOOR), np.maximum(actual, FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def verdict(value: float) -> str:
    if np.isnan(value):
        return "no data"
    return "significant" if value > SIGNIFICANT else "moderate" if value > MODERATE else "stable"


def _literal(path: Path | str) -> str:
    return str(path).replace("'", "''")


def _values(column: Any) -> np.ndarray[Any, Any]:
    """A fetched column as floats, NULL as NaN."""
    return np.ma.filled(np.ma.asarray(column, dtype=float), np.nan)


def reference_source(path: Path) -> str:
    """DuckDB table function reading a reference: a Parquet or CSV file, or a folder of them."""
    text = _literal(path)
    if path.is_dir():
        if any(path.rglob("*.parquet")):
            return f"read_parquet('{text}/**/*.parquet', union_by_name = true)"
        return f"read_csv('{text}/**/*.csv', union_by_name = true)"
    if path.suffix == ".csv":
        return f"read_csv('{text}')"
    return f"read_parquet('{text}')"


class Reference:
    """A reference data set, read once per run however many partitions compare with it."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, name: str):
        self.con, self.name = con, name
        self.source = reference_source(path) if path.exists() else None
        self.columns = set(_numeric_columns(con, self.source)) if self.source else set()
        self._values: dict[str, np.ndarray] = {}

    def values(self, columns: list[str]) -> dict[str, np.ndarray]:
        missing = [c for c in columns if c not in self._values]
        if missing:
            query = f"SELECT {_doubles(missing)} FROM {self.source}"
            fetched = self.con.execute(query).fetchnumpy()
            self._values.update({c: _values(fetched[c]) for c in missing})
        return {c: self._values[c] for c in columns}


def _doubles(columns: list[str]) -> str:
    return ", ".join(f"CAST({quote(c)} AS DOUBLE) AS {quote(c)}" for c in columns)


def summarize(con: duckdb.DuckDBPyConnection, partition: Path,
              reference: Reference) -> dict[str, Any]:
    """Drift of every numeric input column of one partition (all its parts)."""
    if reference.source is None:
        return {"reference": reference.name, "error": f"reference {reference.name} not found"}
    current_source = f"read_parquet('{_literal(partition)}/*.parquet', union_by_name = true)"
    features = [c for c in _numeric_columns(con, current_source) if c.startswith("in_")]
    matched = [c for c in features if c in reference.columns]
    report: dict[str, Any] = {"reference": reference.name, "features": {},
                    "unmatched": [c for c in features if c not in reference.columns]}
    if not matched:
        return report
    ref = reference.values(matched)
    cur = con.execute(f"SELECT {_doubles(matched)} FROM {current_source}").fetchnumpy()
    report["rows"] = len(cur[matched[0]])
    report["referenceRows"] = len(ref[matched[0]])
    report["minRows"] = MIN_ROWS
    for column in matched:
        value = psi(ref[column], _values(cur[column]))
        report["features"][column] = {
            "psi": None if np.isnan(value) else round(value, 6),
            "drift": verdict(value) if report["rows"] >= MIN_ROWS else "too few rows"}
    return report


def _numeric_columns(con: duckdb.DuckDBPyConnection, source: str) -> list[str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    numeric = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER",
               "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL", "HUGEINT")
    return [name for name, kind, *_ in rows if str(kind).startswith(numeric)]
