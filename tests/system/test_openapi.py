"""The OpenAPI document matches the server: schemathesis, as its users run it, generates
requests from the document and checks every answer (status codes, response shapes,
methods, the Allow header), against a served instance, bounded in examples and time.
No check is relaxed: each model's infer route states the tensors it takes, so a request
the document allows is answered, and one it forbids is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO
from servers import config, model

ST = Path(sys.executable).parent / "st"


def test_schemathesis_finds_no_mismatch(start_server, capsys):
    server = start_server(config(model("iris"), model(
        "cancer-screen", "python", code=str(REPO / "models/cancer-screen/model.py"))))
    server.wait("/docs")  # the document is built once the models have loaded
    ran = subprocess.run([str(ST), "run", f"{server.url}/openapi.json", "--checks", "all",
                          "--max-examples", "30", "--generation-deterministic",
                          "--request-timeout", "10"],
                         capture_output=True, text=True, timeout=600)
    summary = [line for line in ran.stdout.splitlines() if "generated" in line]
    assert ran.returncode == 0, ran.stdout[-6000:]
    assert "Traceback" not in server.stderr.read_text()
    with capsys.disabled():
        print(f"\nschemathesis: {summary[-1].strip() if summary else ran.stdout[-300:]}")
