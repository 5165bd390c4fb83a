"""A model's training and batch CronJobs, in the overlay of the Application that serves it:

  overlays/<env>/models/<model>/jobs/          (a dedicated model)
  overlays/<env>/models/<pool>/<model>-jobs/   (a model in a pool)
      kustomization.yaml, job.yaml, [<model>.py] [<training file>.py]
      train.yaml, batch.yaml                   patches over base/training-job, base/batch-job

Each pod mounts the shared volume's datasets read-only and, writable, only what it
produces: artifacts/<model>/ (training) or datasets/<output>/ (batch).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from modelops import quantity
from modelops.generate import contract
from modelops.generate.objects import Code, add_object_store, image, kustomization, up, uses_store
from modelops.repo import Repo
from modelops.settings import ObjectStore
from modelops.spec import JobResources, ModelSpec
from modelops.specfile import SpecFile
from modelops_runtime import volume

Files = dict[str, Any]


def _resources(res: JobResources) -> dict:
    both = {"cpu": quantity.cpu(quantity.parse(res.cpu)),
            "memory": quantity.memory(quantity.parse(res.memory))}
    return {"requests": both, "limits": dict(both)}


def _mount(path: str, read_only: bool = False) -> dict:
    mount = {"name": "shared", "mountPath": f"{volume.MOUNT}/{path}", "subPath": path}
    return mount | ({"readOnly": True} if read_only else {})


def _patch(name: str, schedule: str | None, service_account: str, container: dict,
           store: ObjectStore | None, job: dict | None = None) -> dict:
    pod: dict[str, Any] = {"serviceAccountName": service_account, "containers": [container]}
    add_object_store(pod, container, store)
    spec: dict[str, Any] = {"suspend": schedule is None, "jobTemplate": {"spec": {
        **(job or {}), "template": {"spec": pod}}}}
    if schedule:
        spec["schedule"] = schedule
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": spec}


def files(repo: Repo, spec_file: SpecFile, env: str, directory: str,
          service_account: str) -> Files:
    """The jobs overlay of one model (nothing when it declares no training or batch)."""
    assert repo.settings is not None
    spec = spec_file.envs[env]
    assert isinstance(spec, ModelSpec)
    name = spec_file.name
    code = contract.CODE_FILE.format(name=name) if spec.runtime == "python" else None
    config = contract.job_config(spec_file, spec, code)
    if config is None:
        return {}
    folder = PurePosixPath(spec_file.file).parent
    sources = {file: Code(text, str(folder / file))
               for file, text in repo.training_sources.get(name, {}).items()}
    if code:
        sources[code] = Code(repo.sources[name], str(folder / "model.py"))
    depth = directory.count("/") + 1
    artifacts = volume.artifacts(name)
    store = repo.settings.environments[env].objectStore if uses_store([spec]) else None
    resources, patches, out = [], [], {}
    if spec.training:
        resources.append(up(depth) + "base/training-job")
        out[f"{directory}/train.yaml"] = _patch(
            "train", spec.training.schedule, service_account,
            {"name": "train", "resources": _resources(spec.training.resources),
             "volumeMounts": [_mount(artifacts)]}, store)
        patches.append({"path": "train.yaml"})
    if spec.batch and config.batch:
        workers = spec.batch.parallelism
        resources.append(up(depth) + "base/batch-job")
        out[f"{directory}/batch.yaml"] = _patch(
            "batch", spec.batch.schedule, service_account,
            {"name": "batch", "resources": _resources(spec.batch.resources),
             "env": [{"name": "MODELOPS_BATCH_WORKERS", "value": str(workers)}],
             "volumeMounts": [_mount(artifacts, read_only=True),
                              _mount(volume.model_dataset(config.batch.output, name))]},
            store, {"completions": workers, "parallelism": workers})
        patches.append({"path": "batch.yaml"})
    # Without the weights: a canary shift changes routes, not the jobs (unless it changes
    # which version serves most, which the jobs do read).
    out[f"{directory}/{contract.JOB_FILE}"] = config.model_dump(
        mode="json", exclude_none=True, exclude={"model": {"versions": {"__all__": {"weight"}}}})
    for file, text in sources.items():
        out[f"{directory}/{file}"] = text
    out[f"{directory}/kustomization.yaml"] = kustomization(
        None, resources, namePrefix=f"{name}-",
        labels={"modelops/model": name, "modelops/team": spec_file.team},
        # One stable name, not a content hash: Argo CD prunes a ConfigMap of an old hash
        # at the next sync, and a retried pod of a Job started before would then wait for
        # it for hours. A Job reads it at its pod's start, so a change reaches the next run.
        configMapGenerator=[{"name": "jobs", "files": [contract.JOB_FILE, *sorted(sources)],
                             "options": {"disableNameSuffixHash": True}}],
        images=[image(repo.settings.serverImage)], patches=patches)
    return out
