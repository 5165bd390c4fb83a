"""The import graph: no circles anywhere in the project's packages (the layering itself is
import-linter's contracts in pyproject.toml, run by `make lint`)."""

from __future__ import annotations

import graphlib

import grimp

PACKAGES = ("modelops", "modelops_runtime", "modelops_compactor", "modelops_catalog",
            "modelops_jobs")


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    imports = {module: graph.find_modules_directly_imported_by(module)
               for module in graph.modules}
    try:
        graphlib.TopologicalSorter(imports).prepare()
    except graphlib.CycleError as exc:
        raise AssertionError(f"import circle: {' -> '.join(exc.args[1])}") from None
