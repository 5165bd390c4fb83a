"""The fields of an upstream CRD release, as a list the tests check the kept schemas against.

`schemas/crds/*.json` are strict, hand-kept subsets of upstream custom resources. Each
names the release it follows (`x-upstream`); `schemas/crds/upstream/<kind>.fields`
lists every field path of that release's CRD with its type, so a field added to a kept
schema that the release does not have (or types differently) fails a test, offline.

Refresh an index from a checkout of the upstream repository at the named release:
    python -m modelops.crdfields schemas/crds/<kept>.json CHECKOUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ANY = "*"  # x-kubernetes-preserve-unknown-fields: any field below is the upstream's
SAME = "="  # the fields below are those below the path that follows


_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number"}


def _type(node: dict) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "int-or-string"
    if "type" in node:
        kinds = [node["type"]] if isinstance(node["type"], str) else node["type"]
        kinds = sorted(set(kinds) - {"null"})
        return "int-or-string" if kinds == ["integer", "string"] else "|".join(kinds)
    values = node.get("enum") or ([node["const"]] if "const" in node else [])
    return _JSON_TYPES[type(values[0])] if values else "object"


def walk(node: dict, path: str = "", defs: dict | None = None, seen: dict | None = None):
    """(path, type) of every field below `node`: `[]` marks list items, `{}` map values.
    A subtree that repeats one met before (an ApplicationSet's generators each carry
    the whole Application template) is one line, `path SAME<earlier path>`."""
    defs = defs if defs is not None else node.get("$defs", {})
    if seen is not None and len(node.get("properties", {})) > 2:
        key = json.dumps(node, sort_keys=True)
        if key in seen:
            yield path, SAME + seen[key]
            return
        seen[key] = path
    if "$ref" in node:
        node = {**defs[node["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in node.items()
                                                          if k != "$ref"}}
    for choice in node.get("anyOf", []) + node.get("oneOf", []) + node.get("allOf", []):
        yield from walk({**choice, "type": choice.get("type", node.get("type"))}, path, defs)
    if node.get("x-kubernetes-preserve-unknown-fields"):
        yield path + ".", ANY
    for name, child in node.get("properties", {}).items():
        sub = f"{path}.{name}" if path else name
        child = defs[child["$ref"].rsplit("/", 1)[1]] if "$ref" in child else child
        yield sub, _type(child)
        yield from walk(child, sub, defs, seen)
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], path + "[]", defs, seen)
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], path + "{}", defs, seen)


def upstream_fields(crd: dict, version: str) -> set[tuple[str, str]]:
    """Fields of one served version of a CustomResourceDefinition, below `spec`."""
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == version)[
        "schema"]["openAPIV3Schema"]
    return {("spec", "object"), *walk(schema["properties"]["spec"], "spec", seen={})}


def kept_fields(kept: dict) -> set[tuple[str, str]]:
    """Fields of a kept schema below `spec` (metadata is Kubernetes', not the CRD's)."""
    return {(p, t) for p, t in walk(kept) if p.startswith("spec")}


def index_path(kept_file: Path) -> Path:
    return kept_file.parent / "upstream" / (kept_file.stem + ".fields")


def read_index(kept_file: Path) -> tuple[str, dict[str, str], dict[str, str]]:
    """(its header, path -> type, path -> the earlier path it repeats) of an index."""
    header, *lines = index_path(kept_file).read_text().splitlines()
    types, same = {}, {}
    for path, kind in (line.rsplit(" ", 1) for line in lines):
        if kind.startswith(SAME):
            same[path] = kind[1:]
        else:
            types[path] = kind
    return header, types, same


def unknown_fields(kept_file: Path) -> list[str]:
    """Fields of a kept schema that its upstream release lacks, or types otherwise."""
    _, types, same = read_index(kept_file)

    def upstream_type(path: str) -> str | None:
        if path in types:
            return types[path]
        for cut in range(len(path) - 1, 0, -1):  # the nearest ancestor that repeats or is open
            if path[cut] not in ".[{":
                continue
            prefix = path[:cut]
            if types.get(prefix + ".") == ANY:
                return ANY
            if prefix in same:
                return upstream_type(same[prefix] + path[cut:])
        return None

    kept = json.loads(kept_file.read_text())
    return sorted(f"{p} ({t})" for p, t in kept_fields(kept)
                  if upstream_type(p) not in (t, ANY))


def main(kept_file: str, checkout: str) -> None:
    kept = json.loads(Path(kept_file).read_text())
    up = kept["x-upstream"]
    crd = yaml.safe_load((Path(checkout) / up["crd"]).read_text())
    version = kept["properties"]["apiVersion"]["const"].rsplit("/", 1)[1]
    lines = sorted(f"{p} {t}" for p, t in upstream_fields(crd, version))
    header = f"# {up['repository']} {up['release']} {up['crd']} ({version}): field type\n"
    index_path(Path(kept_file)).parent.mkdir(exist_ok=True)
    index_path(Path(kept_file)).write_text(header + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
