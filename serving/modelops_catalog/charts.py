"""Small charts drawn on the server as inline SVG (no script, no external asset, so the page
works air-gapped): each model's traffic split, and the drift of its inputs (PSI per
feature) from the newest summary the log compactor wrote on the shared volume."""

from __future__ import annotations

import html
import os
import stat
from pathlib import Path
from typing import Any

import orjson

PALETTE = ("#2458d6", "#f08c00", "#2f9e44", "#ae3ec9", "#e03131", "#1098ad")
VERDICT = {"stable": "#2f9e44", "moderate": "#f08c00", "significant": "#e03131",
           "too few rows": "#adb5bd"}
MODERATE, SIGNIFICANT = 0.1, 0.25  # the compactor's reading of PSI
MAX_FEATURES = 12  # a chart, not a table: the most drifted first
AXIS_END = 0.5
"""Every drift chart's PSI axis ends here, so bars compare across models and days; a
longer bar is cut, its value shown."""
_FONT = 'font-family="system-ui, sans-serif"'  # attributes, not <style>: that would leak


def traffic(versions: list[tuple[str, int]], width: int = 320, bar: int = 26) -> str:
    """One bar split by the versions' weights, each part labelled when it is wide enough,
    and a legend under it naming every part (a 1% canary is too thin for its label)."""
    label = ", ".join(f"{name} {weight}%" for name, weight in versions)
    parts, legend, x, key_x = [], [], 0.0, 0
    for i, (name, weight) in enumerate(versions):
        w, colour, text = width * weight / 100, PALETTE[i % len(PALETTE)], \
            f"{html.escape(name)} {weight}%"
        parts.append(f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{bar}" '
                     f'fill="{colour}"><title>{text}</title></rect>')
        if w >= 48:
            parts.append(f'<text x="{x + w / 2:.1f}" y="{bar / 2 + 4.5:.1f}" '
                         f'text-anchor="middle" fill="#fff">{text}</text>')
        legend.append(f'<rect class="key" x="{key_x}" y="{bar + 6}" width="10" height="10" '
                      f'fill="{colour}"/><text x="{key_x + 14}" y="{bar + 15}" '
                      f'fill="#1d2330" font-weight="400">{text}</text>')
        x += w
        key_x += 24 + 7 * len(f"{name} {weight}%")
    height = bar + 20
    return (f'<svg class="chart traffic" role="img" aria-label="traffic: {html.escape(label)}" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'xmlns="http://www.w3.org/2000/svg"><g {_FONT} font-size="12" font-weight="600">'
            f'{"".join(parts)}{"".join(legend)}</g></svg>')


def drift(features: dict[str, dict[str, Any]], width: int = 420) -> str:
    """A bar per feature (PSI), coloured by verdict, with the 0.1 and 0.25 thresholds."""
    def number(entry: Any) -> float | None:  # the file is the compactor's, but on a volume
        psi = entry.get("psi") if isinstance(entry, dict) else None
        return float(psi) if isinstance(psi, (int, float)) and not isinstance(psi, bool) \
            and psi == psi and abs(psi) < 1e6 else None

    def judged(entry: Any, value: float) -> str:  # the compactor's verdict, when it gave one
        said = entry.get("drift") if isinstance(entry, dict) else None
        return said if said in VERDICT else "significant" if value > SIGNIFICANT else \
            "moderate" if value > MODERATE else "stable"

    ranked = sorted(((str(name), number(f), f) for name, f in features.items()),
                    key=lambda item: -(item[1] or 0))[:MAX_FEATURES]
    label_w, value_w, row = 130, 50, 18
    bar_w = width - label_w - value_w
    scale = AXIS_END
    height = row * len(ranked) + 20
    parts = []
    for i, (name, psi, entry) in enumerate(ranked):
        y = i * row
        value = psi or 0.0
        colour = VERDICT[judged(entry, value)]
        short = html.escape(name.removeprefix("in_")[:20])
        length = max(1.0, bar_w * min(value, scale) / scale)
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{short}</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{length:.1f}"'
                     f' height="{row - 6}" fill="{colour}"><title>{short}: PSI '
                     f'{"n/a" if psi is None else psi}</title></rect>'
                     f'<text x="{width - value_w + 4}" y="{y + 13}">'
                     f'{"n/a" if psi is None else f"{psi:.3f}"}</text>')
    for threshold in (MODERATE, SIGNIFICANT):
        x = label_w + bar_w * threshold / scale
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 16}" '
                     f'stroke="#5a6273" stroke-dasharray="3 3"/>'
                     f'<text x="{x:.1f}" y="{height - 4}" text-anchor="middle">{threshold}</text>')
    return (f'<svg class="chart drift" role="img" aria-label="drift (PSI) per feature" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'xmlns="http://www.w3.org/2000/svg"><g {_FONT} font-size="11" fill="#1d2330">'
            f'{"".join(parts)}</g></svg>')


MAX_SUMMARY_BYTES = 1 << 20
"""A drift summary the compactor writes is a few KB; anything past this is not one."""


def _summary_bytes(path: Path) -> bytes | None:
    """The file's bytes when it is a regular file of a sane size; None otherwise. Opened
    without blocking, so a FIFO or a device in its place cannot hang the page."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_SUMMARY_BYTES:
            return None
        return handle.read(MAX_SUMMARY_BYTES + 1)[:MAX_SUMMARY_BYTES]


def latest_drift(shared_root: Path, folder: str) -> dict[str, Any] | None:
    """The newest day's drift summary under datasets/<dataset>/model=<m>/, of the version
    that served the most rows that day (a canary's few rows say little); None when the
    compactor has written none yet."""
    found = []
    for path in (shared_root / folder).glob("version=*/date=*/_drift.json"):
        data = _summary_bytes(path)
        try:
            report = orjson.loads(data) if data is not None else None
        except orjson.JSONDecodeError:
            continue  # being replaced right now, or damaged: the others still show
        if isinstance(report, dict) and isinstance(report.get("features"), dict):
            date = path.parent.name.removeprefix("date=")
            version = path.parent.parent.name.removeprefix("version=")
            rows = report.get("rows") if isinstance(report.get("rows"), int) else 0
            found.append(((date, rows, version),
                          {"date": date, "version": version, **report}))
    return max(found, key=lambda item: item[0])[1] if found else None
