"""Datasets on the shared volume change under a running server: tell the models that read them.

Polling, not inotify: changes made by other nodes on a network volume raise no
local events.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from modelops_runtime.registry import Registry


def _snapshot(path: Path) -> dict[str, tuple[float, int]]:
    if path.is_file():
        stat = path.stat()
        return {str(path): (stat.st_mtime, stat.st_size)}
    found = {}
    for top, _, names in os.walk(path):
        for name in names:
            full = os.path.join(top, name)
            try:
                stat = os.stat(full)
            except FileNotFoundError:
                continue
            found[full] = (stat.st_mtime, stat.st_size)
    return found


class DatasetWatcher:
    def __init__(self, registry: Registry, interval: float):
        self.registry = registry
        self.interval = interval
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="dataset-watcher", daemon=True)
        self.seen: dict[tuple[str, str], dict[str, tuple[float, int]]] = {}

    def start(self) -> None:
        if any(e.config.datasets for e in self.registry.models.values()):
            self.thread.start()

    def stop(self) -> None:
        self.stopped.set()

    def check(self) -> list[tuple[str, str]]:
        """Tell every ready model about each of its datasets that changed since last time."""
        changed = []
        for name, entry in self.registry.models.items():
            for dataset in entry.config.datasets:
                path = self.registry.shared_root / dataset.path
                now = _snapshot(path) if path.exists() else {}
                key = (name, dataset.name)
                before = self.seen.get(key)
                self.seen[key] = now
                if before is not None and before != now:
                    changed.append(key)
                    for loaded in list(entry.versions.values()):
                        loaded.model.on_dataset_change(dataset.name, path)
        return changed

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.check()
