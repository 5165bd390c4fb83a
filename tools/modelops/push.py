"""`modelops push`: a trained file into the object store, content-addressed, and its
`s3://` URI and sha256 into the model's spec.

The key is `<prefix>/<model>/<sha256><ending>`, so pushing the same bytes again uploads
nothing and no key ever gets other bytes. The version is updated when the spec has it,
else appended with weight 0 (reachable by its versioned path, given traffic by a weight
change in review)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

from ruamel.yaml.comments import CommentedMap

from modelops.repo import Repo
from modelops.settings import ObjectStore, Settings
from modelops.spec import VERSION, ModelSpec
from modelops.specedit import EditError, RoundTrip
from modelops_runtime import objectstore
from modelops_runtime.runtimes import file_sha256


class PushError(Exception):
    pass


class Pushed(NamedTuple):
    uri: str
    sha256: str
    uploaded: bool  # False: the store had these bytes already
    added: bool  # True: a new version in the spec


def local_store(settings: Settings | None) -> ObjectStore | None:
    """The object store of the environment that runs locally (the first one)."""
    if settings is None:
        return None
    return settings.environments[settings.local_environment].objectStore


def use_store(settings: Settings | None) -> None:
    """Point this process, and the servers it starts, at the local environment's store.
    Variables already set win (CI and users can aim elsewhere)."""
    store = local_store(settings)
    if store is None:
        return
    os.environ.setdefault("MODELOPS_S3_REGION", store.region)
    if store.endpoint:
        os.environ.setdefault("MODELOPS_S3_ENDPOINT", store.endpoint)


def store_for(repo: Repo) -> ObjectStore:
    store = local_store(repo.settings)
    if store is None:
        raise PushError("platform/settings.yaml names no objectStore for the environment "
                        f"{repo.settings.local_environment if repo.settings else '?'}: add "
                        "`objectStore: {bucket: ..., endpoint: ...}` (README: artifacts in "
                        "an object store)")
    return store


def upload(repo: Repo, name: str, file: Path, digest: str) -> tuple[str, bool]:
    """Put a model's file into the store under its content's key: (its s3:// URI, whether
    it was uploaded rather than there already)."""
    store = store_for(repo)
    ending = "".join(file.suffixes[-2:])
    if not re.fullmatch(r"[A-Za-z0-9._-]*", ending):
        ending = ""
    key = f"{store.prefix}/{name}/{digest}{ending}"
    use_store(repo.settings)
    try:
        uploaded = objectstore.push(file, store.bucket, key)
    except objectstore.StoreError as exc:
        raise PushError(str(exc)) from None
    return str(objectstore.Location(store.bucket, key)), uploaded


def push(repo: Repo, name: str, version: str, file: Path) -> Pushed:
    entry = repo.models.get(name)
    if entry is None:
        raise PushError(f"no model named {name!r} (models/{name}/model.yaml)")
    if not re.fullmatch(VERSION, version):
        raise PushError(f"{version!r} is not a version name: lowercase letters, digits and "
                        "'-', e.g. v2")
    store_for(repo)
    spec = entry.obj.spec
    assert isinstance(spec, ModelSpec)
    if any(o and o.versions is not None for o in spec.environments.values()):
        raise PushError("an environment overrides versions; set the artifact by hand")
    if not file.is_file():
        raise PushError(f"{file} is not a file")
    digest = file_sha256(file)
    uri, uploaded = upload(repo, name, file, digest)

    spec_file = RoundTrip(repo.root / entry.file)
    try:
        versions = spec_file.versions()
    except EditError as exc:
        raise PushError(str(exc)) from None
    item = next((v for v in versions if v.get("name") == version), None)
    if item is None:
        versions.append(CommentedMap([("name", version), ("artifact", uri), ("sha256", digest),
                                      ("weight", 0)]))
    else:  # after the name when new, in place when there
        at = list(item).index("name") + 1
        for field, value in (("artifact", uri), ("sha256", digest)):
            if field in item:
                item[field] = value
            else:
                item.insert(at, field, value)
            at = list(item).index(field) + 1
    spec_file.save()
    return Pushed(uri, digest, uploaded, item is None)
