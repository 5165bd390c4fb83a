"""The example artifacts are rebuilt from scikit-learn's bundled data, matching their specs."""

from __future__ import annotations

from conftest import examples as example_repo

from modelops import examples
from modelops.repo import load


def test_artifacts_match_the_sha256_the_specs_pin(tmp_path):
    digests = examples.make(tmp_path)
    repo = load(example_repo())
    pinned = {v.artifact.removeprefix("pvc://"): v.sha256
              for entry in repo.models.values() for v in entry.obj.spec.versions}
    assert pinned == digests


def test_examples_cover_canary_pool_python_and_gpu():
    repo = load(example_repo())
    assert repo.ok, repo.diagnostics
    specs = {name: e.obj.spec for name, e in repo.models.items()}
    assert sorted(v.weight for v in specs["iris"].versions) == [10, 90]
    assert [n for n, s in specs.items() if s.placement != "dedicated"] == ["diabetes", "wine"]
    assert specs["cancer-screen"].runtime == "python"
    assert specs["digits"].resources.gpu.count == 1
