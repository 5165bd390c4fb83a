"""The models a server hosts, by name and version.

A model that fails to load is reported (state "failed", with the reason) and
fails alone: the others in a pool keep serving. Reload is atomic: the old
versions serve until the new ones are loaded; a failed reload keeps them.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelops_runtime import metrics, objectstore
from modelops_runtime.batching import Batcher
from modelops_runtime.config import ModelConfig, ServerConfig, VersionConfig
from modelops_runtime.errors import NotFound, Unavailable
from modelops_runtime.model import Model
from modelops_runtime.runtimes import RUNTIMES, load_class, verify
from modelops_runtime.scheduling import CallTiming
from modelops_runtime.signature import Signature


@dataclasses.dataclass
class LoadedVersion:
    model: Model
    config: VersionConfig
    load_seconds: float
    loaded_at: float
    signature: Signature
    timing: CallTiming = dataclasses.field(default_factory=CallTiming)
    batcher: Batcher | None = None
    """Set by the data plane on first use, when the model batches (batching.py)."""


@dataclasses.dataclass
class ServedModel:
    """One model of this server: its config, state and loaded versions."""

    config: ModelConfig
    state: str = "loading"  # loading | ready | failed; relayed: asleep | waking | ready;
    error: str = ""         # on demand: unloaded | ready | failed
    versions: dict[str, LoadedVersion] = dataclasses.field(default_factory=dict)
    in_flight: int = 0
    last_used: float = 0.0  # on demand (demand.py): when a request last asked for it
    size: int = 0  # on demand: the memory it is counted at while loaded
    loads: int = 0
    unloaded_for: str = "first"
    _names: list[str] = dataclasses.field(default_factory=list)
    _weights: list[int] = dataclasses.field(default_factory=list)

    def install(self, versions: dict[str, LoadedVersion]) -> None:
        """Swap in a complete set of loaded versions at once."""
        names = sorted(versions)
        self.versions, self._names = versions, names
        self._weights = [versions[n].config.weight for n in names]
        if not any(self._weights):
            self._weights = [1] * len(names)
        self.state, self.error = "ready", ""

    def choose(self) -> LoadedVersion:
        """A version for an unversioned request, following the traffic weights."""
        if len(self._names) == 1:
            return self.versions[self._names[0]]
        return self.versions[random.choices(self._names, self._weights)[0]]

    def uninstall(self) -> None:
        """Drop every loaded version (a pool member on demand, making room)."""
        self.versions, self._names, self._weights = {}, [], []
        self.state = "unloaded"

    def version_name(self, version: str | None) -> str:
        """The version a request goes to, loaded or not: pinned, else by the weights."""
        if version is not None:
            if version not in {v.name for v in self.config.versions}:
                raise NotFound(f"model {self.config.name!r} has no version {version!r}; "
                               f"versions: {', '.join(v.name for v in self.config.versions)}")
            return version
        if self.versions:
            return self.choose().config.name
        versions = self.config.versions
        weights = [v.weight for v in versions]
        return random.choices(versions, weights if any(weights) else None)[0].name


def resolve_artifact(uri: str | None, sha256: str | None, shared_root: Path) -> Path | None:
    """The artifact as a local file: on the shared volume, in the image, or fetched from
    the object store into the verified cache."""
    if uri is None:
        return None
    if uri.startswith(objectstore.SCHEME):
        if not sha256:
            raise ValueError(f"artifact {uri} has no sha256 to verify it by")
        return objectstore.fetch(uri, sha256)
    if uri.startswith("pvc://"):
        return shared_root / uri.removeprefix("pvc://")
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    raise ValueError(f"unsupported artifact URI {uri!r}")


def model_class(config: ModelConfig, config_dir: Path) -> type[Model]:
    """The class that serves a model: its runtime's, or a python model's own."""
    if config.runtime == "python":
        if not config.code:
            raise ValueError("a python model needs its code file")
        code = Path(config.code)
        return load_class(code if code.is_absolute() else config_dir / code)
    if config.runtime not in RUNTIMES:
        raise ValueError(f"runtime {config.runtime!r} is served by its own image, "
                         "not by this server")
    return RUNTIMES[config.runtime]


def build_model(cls: type[Model], config: ModelConfig, version: VersionConfig,
                shared_root: Path) -> Model:
    """One version, its artifact verified, ready for load(): what the server serves and
    what training and batch jobs predict with, so the three cannot differ."""
    path = resolve_artifact(version.artifact, version.sha256, shared_root)
    if not (version.artifact or "").startswith(objectstore.SCHEME):  # fetch verified it
        verify(path, version.sha256)
    model = cls(config.name, version.name, path,
                {d.name: shared_root / d.path for d in config.datasets})
    model.declared = {"inputs": [t.model_dump() for t in config.inputs],
                      "outputs": [t.model_dump() for t in config.outputs]}
    return model


class Registry:
    def __init__(self, config: ServerConfig, shared_root: Path, config_dir: Path):
        self.config = config
        self.shared_root = shared_root
        self.config_dir = config_dir
        self.models = {m.name: ServedModel(m) for m in config.models}
        self.loaded_all = False
        self._reload_lock = threading.Lock()
        self.on_change: list[Callable[[str], None]] = []  # after a model's versions change
        self._loader: threading.Thread | None = None

    # -- loading -------------------------------------------------------------------

    def _load_versions(self, config: ModelConfig) -> dict[str, LoadedVersion]:
        cls = model_class(config, self.config_dir)
        loaded = {}
        for version in config.versions:
            start = time.perf_counter()
            model = build_model(cls, config, version, self.shared_root)
            model.load()
            seconds = time.perf_counter() - start
            loaded[version.name] = LoadedVersion(model, version, seconds, time.time(),
                                                 Signature.of(model.metadata()))
            metrics.LOAD_SECONDS.labels(config.name, version.name).set(seconds)
        return loaded

    def load(self, name: str, on_demand: bool = False) -> None:
        """Load (or reload) one model; on failure keep what was serving and say why. A
        relayed model is never loaded here: its own servers load it when it wakes. A
        member of an on-demand pool loads when a request asks for it (`on_demand`)."""
        served = self.models[name]
        if served.config.relay is not None:
            if served.state == "loading":
                served.state = "asleep"
            return
        if self.config.onDemand is not None and not on_demand and not served.versions:
            if served.state == "loading":
                served.state = "unloaded"
            return  # a reload of what is not loaded: the next load reads it anew
        with self._reload_lock:
            try:
                versions = self._load_versions(served.config)
            except Exception as exc:  # a bad model fails alone, with the reason
                served.error = f"{type(exc).__name__}: {exc}"
                if not served.versions:
                    served.state = "failed"
                for version in served.config.versions:
                    metrics.READY.labels(name, version.name).set(1 if served.versions else 0)
                return
            served.install(versions)
            for loaded in versions:
                metrics.READY.labels(name, loaded).set(1)
        for callback in self.on_change:
            callback(name)

    def unload(self, name: str) -> None:
        served = self.models[name]
        with self._reload_lock:
            served.uninstall()
        for version in served.config.versions:
            metrics.READY.labels(name, version.name).set(0)

    def load_all(self) -> None:
        for name in self.models:
            self.load(name)
        self.loaded_all = True

    def wait_loaded(self, timeout: float | None = None) -> bool:
        loader = self.start_loading()
        loader.join(timeout)
        return self.loaded_all

    def start_loading(self) -> threading.Thread:
        """Load every model in a background thread (once): live at once, ready when loaded."""
        if self._loader is None:
            self._loader = threading.Thread(target=self.load_all, name="loader", daemon=True)
            self._loader.start()
        return self._loader

    # -- serving -------------------------------------------------------------------

    def ready(self) -> bool:
        """Dedicated: its model is ready. A pool: loading is done and any model serves."""
        if not self.loaded_all:
            return False
        waits = ("unloaded",) if self.config.onDemand else ()  # loads when asked for
        states = [e.state == "ready" or e.state in waits or e.config.relay is not None
                  for e in self.models.values()]
        return any(states) if self.config.placement != "dedicated" else all(states)

    def served(self, name: str) -> ServedModel:
        served = self.models.get(name)
        if served is None:
            raise NotFound(f"model {name!r} is not served here; models: "
                           f"{', '.join(sorted(self.models))}")
        return served

    def pick(self, name: str, version: str | None) -> tuple[ServedModel, LoadedVersion]:
        served = self.served(name)
        if version is not None:
            served.version_name(version)  # an unknown version: NotFound
        if served.config.relay is not None:
            raise Unavailable(f"model {name!r} is served through its queue here, not loaded "
                              f"({served.state})")
        if served.state != "ready":
            reason = f": {served.error}" if served.error else ""
            raise Unavailable(f"model {name!r} is not ready ({served.state}{reason})")
        return served, (served.versions[version] if version else served.choose())

    def describe(self) -> list[dict[str, Any]]:
        out = []
        for name, served in sorted(self.models.items()):
            out.append({
                "name": name, "runtime": served.config.runtime, "state": served.state,
                "reason": served.error, "placement": self.config.placement,
                "server": self.config.server,
                "versions": [{
                    "name": v.name, "weight": v.weight,
                    "state": "ready" if v.name in served.versions else served.state,
                    "loadSeconds": round(served.versions[v.name].load_seconds, 4)
                    if v.name in served.versions else None,
                    "loadedAt": served.versions[v.name].loaded_at if v.name in served.versions
                    else None,
                } for v in served.config.versions],
            })
        return out
