"""What keeps the repository honest: the workflow lints, hooks and owners point at real things."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from conftest import REPO


def test_the_workflow_passes_actionlint(tmp_path):
    actionlint = shutil.which("actionlint", path=str(Path(sys.executable).parent))
    assert actionlint, "actionlint is a dev dependency"
    result = subprocess.run([actionlint, *map(str, (REPO / ".github/workflows").glob("*.yaml"))],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_would_catch_a_broken_workflow(tmp_path):
    actionlint = shutil.which("actionlint", path=str(Path(sys.executable).parent))
    broken = tmp_path / "ci.yaml"
    broken.write_text((REPO / ".github/workflows/ci.yaml").read_text().replace("runs-on:", "run-on:", 1))
    result = subprocess.run([actionlint, str(broken)], capture_output=True, text=True)
    assert result.returncode != 0


def test_pre_commit_hooks_run_modelops_commands():
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert {h["entry"] for h in hooks} == {"modelops validate", "modelops generate --check"}
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    entries = {h["entry"] for repo in config["repos"] for h in repo["hooks"]}
    assert entries == {".venv/bin/modelops validate", ".venv/bin/modelops generate --check"}


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", requirement.split("[")[0].split("==")[0]).lower()


def test_the_lock_holds_every_pin_of_pyproject_and_every_install_uses_it():
    """Two clones a month apart install the same code: requirements.lock (made by `make
    lock`) pins everything, and set-up and CI install exactly it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    locked = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", (REPO / "requirements.lock")
                             .read_text(), re.M))
    locked = {_name(name): version for name, version in locked.items()}
    for pin in project["dependencies"] + project["optional-dependencies"]["dev"]:
        assert locked.get(_name(pin)) == pin.split("==")[1], f"{pin}: run `make lock`"
    assert "--require-hashes -r requirements.lock" in (REPO / "Makefile").read_text()
    # Compiled at install, as pip does: without it every process compiles its imports again
    # where bytecode is not written (PYTHONDONTWRITEBYTECODE), and a test run took 2.5x as long.
    assert "--compile-bytecode" in (REPO / "Makefile").read_text()
    workflow = (REPO / ".github/workflows/ci.yaml").read_text()
    assert workflow.count("--require-hashes -r requirements.lock") == 2  # check and plan
    assert "pip install -e" not in workflow
