"""Artifacts in an S3-compatible object store (`s3://bucket/key`), fetched into a local
cache that is verified, never trusted: a cached file is named by the sha256 the spec pins
and is hashed again before every load; a download is written beside it under a temporary
name, hashed while it streams, and renamed into place only when its digest matches, so a
partial or tampered download never loads.

The store is named by environment variables, which the generated manifests set from
platform/settings.yaml and `modelops serve` and `test` set locally:

  MODELOPS_S3_ENDPOINT     the store's URL (unset: AWS itself)
  MODELOPS_S3_REGION       its region (unset: AWS_REGION, else us-east-1)
  MODELOPS_S3_CREDENTIALS  a folder holding files `access-key-id` and `secret-access-key`
                           (the Secret, mounted read-only); unset: the standard AWS chain
                           (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a workload
                           identity such as IRSA's AWS_WEB_IDENTITY_TOKEN_FILE)
  MODELOPS_ARTIFACT_CACHE  where fetched artifacts are kept
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

SCHEME = "s3://"
CACHE_DEFAULT = Path(tempfile.gettempdir()) / "modelops-artifacts"
CREDENTIAL_FILES = {"access_key_id": "access-key-id", "secret_access_key": "secret-access-key"}
ATTEMPTS = 4
"""One try and three retries, backing off from 0.2 s; a transfer that has not finished
within TIMEOUT is given up."""
TIMEOUT = timedelta(minutes=10)
CHUNK = 8 * 1024 * 1024


class StoreError(Exception):
    """An artifact could not be fetched or pushed; the message names bucket, key and cause."""


@dataclass(frozen=True)
class Location:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> Location:
        bucket, _, key = uri.removeprefix(SCHEME).partition("/")
        if not uri.startswith(SCHEME) or not bucket or not key:
            raise StoreError(f"{uri!r} is not s3://<bucket>/<key>")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"


def has_credentials(environ: dict[str, str] | None = None) -> bool:
    """Whether any credentials are configured (a pull request from a fork gets none)."""
    env = os.environ if environ is None else environ
    return any(env.get(name) for name in (
        "MODELOPS_S3_CREDENTIALS", "AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"))


def _credentials(folder: str) -> dict[str, str]:
    found = {}
    for option, name in CREDENTIAL_FILES.items():
        try:
            found[option] = (Path(folder) / name).read_text().strip()
        except OSError as exc:
            raise StoreError(f"MODELOPS_S3_CREDENTIALS: cannot read {Path(folder) / name}: "
                             f"{exc.strerror}") from None
    return found


def store(bucket: str) -> Any:
    """An obstore S3Store for one bucket, configured from the environment."""
    from obstore.store import S3Store

    endpoint = os.environ.get("MODELOPS_S3_ENDPOINT") or None
    options: dict[str, Any] = {
        "region": os.environ.get("MODELOPS_S3_REGION") or os.environ.get("AWS_REGION")
        or "us-east-1"}
    if endpoint:
        options["endpoint"] = endpoint
        options["virtual_hosted_style_request"] = False
    if folder := os.environ.get("MODELOPS_S3_CREDENTIALS"):
        options.update(_credentials(folder))
    return S3Store(
        bucket, **options,
        client_options={"allow_http": bool(endpoint and endpoint.startswith("http://")),
                        "connect_timeout": timedelta(seconds=5), "timeout": TIMEOUT},
        retry_config={"max_retries": ATTEMPTS - 1, "retry_timeout": TIMEOUT,
                      "backoff": {"init_backoff": timedelta(milliseconds=200),
                                  "max_backoff": timedelta(seconds=5), "base": 2}})


def cause(exc: BaseException) -> str:
    """What went wrong, in one line a user can act on."""
    from obstore.exceptions import PermissionDeniedError, UnauthenticatedError

    if isinstance(exc, FileNotFoundError):  # what obstore raises for a missing object
        return "no such object (was it pushed? `modelops push`)"
    if isinstance(exc, PermissionDeniedError | UnauthenticatedError):
        return ("access denied: check the credentials (MODELOPS_S3_CREDENTIALS, or "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "error sending request" in first or "Connect" in first or "connection" in first:
        endpoint = os.environ.get("MODELOPS_S3_ENDPOINT") or "AWS S3"
        return f"the store at {endpoint} cannot be reached ({first[:300]})"
    return first[:500]


def cache_dir() -> Path:
    return Path(os.environ.get("MODELOPS_ARTIFACT_CACHE") or CACHE_DEFAULT)


def _digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def fetch(uri: str, sha256: str) -> Path:
    """The artifact at `uri` as a local file whose content has the pinned sha256."""
    import obstore

    where = Location.parse(uri)
    cache = cache_dir()
    target = cache / (sha256 + "".join(Path(where.key).suffixes[-2:]))
    if target.is_file():
        if _digest(target) == sha256:
            return target
        target.unlink()  # damaged in the cache: fetched anew below
    cache.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    handle, part = tempfile.mkstemp(dir=cache, prefix=".part-")
    try:
        with os.fdopen(handle, "wb") as out:
            try:
                result = obstore.get(store(where.bucket), where.key)
                for chunk in result.stream(min_chunk_size=CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            except Exception as exc:
                raise StoreError(f"artifact {where} could not be fetched: {cause(exc)}") \
                    from None
        if (found := digest.hexdigest()) != sha256:
            raise StoreError(f"artifact {where} has sha256 {found}, but the spec pins "
                             f"{sha256}: refused (the object changed after it was pinned)")
        os.replace(part, target)
    finally:
        Path(part).unlink(missing_ok=True)
    return target


def push(path: Path, bucket: str, key: str) -> bool:
    """Upload a file unless the key exists already; True if it was uploaded. Keys are
    derived from the content's sha256 by the caller, so an existing key holds the same
    bytes and nothing is ever overwritten."""
    import obstore
    from obstore.exceptions import AlreadyExistsError

    where = Location(bucket, key)
    bucket_store = store(bucket)
    try:
        obstore.head(bucket_store, key)
        return False
    except FileNotFoundError:
        pass
    except Exception as exc:
        raise StoreError(f"{where} could not be checked: {cause(exc)}") from None
    try:
        obstore.put(bucket_store, key, path, mode="create")
    except AlreadyExistsError:
        return False
    except Exception as exc:
        raise StoreError(f"{path} could not be pushed to {where}: {cause(exc)}") from None
    return True
