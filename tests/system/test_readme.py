"""The README cannot drift: every `console` block runs in a fresh copy of the repository, and
what each command prints must match the lines shown under it (`...` within a line stands for
any text, a line of its own `...` for any lines). A block under a
`<!-- readme-test: while CMD -->` comment runs while CMD serves, as the prose around it says."""

from __future__ import annotations

import re
import subprocess
import time

import httpx
import pytest
from conftest import REPO

README = (REPO / "README.md").read_text()
BLOCK = re.compile(r"(?:<!-- readme-test: while (?P<while>.+?) -->\n)?```console\n(?P<body>.*?)```",
                   re.S)
MARK = "@@readme-step"


def _steps(body: str) -> list[tuple[str, list[str]]]:
    """(command, the output lines shown under it), in order."""
    steps: list[tuple[str, list[str]]] = []
    continued = False
    for line in body.splitlines():
        if continued:
            steps[-1] = (steps[-1][0] + "\n" + line, [])
        elif line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
        continued = line.endswith("\\")
    return steps


def _matches(expected: list[str], printed: str) -> bool:
    pattern = "".join(r"(?:[^\n]*\n)*?" if line == "..." else
                      r"[^\n]*?".join(map(re.escape, line.split("..."))) + r"\n"
                      for line in expected)
    return re.fullmatch(pattern, printed) is not None


def _script(steps: list[tuple[str, list[str]]]) -> str:
    lines = ["exec 2>&1"]
    for command, _ in steps:
        lines.append(command)
        if not command.rstrip().endswith("&"):
            lines.append(f'printf "\\n{MARK} %s\\n" $?')
    lines.append("kill $(jobs -p) 2>/dev/null; wait")
    return "\n".join(lines) + "\n"


BLOCKS = [(m.group("while"), _steps(m.group("body"))) for m in BLOCK.finditer(README)]


def _ready(server: subprocess.Popen, timeout: float = 60) -> None:
    start = time.monotonic()
    while time.monotonic() - start < timeout and server.poll() is None:
        try:
            if httpx.get("http://127.0.0.1:8080/v2/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"the README's server did not get ready (exit {server.poll()})")


@pytest.mark.parametrize("serving, steps", BLOCKS, ids=[s[0][0][:40] for _, s in BLOCKS])
def test_console_block_prints_what_the_readme_shows(fresh_copy, serving, steps):
    server = None
    if serving:
        server = subprocess.Popen(["bash", "-c", f"exec {serving}"], cwd=fresh_copy,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if server:
            _ready(server)
        run = subprocess.run(["bash"], input=_script(steps), cwd=fresh_copy, text=True,
                             capture_output=True, timeout=300)
    finally:
        if server:
            server.terminate()
            server.wait(30)
    outputs = re.split(rf"\n?{MARK} (\d+)\n", run.stdout)
    foreground = [(c, shown) for c, shown in steps if not c.rstrip().endswith("&")]
    assert len(outputs) == 2 * len(foreground) + 1, run.stdout
    for (command, shown), printed, code in zip(foreground, outputs[0::2], outputs[1::2], strict=False):
        printed = printed if printed.endswith("\n") or not printed else printed + "\n"
        assert code == "0", f"$ {command}\nexited {code}:\n{printed}"
        assert _matches(shown, printed), f"$ {command}\nprinted:\n{printed}\nREADME shows:\n" \
                                         + "\n".join(shown)


def test_every_command_block_is_a_tested_console_block():
    """Only the two `make` commands (which set this very test up) are shown untested."""
    untested = re.findall(r"```(?:sh|bash|shell)\n(.*?)```", README, re.S)
    commands = [line.split("#")[0].strip() for block in untested for line in block.splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]
    assert len(BLOCKS) >= 2 and all(steps for _, steps in BLOCKS)
