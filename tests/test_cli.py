"""The command line: exit codes, output formats, GitHub annotations."""

from __future__ import annotations

import json

from conftest import run_modelops


def test_validate_ok(tiny):
    tiny.model("alpha")
    result = run_modelops("validate", cwd=tiny.root)
    assert result.returncode == 0 and result.stdout == "ok: 1 model(s), 0 pool(s)\n"


def test_invalid_input_exits_1_with_located_errors_on_stderr(tiny):
    tiny.write("models/alpha/model.yaml", "apiVersion: modelops/v1\nkind: Model\nmetadata: {}\n")
    result = run_modelops("validate", cwd=tiny.root)
    assert result.returncode == 1 and result.stdout == ""
    assert "models/alpha/model.yaml:3:1: metadata.name: missing required field 'name'" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_error_exits_2(tiny):
    assert run_modelops("validate", "--no-such-flag", cwd=tiny.root).returncode == 2


def test_json_output_for_machines(tiny):
    tiny.write("models/alpha/model.yaml", "kind: Model\n")
    result = run_modelops("validate", "--output", "json", cwd=tiny.root)
    problems = json.loads(result.stdout)
    assert result.returncode == 1
    assert {"file", "line", "col", "path", "message", "hint"} <= problems[0].keys()


def test_github_annotations_inside_actions(tiny):
    path = tiny.model("alpha")
    path.write_text(path.read_text().replace("runtime: sklearn", "runtime: sklern"))
    result = run_modelops("validate", cwd=tiny.root, env={"GITHUB_ACTIONS": "true"})
    assert result.returncode == 1
    assert ("::error file=models/alpha/model.yaml,line=7,col=12,title=spec.runtime::spec.runtime: "
            "input should be 'sklearn', 'onnx', 'python' or 'custom', got 'sklern' "
            "(did you mean 'sklearn'?)") in result.stderr.splitlines()
