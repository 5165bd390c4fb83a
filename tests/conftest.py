"""Fixtures that build a tiny repository in a temp directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


def copy_repo(tmp_path: Path) -> Path:
    """This repository's specs, platform, bases, overlays and schemas, in a temp directory."""
    root = tmp_path / "repo"
    for folder in ("models", "platform", "base", "overlays", "schemas"):
        shutil.copytree(REPO / folder, root / folder)
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
    shutil.copytree(REPO / "docs", root / "docs")
    (root / ".venv").symlink_to(Path(sys.executable).parent.parent)
    shutil.copytree(shared_root, root / "var/volume")
    for command in (["init", "-q", "-b", "main"], ["add", "-A"],
                    ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):
        subprocess.run(["git", *command], cwd=root, check=True)
    return root
