"""The command line: exit codes, output formats, GitHub annotations."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from conftest import copy_repo, run_modelops


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


def _commands():
    """Every command of the CLI, with its full name, as click sees it."""
    import click

    from modelops.cli import app

    def walk(command, path):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    return [(" ".join(path), command, click.Context(command)) for path, command in
            walk(app, [])]


def test_every_option_has_help_and_every_argument_is_named_in_its_command_help():
    """click's convention: options carry their help, arguments are told of in the text."""
    missing = []
    for name, command, ctx in _commands():
        for param in command.get_params(ctx):
            if param.param_type_name == "option" and not (param.help or "").strip():
                missing.append(f"{name or 'modelops'} {param.name}")
            if param.param_type_name == "argument":
                word = param.make_metavar(ctx).strip("[].")
                if word not in (command.help or ""):
                    missing.append(f"{name} {word}")
    assert missing == []


def test_help_follows_click_conventions(tiny):
    """Flags take no value and show none; arguments read NAME, not {name}; exit codes last."""
    new = run_modelops("new", "--help", cwd=tiny.root).stdout
    assert new.startswith("Usage: modelops new [OPTIONS] NAME\n")
    assert "--runtime [sklearn|onnx|python|custom]" in new
    generate = run_modelops("generate", "--help", cwd=tiny.root).stdout
    assert "  --check  " in generate and "<bool>" not in generate
    assert generate.rstrip().endswith("2 usage error (an unknown option, a bad value).")
    refused = run_modelops("generate", "--check", "true", cwd=tiny.root)
    assert refused.returncode == 2 and "unexpected extra argument" in refused.stderr


def test_every_listed_choice_is_accepted():
    """What `--help` lists for -o is exactly what the command takes, per command."""
    listed = {}
    for name, command, ctx in _commands():
        for param in command.get_params(ctx):
            if "--output" in getattr(param, "opts", []):
                choices = list(param.type.choices)
                listed[name] = choices
                for choice in choices:
                    command.make_context(name, ["-o", choice])  # raises on a refused value
    assert listed == {"validate": ["human", "json", "github"],
                      "render": ["human", "json", "github"], "plan": ["markdown", "json"],
                      "logs compact": ["human", "json"]}


def test_shell_completion_offers_commands_choices_and_models(tiny):
    tiny.model("alpha")
    tiny.model("beta")

    def complete(words: str) -> list[str]:
        """What bash is offered, by click's own protocol (what bash_source installs)."""
        env = {"_MODELOPS_COMPLETE": "bash_complete", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split(" ")) - 1)}
        proc = subprocess.run([sys.executable, "-c", "from modelops.cli import main; main()"],
                              cwd=tiny.root, capture_output=True, text=True,
                              env={**os.environ, **env})
        return [line.split(",", 1)[1] for line in proc.stdout.split()]

    assert complete("modelops pl") == ["plan"]
    assert complete("modelops plan -o ") == ["markdown", "json"]
    assert complete("modelops test ") == ["alpha", "beta"]
    assert complete("modelops serve b") == ["beta"]
    script = run_modelops(cwd=tiny.root, env={"_MODELOPS_COMPLETE": "bash_source"})
    assert script.returncode == 0 and "_MODELOPS_COMPLETE=bash_complete" in script.stdout


def test_serve_on_a_busy_port_or_with_an_empty_token_is_one_line_and_exit_1(tiny):
    """Two `modelops serve` at once ended in a 20-line gRPC traceback and exit 3; an empty
    MODELOPS_AUTH_TOKEN in the shell, in a pydantic traceback."""
    import socket

    tiny.model("alpha")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for args, option in ((["--port", str(port), "--grpc-port", "0"], "--port"),
                             (["--port", "0", "--grpc-port", str(port)], "--grpc-port")):
            busy = run_modelops("serve", *args, cwd=tiny.root)
            assert busy.returncode == 1 and "Traceback" not in busy.stderr
            assert busy.stderr == (f"error: port {port} on 127.0.0.1 is in use (another "
                                   f"`modelops serve`, or `make demo`?); choose another with "
                                   f"{option}\n")
    empty = run_modelops("serve", "--grpc-port", "0", cwd=tiny.root,
                         env={"MODELOPS_AUTH_TOKEN": ""})
    assert empty.returncode == 1 and "Traceback" not in empty.stderr
    assert empty.stderr.startswith("error: MODELOPS_AUTH_TOKEN is set but has fewer than 16")


def test_each_help_text_says_what_its_command_does(tmp_path, shared_root):
    """Help and errors are read as instructions: what they name must be what happens."""
    root = copy_repo(tmp_path)
    files = {"onnx": shared_root / "artifacts/digits/v1/model.onnx"}
    helped = run_modelops("new", "--help", cwd=root).stdout
    named = re.search(r"--artifact FILE\s+The trained file \(([^)]*)\)", helped)[1]
    for runtime in ("sklearn", "onnx", "python", "custom"):
        trained = files.get(runtime, shared_root / "artifacts/iris/v1/model.joblib")
        made = run_modelops("new", f"m-{runtime}", "--runtime", runtime, "--artifact",
                            str(trained), cwd=root)
        assert (made.returncode == 0) == (runtime in named.split(", ")), (runtime, made.stderr)
    # propose on a model that declares no training points where such a file comes from,
    # not at `modelops train`, which would refuse it
    refused = run_modelops("propose", "digits", cwd=root)
    assert refused.returncode == 1 and "modelops train" not in refused.stderr
    assert "declares no training" in refused.stderr and "modelops push digits" in refused.stderr
    # every command the CLI suggests after `new` is one it has
    commands = set(re.findall(r"^  (\w+)", run_modelops("--help", cwd=root).stdout, re.M))
    for line in run_modelops("new", "x", "--runtime", "python", cwd=root).stdout.split(
            "next:\n")[1].splitlines():
        assert line.split()[1] in commands, line
