"""`modelops generate`: write (or check) every generated file, byte for byte.

Generated files are overlays/**, schemas/*.schema.json and docs/spec.md. Everything under
overlays/ that the specs no longer produce is removed, so a deleted spec
leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import orjson

from modelops import manifests, reference, yamlemit
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
        if path.endswith(".json"):  # JSON has no comments: the header is a field
            data = {**data, "generated": manifests.header(origin[path]).replace("\n", " ")}
            out[path] = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
        elif isinstance(data, str):  # a model class copied next to its kustomization
            source = origin[path].replace("model.yaml", "model.py")
            out[path] = _python_header(source) + data
        elif isinstance(data, list):  # several objects in one file
            out[path] = yamlemit.dump_all(data, manifests.header(origin[path]))
        else:
            out[path] = yamlemit.dump(data, manifests.header(origin[path]))
    out["docs/spec.md"] = reference.markdown()
    for name, schema in exported().items():
        out[f"schemas/{name}"] = orjson.dumps(
            schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
    return out


def _existing(root: Path) -> tuple[set[str], list[str]]:
    """Files and directories under overlays/, relative to the root ('/'-separated)."""
    files, dirs = set(), []
    for top, subdirs, names in os.walk(root / OVERLAYS):
        rel = os.path.relpath(top, root).replace(os.sep, "/")
        dirs.append(rel)
        files.update(f"{rel}/{name}" for name in names)
    return files, dirs


def diff(root: Path, wanted: dict[str, str]) -> Drift:
    existing, _ = _existing(root)
    added, changed = [], []
    for path, text in sorted(wanted.items()):
        full = os.path.join(root, path)
        present = path in existing if path.startswith(OVERLAYS + "/") else os.path.isfile(full)
        if not present:
            added.append(path)
            continue
        with open(full, "rb") as handle:
            if handle.read() != text.encode():
                changed.append(path)
    return Drift(added, changed, sorted(existing - wanted.keys()))


def write(root: Path, wanted: dict[str, str]) -> Drift:
    """Bring the tree in line with `wanted`; only files that differ are touched."""
    drift = diff(root, wanted)
    made: set[str] = set()
    for path in drift.added + drift.changed:
        full = os.path.join(root, path)
        parent = os.path.dirname(full)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        with open(full, "wb") as handle:
            handle.write(wanted[path].encode())
    for path in drift.removed:
        os.unlink(os.path.join(root, path))
    if drift.removed:  # remove directories the removal emptied, deepest first
        for rel in sorted(_existing(root)[1], reverse=True):
            if not os.listdir(os.path.join(root, rel)):
                os.rmdir(os.path.join(root, rel))
    return drift
