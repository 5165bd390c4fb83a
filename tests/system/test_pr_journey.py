"""The pull-request journey, walked as a user walks it: clone the repository, branch, add a
model by the README's tutorial (a python model) and one from a scikit-learn file pushed to
the object store, commit, then run every `run:` step of CI's check job as
.github/workflows/ci.yaml writes it, with its GitHub expressions filled in as for a pull
request: each must pass, and no file is edited by hand on the branch."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import EXAMPLES, REPO
from s3server import BUCKET, READER, WRITER, S3Server

# CI's steps that cannot run here, and why; any other step runs.
NOT_HERE = {
    "Install (exactly requirements.lock, hashes checked)":
        "this test runs in the environment `make setup` installed from the same lock",
    "kubeconform": "it downloads a binary from GitHub (no network here); the render step "
                   "validates every object strictly with kubernetes-validate",
}
# The tests that read the repository a pull request changes (the others make their own
# repositories from the examples): CI's Tests step runs these here, after collecting the
# whole suite; the whole suite again inside this test would double `make test`.
READ_THE_REPOSITORY = ("tests/tools/test_examples.py", "tests/tools/test_repo_hygiene.py",
                       "tests/tools/test_platform.py",
                       "tests/tools/test_generate.py::test_committed_generated_files_are_current",
                       "tests/tools/test_render.py::test_every_overlay_renders_and_validates")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = S3Server.start(tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=u", "-c", "user.email=u@example.com",
                           *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def _published(tmp_path: Path, s3: S3Server) -> Path:
    """The project's repository as the platform team publishes it: this working tree's
    files with the example models, and the object store named in the settings."""
    upstream = tmp_path / "upstream"
    listed = git("ls-files", "-co", "--exclude-standard", "-z", cwd=REPO).split("\0")
    for rel in filter(None, listed):
        parts = Path(rel).parts
        if parts[0] == "models" and parts[1] not in EXAMPLES or not (REPO / rel).is_file():
            continue
        (upstream / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, upstream / rel)
    settings = upstream / "platform/settings.yaml"
    store = f"    objectStore: {{bucket: {BUCKET}, endpoint: '{s3.endpoint}'}}\n"
    text = settings.read_text()
    for env in ("staging", "production"):
        text = text.replace(f"    namespace: models-{env}\n",
                            f"    namespace: models-{env}\n{store}")
    settings.write_text(text)
    env = _environment(upstream)
    subprocess.run([sys.executable, "-m", "modelops", "generate"], cwd=upstream, env=env,
                   check=True, capture_output=True)
    git("init", "-q", "-b", "main", cwd=upstream)
    git("add", "-A", cwd=upstream)
    git("commit", "-qm", "modelops", cwd=upstream)
    return upstream


def _environment(root: Path, **extra: str) -> dict[str, str]:
    """The user's shell: .venv's commands first, this clone's code importable (what the
    editable install of `make setup` gives), no credentials unless given."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": f"{root / 'tools'}:{root / 'serving'}", "GITHUB_ACTIONS": "",
           "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
           "MODELOPS_ARTIFACT_CACHE": str(root.parent / "cache"), **extra}
    env.pop("MODELOPS_S3_ENDPOINT", None)
    return env


def _run(command: str, root: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-eo", "pipefail", "-c", command], cwd=root, env=env,
                          capture_output=True, text=True, timeout=900)


def _filled(text: str, values: dict[str, str]) -> str:
    """GitHub's expressions in a step, as a pull request into main fills them."""
    for expression, value in values.items():
        text = text.replace(expression, value)
    assert "${{" not in text, f"an expression this test does not fill: {text}"
    return text


def test_a_pull_request_adding_two_models_passes_every_ci_step(tmp_path, s3, shared_root):
    upstream = _published(tmp_path, s3)
    clone = tmp_path / "clone"
    git("clone", "-q", str(upstream), str(clone), cwd=tmp_path)
    git("checkout", "-q", "-b", "add-churn-and-fraud", cwd=clone)
    trained = tmp_path / "fraud.joblib"
    shutil.copyfile(shared_root / "artifacts/iris/v1/model.joblib", trained)
    user = _environment(clone, **WRITER)  # the data scientist's own keys

    # The README's tutorial, then a scikit-learn model pushed to the store; every `next:`
    # line that `new` prints, in order.
    journey = ["modelops new churn --runtime python --team growth",
               "modelops validate", "modelops test churn", "modelops generate",
               f"modelops new fraud --runtime sklearn --team risk --artifact {trained}",
               "modelops validate", "modelops test fraud", "modelops generate",
               f"modelops push fraud --version v1 {trained}",
               "modelops test fraud", "modelops generate"]
    for command in journey:
        done = _run(command, clone, user)
        assert done.returncode == 0, f"$ {command}\n{done.stdout}{done.stderr}"
        if command.startswith("modelops new"):
            steps = done.stdout.split("next:\n")[1].splitlines()
            assert [s.split("#")[0].strip() for s in steps] == [
                "modelops validate", f"modelops test {command.split()[2]}",
                "modelops generate", "modelops plan"]
    plan = _run("modelops plan", clone, user)
    assert plan.returncode == 0 and "**Models:** 2 added (`churn`, `fraud`)" in plan.stdout
    assert "s3://" in (clone / "models/fraud/model.yaml").read_text()
    git("add", "-A", cwd=clone)
    git("commit", "-qm", "Add churn and fraud", cwd=clone)
    assert git("status", "--porcelain", cwd=clone) == ""
    shutil.rmtree(clone / "var", ignore_errors=True)  # CI's checkout has no local volume

    workflow = yaml.safe_load((clone / ".github/workflows/ci.yaml").read_text())
    values = {
        "${{ github.event_name == 'pull_request' && format('--base origin/{0}', "
        "github.base_ref) || '' }}": "--base origin/main",
        "${{ contains(github.event.pull_request.labels.*.name, 'allow-removals') && "
        "'--allow-removals' || '' }}": "",
        "${{ github.base_ref }}": "main",
        "${{ secrets.MODELOPS_S3_READ_KEY_ID }}": READER["AWS_ACCESS_KEY_ID"],
        "${{ secrets.MODELOPS_S3_READ_SECRET }}": READER["AWS_SECRET_ACCESS_KEY"],
    }
    ran = []
    for step in workflow["jobs"]["check"]["steps"]:
        if "run" not in step or step.get("name") in NOT_HERE:
            continue
        assert step.get("if", "github.event_name == 'pull_request'") == \
            "github.event_name == 'pull_request'"
        command = _filled(step["run"], values)
        if command.strip() == "python -m pytest":
            command = (f"python -m pytest --collect-only -q -p no:cacheprovider >/dev/null && "
                       f"python -m pytest -q -p no:cacheprovider {' '.join(READ_THE_REPOSITORY)}")
        step_env = {k: _filled(str(v), values) for k, v in step.get("env", {}).items()}
        env = {**_environment(clone, GITHUB_ACTIONS="true",  # a cache of CI's own
                              MODELOPS_ARTIFACT_CACHE=str(tmp_path / "ci-cache")), **step_env}
        done = _run(command, clone, env)
        assert done.returncode == 0, f"{step['name']}:\n$ {command}\n{done.stdout[-3000:]}" \
                                     f"{done.stderr[-3000:]}"
        ran.append(step["name"])
        if "modelops test" in command:
            assert re.search(r"^ok +churn", done.stdout, re.M), done.stdout + done.stderr
            assert re.search(r"^ok +fraud", done.stdout, re.M), done.stdout + done.stderr
    names = [s.get("name") for s in workflow["jobs"]["check"]["steps"] if "run" in s]
    assert sorted(ran + list(NOT_HERE)) == sorted(names)  # every step ran or is named above
