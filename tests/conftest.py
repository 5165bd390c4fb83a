"""Fixtures that build a tiny repository in a temp directory."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHA = "2872ab61c3fc035d242a5b0952a620b6b71c21f0b5cb57512de6e997a10498ee"

VALID_MODEL = f"""\
apiVersion: modelops/v1
kind: Model
metadata:
  name: {{name}}
  team: ds
spec:
  runtime: sklearn
  versions:
    - name: v1
      artifact: pvc://artifacts/{{name}}/v1/model.joblib
      sha256: {SHA}
"""


def run_modelops(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """The CLI as a user runs it (outside GitHub Actions unless env says so)."""
    return subprocess.run([sys.executable, "-m", "modelops", *args], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, "GITHUB_ACTIONS": "", **(env or {})})


EXAMPLES = ("cancer-screen", "diabetes", "digits", "iris", "tabular", "wine")
"""The example models and pool, the only folders of models/ that tests read: a user's own
models beside them never reach a test, so adding one never turns the suite red."""


@functools.cache
def examples() -> Path:
    """This repository with only the example models, and the files generated from them;
    made once per run, and read-only to the tests (copy_repo gives a writable copy)."""
    root = Path(tempfile.mkdtemp(prefix="modelops-examples-")) / "repo"
    atexit.register(shutil.rmtree, root.parent, True)
    for folder in ("platform", "base", "overlays", "schemas", "docs", ".github"):
        shutil.copytree(REPO / folder, root / folder)
    for name in EXAMPLES:
        shutil.copytree(REPO / "models" / name, root / "models" / name)
    shutil.copyfile(REPO / ".gitignore", root / ".gitignore")
    from modelops.generate import files
    from modelops.repo import load

    files.sync(root, load(root), write=True)  # drops what other models generated
    return root


def copy_repo(tmp_path: Path) -> Path:
    """The examples' repository (specs, platform, bases, overlays, schemas, docs and
    .github), in a temp directory the test may change."""
    root = tmp_path / "repo"
    shutil.copytree(examples(), root)
    return root


class TinyRepo:
    """A repository with the real platform/ and base/ and whatever specs a test writes."""

    def __init__(self, root: Path):
        self.root = root
        for folder in ("platform", "base"):
            shutil.copytree(REPO / folder, root / folder)
        (root / "models").mkdir()

    def write(self, rel: str, text: str | bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text))
        return path

    def model(self, name: str, text: str | None = None) -> Path:
        return self.write(f"models/{name}/model.yaml", text or VALID_MODEL.format(name=name))


@pytest.fixture
def tiny(tmp_path: Path) -> TinyRepo:
    return TinyRepo(tmp_path)


@pytest.fixture(scope="session")
def shared_root(tmp_path_factory) -> Path:
    """A shared-volume stand-in holding the example artifacts."""
    from servers import example_artifacts

    return example_artifacts(tmp_path_factory.mktemp("volume"))


@pytest.fixture
def start_server(tmp_path, shared_root):
    """start_server(config_dict, **settings) -> a running Server; stopped after the test."""
    from servers import Server

    started = []

    def start(config: dict, wait: str | None = "/v2/health/ready", **settings):
        server = Server(tmp_path, config, settings.pop("shared", shared_root), **settings)
        started.append(server)
        if wait:
            server.wait(wait)
        return server

    yield start
    for server in started:
        server.stop()


def isolated_tool(extra: str, command: str) -> Path:
    """A tool whose pins clash with ours, in build/<extra>-venv, installed on first use
    from pyproject.toml's optional dependency list of that name (the one place it is pinned)."""
    import tomllib

    pins = tomllib.loads((REPO / "pyproject.toml").read_text())[
        "project"]["optional-dependencies"][extra]
    venv = REPO / "build" / f"{extra}-venv"
    stamp = venv / ("installed-" + "-".join(pins))
    if not stamp.exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin/pip"), "install", "--quiet",
                        "--disable-pip-version-check", *pins], check=True)
        stamp.touch()
    return venv / "bin" / command


@pytest.fixture
def fresh_copy(tmp_path: Path, shared_root: Path) -> Path:
    """This working tree's repository, committed on main, with .venv and the example
    artifacts in place, as after `make demo`."""
    root = copy_repo(tmp_path)
    (root / ".venv").symlink_to(Path(sys.executable).parent.parent)
    shutil.copytree(shared_root, root / "var/volume")
    for command in (["init", "-q", "-b", "main"], ["add", "-A"],
                    ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):
        subprocess.run(["git", *command], cwd=root, check=True)
    return root
