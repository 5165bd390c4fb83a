"""Generated files on disk: compare each with the tree, write, and remove the stale.

Generated files are overlays/**, schemas/*.schema.json, docs/spec.md and the model
folders' block of .github/CODEOWNERS. Everything under
overlays/ that the specs no longer produce is removed, so a deleted spec leaves nothing
behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

import orjson

from modelops import specdoc, yamlemit
from modelops.generate import codeowners, overlays, split
from modelops.generate.objects import Code, header
from modelops.repo import Repo
from modelops.schemas import exported

OVERLAYS = "overlays"


@dataclasses.dataclass
class Stale:
    """Generated files that differ from what the specs make now."""

    added: list[str]
    changed: list[str]
    removed: list[str]

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def lines(self) -> list[str]:
        return ([f"missing  {p}" for p in self.added] + [f"stale    {p}" for p in self.changed]
                + [f"orphaned {p}" for p in self.removed])


def _python_header(source: str) -> str:
    return "".join(f"# {line}\n" for line in header(source).splitlines())


def _text(path: str, data: object, source: str) -> str:
    if path.endswith(".json"):  # JSON has no comments: the header is a field
        data = {**data, "generated": header(source).replace("\n", " ")}
        return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
    if isinstance(data, Code):  # a model class or training file, copied
        return _python_header(data.source) + data.text
    if isinstance(data, list):  # several objects in one file
        return yamlemit.dump_all(data, header(source))
    return yamlemit.dump(data, header(source))


def _texts(units: list[overlays.Unit]) -> dict[str, str]:
    """Make the units one at a time, keeping only their text (their data goes at once)."""
    return {path: _text(path, data, source)
            for make, source in units for path, data in make().items()}


def _documents(repo: Repo) -> dict[str, str]:
    """The generated files that are not overlays: from the spec's classes, and the owners."""
    out = {"docs/spec.md": specdoc.markdown(), codeowners.PATH: codeowners.text(repo.root, repo)}
    for name, schema in exported().items():
        out[f"schemas/{name}"] = orjson.dumps(
            schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
    return out


def expected(repo: Repo) -> dict[str, str]:
    """Relative path -> exact file text, for every generated file."""
    return _texts(overlays.units(repo)) | _documents(repo)


def _read(path: str, most: int) -> bytes | None:
    """Up to `most` bytes of a file, None if there is none: a bare os.read costs half of
    open() and read()."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return os.read(fd, most)
    except IsADirectoryError:
        return b""
    finally:
        os.close(fd)


def _apply(root: Path, wanted: dict[str, str], write: bool) -> tuple[list[str], list[str]]:
    """Compare each wanted file with the tree (and rewrite it when `write` and it differs):
    the paths that were missing, and those whose bytes differed."""
    added, changed, made = [], [], set()
    for path, text in wanted.items():
        full = os.path.join(root, path)
        expected = text.encode()
        found = _read(full, len(expected) + 1)
        if found == expected:
            continue
        (added if found is None else changed).append(path)
        if write:
            parent = os.path.dirname(full)
            if parent not in made:
                os.makedirs(parent, exist_ok=True)
                made.add(parent)
            with open(full, "wb") as handle:
                handle.write(expected)
    return added, changed


def _unclaimed(root: Path, wanted: dict[str, str]) -> list[str]:
    """Files under overlays/ that are not among `wanted`."""
    files = set()
    for top, _, names in os.walk(root / OVERLAYS):
        rel = os.path.relpath(top, root).replace(os.sep, "/")
        files.update(f"{rel}/{name}" for name in names)
    return sorted(files.difference(wanted))


def _remove(root: Path, paths: list[str]) -> None:
    """Delete orphaned files, then the directories that left empty, deepest first."""
    for path in paths:
        os.unlink(os.path.join(root, path))
    for top, _, _ in sorted(os.walk(root / OVERLAYS), reverse=True):
        if not os.listdir(top):
            os.rmdir(top)


def sync(root: Path, repo: Repo, write: bool, parallel: bool = False) -> tuple[Stale, int]:
    """Compare every generated file with the tree (and bring the tree in line when `write`):
    what was stale, and how many files are generated. Overlays are independent, so with
    `parallel` (the CLI's choice) on two cores a forked child makes, compares and writes
    every other one, and lists the tree."""
    units = overlays.units(repo)
    with contextlib.ExitStack() as stack:  # on leaving, waits for the child (if any)
        child = None
        if parallel and split.may_fork():
            theirs, units = units[1::2], units[::2]

            def share() -> dict:
                wanted = _texts(theirs)
                added, changed = _apply(root, wanted, write)
                return {"count": len(wanted), "added": added, "changed": changed,
                        "unclaimed": _unclaimed(root, wanted)}

            child = stack.enter_context(split.in_child(share))
        wanted = _texts(units) | _documents(repo)
        added, changed = _apply(root, wanted, write)
        count = len(wanted)
        if child is None:
            unclaimed = _unclaimed(root, wanted)
        else:
            try:
                done = child.result()
            except Exception as exc:
                raise RuntimeError(f"generating in a child process failed: "
                                   f"{type(exc).__name__}: {exc}") from exc
            count += done["count"]
            added += done["added"]
            changed += done["changed"]
            unclaimed = done["unclaimed"]
    removed = [path for path in unclaimed if path not in wanted]
    if write and removed:
        _remove(root, removed)
    return Stale(sorted(added), sorted(changed), removed), count
