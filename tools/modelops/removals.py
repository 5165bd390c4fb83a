"""The guard against deleting many models by mistake.

A merged change that removes a spec leaves its model serving with its Application out of
sync, until someone deletes that Application (the ApplicationSet never does); a change
that removes more than `maxRemovedShare` of the specs of its base (and more than one) is
still refused before merge unless the author says it is meant (`--allow-removals`), so
that a mistake is caught in review and not by an operator in the cluster.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from modelops.diagnostics import Diagnostic
from modelops.repo import SPEC_FILES, Repo
from modelops.yamlload import load_text

_SPEC_PATH = re.compile(rf"^models/([^/]+)/(?:{'|'.join(map(re.escape, SPEC_FILES.values()))})$")
SETTINGS = "platform/settings.yaml"


def base_specs(root: Path, ref: str) -> set[str]:
    """Names of the specs committed at `ref`."""
    proc = subprocess.run(["git", "ls-tree", "-r", "--name-only", ref, "--", "models"],
                          cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ValueError(f"cannot read {ref!r}: {proc.stderr.strip()}")
    return {m.group(1) for line in proc.stdout.splitlines() if (m := _SPEC_PATH.match(line))}


def removed(root: Path, repo: Repo, ref: str) -> tuple[list[str], int]:
    """(specs of `ref` this tree no longer has, how many `ref` had)."""
    before = base_specs(root, ref)
    return sorted(before - set(repo.models) - set(repo.pools)), len(before)


def check(root: Path, repo: Repo, ref: str, allowed: bool) -> list[Diagnostic]:
    """A located error when the change removes too many specs at once."""
    assert repo.settings is not None
    gone, total = removed(root, repo, ref)
    share = repo.settings.maxRemovedShare
    if allowed or len(gone) <= 1 or len(gone) <= share * total:
        return []
    doc, _ = load_text(SETTINGS, (root / SETTINGS).read_bytes())
    line, col = doc.where(("maxRemovedShare",), key=True) if doc and \
        "maxRemovedShare" in doc.data else (1, 1)
    return [Diagnostic(
        SETTINGS, line, col, "maxRemovedShare",
        f"this change removes {len(gone)} of {total} models and pools "
        f"({len(gone) / total:.0%}), more than maxRemovedShare ({share:.0%}) allows; "
        f"their Applications would lose their source in every environment: {', '.join(gone)}",
        "if that is meant, validate with --allow-removals (in CI: label the pull request "
        "allow-removals)")]
