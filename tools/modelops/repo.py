"""Load a repository: every spec under models/, the platform settings and budget.

`load(root)` never raises on bad input: it returns the specs that are valid and
a diagnostic for every problem in every file, including the cross-file checks.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from deepmerge import Merger
from pydantic import BaseModel, ValidationError

from modelops import capacity, checks
from modelops.capacity import CapacityBudget
from modelops.diagnostics import Diagnostic
from modelops.located import closest, diagnose
from modelops.settings import Settings
from modelops.spec import (
    KINDS,
    Autoscaling,
    ModelDocument,
    ModelSpec,
    PoolDocument,
    PoolSpec,
    Resources,
)
from modelops.specfile import SpecFile
from modelops.yamlload import Document, Loc, line_col, load_text

SPEC_FILES = {"Model": "model.yaml", "Pool": "pool.yaml"}


@dataclasses.dataclass
class Repo:
    root: Path
    models: dict[str, SpecFile]
    pools: dict[str, SpecFile]
    settings: Settings | None
    budget: CapacityBudget | None
    diagnostics: list[Diagnostic]
    sources: dict[str, str] = dataclasses.field(default_factory=dict)
    """models/<name>/model.py of every `python` model, by model name."""
    training_sources: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    """The file a model's `training.function` names, by model name, then file name."""

    @property
    def ok(self) -> bool:
        return not self.diagnostics


_OVERRIDE = Merger([(dict, ["merge"])], ["override"], ["override"])
"""An environment's overrides: mappings merge key by key; lists and scalars are replaced."""


def _exists(data: Any, loc: Loc) -> bool:
    for seg in loc:
        if isinstance(data, dict) and seg in data:
            data = data[seg]
        elif isinstance(data, list) and isinstance(seg, int) and seg < len(data):
            data = data[seg]
        else:
            return False
    return True


def _resolve(doc: Document, obj: ModelDocument | PoolDocument,
             environments: tuple[str, ...]) -> tuple[dict, list[Diagnostic]]:
    """The spec of each environment: overrides merged over the defaults, then validated."""
    is_model = isinstance(obj, ModelDocument)
    target = ModelSpec if is_model else PoolSpec
    raw_spec = {k: v for k, v in doc.data["spec"].items() if k != "environments"}
    overrides = doc.data["spec"].get("environments") or {}
    envs, problems = {}, []
    for env in overrides:
        if environments and env not in environments:
            line, col = doc.where(("spec", "environments", env), key=True)
            problems.append(Diagnostic(
                doc.file, line, col, f"spec.environments.{env}",
                f"unknown environment {env!r}: platform/settings.yaml declares "
                f"{', '.join(environments) or 'none'}", closest(env, list(environments))))
    for env in environments:
        override = overrides.get(env) or {}
        if not override:  # nothing to merge: the spec validated above is this environment's
            spec = obj.spec
        else:
            merged = _OVERRIDE.merge(copy.deepcopy(raw_spec), override)

            def remap(rel: Loc, env: str = env, override: dict = override) -> Loc:
                if rel and _exists(override, rel):
                    return ("spec", "environments", env) + rel
                return ("spec",) + rel

            try:
                spec = target.model_validate(merged)
            except ValidationError as exc:
                problems += diagnose(exc, doc, target, merged, base=("spec",), remap=remap,
                                     prefix=f"in {env}: ")
                continue
        if is_model and spec.placement == "dedicated":
            spec.resources = spec.resources or Resources()
            spec.autoscaling = spec.autoscaling or Autoscaling()
        envs[env] = spec
    return envs, problems


def load_spec(file: str, raw: bytes, environments: tuple[str, ...] = ()
              ) -> tuple[SpecFile | None, list[Diagnostic]]:
    """Parse and validate one spec file of any kind, and resolve it for each environment
    of platform/settings.yaml (none given: the spec as written, overrides unchecked)."""
    doc, problems = load_text(file, raw)
    if doc is None:
        return None, problems
    kind = doc.data.get("kind")
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        line, col = doc.where(("kind",)) if "kind" in doc.data else (1, 1)
        hint = closest(kind, list(KINDS)) if isinstance(kind, str) else ""
        what = f"unknown kind {kind!r}" if "kind" in doc.data else "missing required field 'kind'"
        return None, [Diagnostic(file, line, col, "kind", f"{what}: expected one of "
                                 f"{', '.join(KINDS)}", hint)]
    try:
        obj = cls.model_validate(doc.data)
    except ValidationError as exc:
        return None, diagnose(exc, doc, cls, doc.data)
    envs, problems = _resolve(doc, obj, environments)
    if problems:
        return None, problems
    return SpecFile(file, doc, obj, envs), []


def _load_config(root: Path, rel: str, cls: type[BaseModel]) -> tuple[Any, list[Diagnostic]]:
    """A platform file as (validated object, its document), or the problems."""
    path = root / rel
    if not path.is_file():
        return None, [Diagnostic(rel, 0, 0, "", f"missing: the platform needs {rel}")]
    doc, problems = load_text(rel, path.read_bytes())
    if doc is None:
        return None, problems
    try:
        return (cls.model_validate(doc.data), doc), []
    except ValidationError as exc:
        return None, diagnose(exc, doc, cls, doc.data)


def _compiled(rel: str, raw: bytes) -> tuple[str, Diagnostic | None]:
    """A model.py's (or training file's) source once Python compiles it (never imported:
    validation runs no code of a pull request), or the located reason it does not."""
    file = rel.rsplit("/", 1)[-1]
    try:
        source = raw.decode("utf-8")
        compile(source, rel, "exec", dont_inherit=True)
    except UnicodeDecodeError as exc:
        return "", Diagnostic(rel, *line_col(raw, exc.start), "", f"{file} is not UTF-8 text")
    except SyntaxError as exc:
        return "", Diagnostic(rel, exc.lineno or 1, exc.offset or 1, "",
                              f"{file} does not compile: {exc.msg}")
    except ValueError as exc:  # e.g. NUL bytes
        return "", Diagnostic(rel, 1, 1, "", f"{file} does not compile: {exc}")
    return source, None


def _symlinked(rel: str) -> Diagnostic:
    return Diagnostic(rel, 1, 1, "", f"{rel.rsplit('/', 1)[-1]} is a symbolic link: code is "
                      f"copied into the overlays and the image, so it must be a file of the "
                      f"repository itself")


def spec_files(root: Path) -> list[Path]:
    """Every YAML file under models/ (a stray one is reported, not ignored)."""
    models = root / "models"
    if not models.is_dir():
        return []
    return sorted(p for p in models.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def load(root: Path) -> Repo:
    root = Path(root)
    diagnostics: list[Diagnostic] = []
    settings, problems = _load_config(root, "platform/settings.yaml", Settings)
    diagnostics += problems
    budget, problems = _load_config(root, "platform/capacity.yaml", CapacityBudget)
    diagnostics += problems
    settings = settings[0] if settings else None
    entries: list[SpecFile] = []
    environments = tuple(settings.environments) if settings else ()
    for path in spec_files(root):
        rel = path.relative_to(root).as_posix()
        entry, problems = load_spec(rel, path.read_bytes(), environments)
        diagnostics += problems
        if entry is not None:
            entries.append(entry)
    models = {e.name: e for e in entries if isinstance(e.obj, ModelDocument)}
    pools = {e.name: e for e in entries if isinstance(e.obj, PoolDocument)}
    try:
        platform = capacity.platform_usages(root, settings)
    except capacity.PlatformPodsError as exc:
        diagnostics.append(Diagnostic(exc.args[0], exc.args[1], exc.args[2], "", exc.args[3]))
        platform = None
    diagnostics += checks.cross_file(entries, settings, budget, platform)
    sources = {}
    for name, entry in models.items():
        if entry.obj.spec.runtime == "python":
            code = root / "models" / name / "model.py"
            if code.is_symlink():
                diagnostics.append(_symlinked(f"models/{name}/model.py"))
            elif code.is_file():
                rel = f"models/{name}/model.py"
                source, problem = _compiled(rel, code.read_bytes())
                if problem:
                    diagnostics.append(problem)
                else:
                    sources[name] = source
            else:
                line, col = entry.doc.where(("spec", "runtime"))
                diagnostics.append(Diagnostic(entry.file, line, col, "spec.runtime",
                                              f"runtime 'python' needs the model class in "
                                              f"models/{name}/model.py, which does not exist"))
    training_sources = {}
    for name, entry in models.items():
        training = entry.obj.spec.training
        if training is None or training.function is None:
            continue
        file = training.function.split(":")[0]
        code = root / "models" / name / file
        if code.is_symlink():
            diagnostics.append(_symlinked(f"models/{name}/{file}"))
        elif code.is_file():
            source, problem = _compiled(f"models/{name}/{file}", code.read_bytes())
            if problem:
                diagnostics.append(problem)
            else:
                training_sources[name] = {file: source}
        else:
            line, col = entry.doc.where(("spec", "training", "function"))
            diagnostics.append(Diagnostic(entry.file, line, col, "spec.training.function",
                                          f"the training function is in models/{name}/{file}, "
                                          "which does not exist"))
    return Repo(root, models, pools, settings, budget[0] if budget else None, diagnostics,
                sources, training_sources)
