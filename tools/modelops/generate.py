"""`modelops generate`: write (or check) every generated file, byte for byte.

Generated files are overlays/** and schemas/*.schema.json. Everything under
overlays/ that the specs no longer produce is removed, so a deleted spec
leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson

from modelops import manifests, yamlemit
from modelops.repo import Repo
from modelops.schemas import exported

OVERLAYS = "overlays"


@dataclasses.dataclass
class Drift:
    added: list[str]
    changed: list[str]
    removed: list[str]

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def lines(self) -> list[str]:
        return ([f"missing  {p}" for p in self.added] + [f"stale    {p}" for p in self.changed]
                + [f"orphaned {p}" for p in self.removed])


def _python_header(source: str) -> str:
    return "".join(f"# {line}\n" for line in manifests.header(source).splitlines())


def build(repo: Repo) -> dict[str, str]:
    """Relative path -> exact file text, for every generated file."""
    files, origin = manifests.overlays(repo, repo.sources)
    out = {}
    for path, data in files.items():
        if isinstance(data, str):  # a model class copied next to its kustomization
            source = origin[path].replace("model.yaml", "model.py")
            out[path] = _python_header(source) + data
        else:
            out[path] = yamlemit.dump(data, manifests.header(origin[path]))
    for name, schema in exported().items():
        out[f"schemas/{name}"] = orjson.dumps(
            schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
    return out


def _existing(root: Path) -> set[str]:
    base = root / OVERLAYS
    if not base.is_dir():
        return set()
    return {p.relative_to(root).as_posix() for p in base.rglob("*") if p.is_file()}


def diff(root: Path, wanted: dict[str, str]) -> Drift:
    existing = _existing(root)
    added, changed = [], []
    for path, text in sorted(wanted.items()):
        target = root / path
        if not target.is_file():
            added.append(path)
        elif target.read_bytes() != text.encode():
            changed.append(path)
    return Drift(added, changed, sorted(existing - wanted.keys()))


def write(root: Path, wanted: dict[str, str]) -> Drift:
    """Bring the tree in line with `wanted`; only files that differ are touched."""
    drift = diff(root, wanted)
    for path in drift.added + drift.changed:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(wanted[path].encode())
    for path in drift.removed:
        (root / path).unlink()
    base = root / OVERLAYS
    if base.is_dir():  # remove directories the removal emptied, deepest first
        for directory in sorted((p for p in base.rglob("*") if p.is_dir()), reverse=True):
            if not any(directory.iterdir()):
                directory.rmdir()
    return drift
