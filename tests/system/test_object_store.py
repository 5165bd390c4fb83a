"""s3:// artifacts against a real S3-compatible server (SeaweedFS on 127.0.0.1): pushed
content-addressed, fetched into a verified cache by `modelops test`, the server and the
jobs, and refused with a located, one-line error when the object is tampered with,
missing, or the credentials or the store are wrong."""

from __future__ import annotations

import hashlib
import re
import shutil

import obstore
import pytest
from conftest import copy_repo, run_modelops
from s3server import BUCKET, READER, WRITER, S3Server
from servers import Server, config, model

from modelops_runtime.objectstore import store as s3_store


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = S3Server.start(tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()


def point_at(root, s3) -> None:
    """Name the test's store in every environment of the repository's settings."""
    settings = root / "platform/settings.yaml"
    store = f"    objectStore: {{bucket: {BUCKET}, endpoint: '{s3.endpoint}', " \
            f"credentialsSecret: object-store-read}}\n"
    text = settings.read_text()
    for env in ("staging", "production"):
        text = text.replace(f"    namespace: models-{env}\n", f"    namespace: models-{env}\n{store}")
    settings.write_text(text)


@pytest.fixture
def repo(tmp_path, s3, shared_root):
    """The examples' repository, its environments pointed at the test's store, with the
    iris artifact as a user's trained file (and no local shared volume)."""
    root = copy_repo(tmp_path)
    point_at(root, s3)
    shutil.copyfile(shared_root / "artifacts/iris/v1/model.joblib", tmp_path / "fraud.joblib")
    return root


def modelops(*args, cwd, creds=None, cache=None):
    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", **(creds or {})}
    if cache is not None:
        env["MODELOPS_ARTIFACT_CACHE"] = str(cache)
    return run_modelops(*args, cwd=cwd, env=env)


def _new_and_push(repo, tmp_path):
    made = modelops("new", "fraud", "--runtime", "sklearn", "--artifact",
                    str(tmp_path / "fraud.joblib"), cwd=repo)
    assert made.returncode == 0, made.stderr
    pushed = modelops("push", "fraud", "--version", "v1", str(tmp_path / "fraud.joblib"),
                      cwd=repo, creds=WRITER)
    assert pushed.returncode == 0, pushed.stderr
    shutil.rmtree(repo / "var")  # from now on the artifact is only in the store
    return pushed


def _key(repo) -> str:
    uri = re.search(r"artifact: (s3://\S+)", (repo / "models/fraud/model.yaml").read_text())[1]
    return uri.removeprefix(f"s3://{BUCKET}/")


def test_push_writes_the_spec_and_test_fetches_it_with_read_only_credentials(repo, tmp_path,
                                                                              s3):
    first = _new_and_push(repo, tmp_path)
    spec = (repo / "models/fraud/model.yaml").read_text()
    digest = re.search(r"sha256: ([0-9a-f]{64})", spec)[1]
    assert first.stdout.splitlines()[0] == \
        f"pushed s3://{BUCKET}/artifacts/fraud/{digest}.joblib"
    assert f"artifact: s3://{BUCKET}/artifacts/fraud/{digest}.joblib" in spec
    assert "# sha256, which the server checks." in spec  # the comments are kept
    again = modelops("push", "fraud", "--version", "v1", str(tmp_path / "fraud.joblib"),
                     cwd=repo, creds=WRITER)
    assert again.returncode == 0 and again.stdout.startswith("already in the store:")

    cache = tmp_path / "cache"
    tested = modelops("test", "fraud", cwd=repo, creds=READER, cache=cache)
    assert tested.returncode == 0 and tested.stdout.startswith("ok      fraud"), tested.stderr
    assert [p.name for p in cache.iterdir()] == [f"{digest}.joblib"]  # no partial left
    readonly = modelops("push", "fraud", "--version", "v2", str(repo / "models/fraud/model.yaml"),
                        cwd=repo, creds=READER)
    assert readonly.returncode == 1 and "access denied" in readonly.stderr
    assert readonly.stderr.count("\n") == 1  # one line, never a traceback
    assert "name: v2" not in (repo / "models/fraud/model.yaml").read_text()

    assert modelops("generate", cwd=repo).returncode == 0
    pod = (repo / "overlays/production/models/fraud/deployment.yaml").read_text()
    assert "secretName: object-store-read" in pod and s3.endpoint in pod
    assert "MODELOPS_S3_CREDENTIALS" in pod and "AWS_SECRET" not in pod


def test_a_tampered_object_is_refused_and_nothing_partial_is_kept(repo, tmp_path, s3,
                                                                  monkeypatch):
    _new_and_push(repo, tmp_path)
    monkeypatch.setenv("MODELOPS_S3_ENDPOINT", s3.endpoint)
    for name, value in WRITER.items():
        monkeypatch.setenv(name, value)
    obstore.put(s3_store(BUCKET), _key(repo), b"not the model that was pinned")
    cache = tmp_path / "cache"
    tested = modelops("test", "fraud", cwd=repo, creds=READER, cache=cache)
    assert tested.returncode == 1
    assert re.search(r"artifact s3://\S+ has sha256 [0-9a-f]{64}, but the spec pins", tested.stderr)
    assert list(cache.iterdir()) == []


def test_a_missing_key_and_wrong_credentials_are_one_line_each(repo, tmp_path):
    _new_and_push(repo, tmp_path)
    spec = repo / "models/fraud/model.yaml"
    spec.write_text(spec.read_text().replace("/artifacts/fraud/", "/artifacts/gone/"))
    missing = modelops("test", "fraud", cwd=repo, creds=READER, cache=tmp_path / "c1")
    assert missing.returncode == 1
    assert "/artifacts/gone/" in missing.stderr and "no such object" in missing.stderr
    spec.write_text(spec.read_text().replace("/artifacts/gone/", "/artifacts/fraud/"))
    wrong = modelops("test", "fraud", cwd=repo, cache=tmp_path / "c2",
                     creds={**READER, "AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    assert wrong.returncode == 1 and "access denied: check the credentials" in wrong.stderr
    assert "Traceback" not in missing.stderr + wrong.stderr


def test_a_fork_without_credentials_gets_one_line_not_a_failure(repo, tmp_path):
    _new_and_push(repo, tmp_path)
    fork = modelops("test", "fraud", cwd=repo, cache=tmp_path / "cache")
    assert fork.returncode == 0, fork.stderr
    assert fork.stderr.startswith("skipped fraud: its artifact s3://") and \
        "a pull request from a fork gets no repository secrets" in fork.stderr
    assert fork.stderr.count("\n") == 1


def test_a_trained_version_is_proposed_from_the_store(fresh_copy, s3, tmp_path):
    """The retrain loop without the shared volume: train, propose --push, and the new
    version loads from the store."""
    point_at(fresh_copy, s3)
    assert modelops("train", "iris", cwd=fresh_copy).returncode == 0
    proposed = modelops("propose", "iris", "--push", cwd=fresh_copy, creds=WRITER)
    assert proposed.returncode == 0, proposed.stderr
    spec = (fresh_copy / "models/iris/model.yaml").read_text()
    digest = re.search(r"name: v3\n\s+artifact: s3://\S+/artifacts/iris/([0-9a-f]{64})\.joblib"
                       r"\n\s+sha256: \1", spec)
    assert digest, spec
    shutil.rmtree(fresh_copy / "var/volume/artifacts/iris/v3")  # only the store has it now
    tested = modelops("test", "iris", cwd=fresh_copy, creds=READER, cache=tmp_path / "cache")
    assert tested.returncode == 0, tested.stderr
    assert (tmp_path / "cache" / f"{digest[1]}.joblib").is_file()


def test_the_server_keeps_serving_when_the_store_goes_down(tmp_path, shared_root, monkeypatch):
    """A reload while the store is down fails with the reason, and the loaded version
    keeps answering; a damaged cache file is fetched again, not trusted."""
    own = S3Server.start(tmp_path / "s3")  # this test stops its store
    try:
        artifact = shared_root / "artifacts/iris/v1/model.joblib"
        digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
        uri = f"s3://{BUCKET}/artifacts/fraud/{digest}.joblib"
        cache = tmp_path / "cache"
        for name, value in {**WRITER, "MODELOPS_S3_ENDPOINT": own.endpoint,
                            "MODELOPS_ARTIFACT_CACHE": str(cache)}.items():
            monkeypatch.setenv(name, value)
        obstore.put(s3_store(BUCKET), uri.removeprefix(f"s3://{BUCKET}/"), artifact)
        spec = model("fraud", versions=[{"name": "v1", "artifact": uri, "sha256": digest}])
        server = Server(tmp_path, config(spec), shared_root)
        try:
            server.wait()
            body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4],
                                "data": [5.1, 3.5, 1.4, 0.2]}]}
            assert server.client.post("/v2/models/fraud/infer", json=body).json()[
                "outputs"][0]["data"] == [0]
            cached = cache / f"{digest}.joblib"
            cached.write_bytes(b"damaged")  # a cache hit is verified: this one is fetched anew
            reloaded = server.client.post("/v2/repository/models/fraud/load")
            assert reloaded.status_code == 200, reloaded.text
            assert cached.read_bytes() == artifact.read_bytes()

            own.stop()
            cached.unlink()
            down = server.client.post("/v2/repository/models/fraud/load")
            assert down.status_code in (409, 503), down.text
            assert uri in down.text and "cannot be reached" in down.text, down.text
            answer = server.client.post("/v2/models/fraud/infer", json=body)
            assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [0]
            assert [p.name for p in cache.iterdir()] == []  # nothing partial kept
        finally:
            server.stop()
    finally:
        own.stop()
