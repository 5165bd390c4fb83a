"""Kubernetes resource quantities ("500m", "1.5", "512Mi", "2G") as exact Decimals.

Why hand-made: the Kubernetes client's `parse_quantity` comes only with the whole client,
whose import took 0.33 s here (`python -X importtime`, kubernetes 37.0.2): a quarter of
`modelops generate --check` on 1,000 specs (benchmarks/generate.py), for 20 lines.
"""

from __future__ import annotations

import re
from decimal import Decimal

_PATTERN = re.compile(r"^(?P<num>\d+(?:\.\d+)?|\.\d+)"
                      r"(?P<suffix>[numkMGTPE]|[KMGTPE]i|[eE][+-]?\d+)?$")
_FACTORS = {
    None: Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}


def parse(text: str | int | float) -> Decimal:
    """The value of a quantity in base units (cores or bytes); ValueError if malformed."""
    if isinstance(text, bool):
        raise ValueError("expected a quantity such as '500m' or '1Gi', not a boolean")
    match = _PATTERN.match(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity "
                         f"(e.g. '500m', '2', '512Mi', '1Gi')")
    number, suffix = Decimal(match["num"]), match["suffix"]
    if suffix and suffix[0] in "eE":
        return number * (Decimal(10) ** int(suffix[1:]))
    return number * _FACTORS[suffix]


def cpu(value: Decimal) -> str:
    """Cores as a short quantity: 0.5 -> '500m', 2 -> '2'."""
    return str(int(value)) if value == int(value) else f"{int(value * 1000)}m"


def memory(value: Decimal) -> str:
    """Bytes as the largest exact binary unit: 536870912 -> '512Mi'."""
    for unit in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        factor = _FACTORS[unit]
        if value >= factor and value % factor == 0:
            return f"{int(value / factor)}{unit}"
    return str(int(value))
