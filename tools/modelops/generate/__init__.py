"""`modelops generate`: specs in, generated files out, byte for byte.

Data in, data out: the modules below turn the loaded specs into plain dictionaries of
Kubernetes objects with pure functions, and files.py writes them (YAML in one place).

  objects.py    Kubernetes object primitives (kustomizations, routes, policies, ...)
  models.py     overlays/<env>/models/<model-or-pool>/: the servers of each model or pool
  platform.py   overlays/<env>/platform/: what each environment needs beside its models
  argocd.py     overlays/argocd/: the root Application's namespaces, projects, Applications
                (and platform.py's overlays/monitoring/: the alerts, labelled for discovery)
  contract.py   the configs the deployables read (server.yaml, compactor.yaml, catalog.yaml)
  overlays.py   every overlay directory as a unit of work (the one composition path)
  files.py      compare with the tree, write, remove what no spec makes any more
"""

from __future__ import annotations

from modelops.generate.files import Stale, expected, sync
from modelops.generate.overlays import Unit, units

__all__ = ["Stale", "Unit", "expected", "sync", "units"]
