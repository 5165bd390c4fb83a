"""A data scientist's mistakes get located, readable errors, never a traceback."""

from __future__ import annotations

import pytest
from broken_specs import CASES, EXPECTED
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelops import yamlemit
from modelops.repo import load, load_spec


def test_every_case_has_an_expectation():
    assert CASES.keys() == EXPECTED.keys() and len(CASES) >= 30


@pytest.mark.parametrize("case", list(CASES))
def test_broken_spec_is_reported_exactly(tiny, case):
    for rel, text in CASES[case].items():
        tiny.write(rel, text)
    repo = load(tiny.root)
    assert [d.human() for d in sorted(set(repo.diagnostics))] == EXPECTED[case]


def test_all_errors_of_all_files_in_one_run(tiny):
    for case in ("typo in a nested field", "bad cpu quantity", "duplicate keys"):
        (path, text), = CASES[case].items()
        tiny.write(path.replace("/m/", f"/{case.split()[0]}/"), text.replace("name: m", f"name: {case.split()[0]}"))
    files = {d.file for d in load(tiny.root).diagnostics}
    assert files == {"models/typo/model.yaml", "models/bad/model.yaml", "models/duplicate/model.yaml"}


def test_valid_spec_has_no_errors(tiny):
    tiny.model("ok")
    repo = load(tiny.root)
    assert repo.diagnostics == [] and list(repo.models) == ["ok"]


# Random YAML documents: the loader returns a spec or located errors, and never raises.
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                     st.text(max_size=20))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=20)
_spec_like = st.fixed_dictionaries({}, optional={
    "apiVersion": st.sampled_from(["modelops/v1", "v1", 3]),
    "kind": st.sampled_from(["Model", "Pool", "Deployment", None]),
    "metadata": st.one_of(_values, st.fixed_dictionaries({"name": st.text(max_size=10)})),
    "spec": _values,
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_values, _spec_like))
def test_random_documents_give_specs_or_located_errors(document):
    entry, problems = load_spec("models/x/model.yaml", yamlemit.dump(document).encode())
    assert (entry is None) == bool(problems)
    for problem in problems:
        assert problem.file == "models/x/model.yaml" and problem.message
        assert problem.line >= 0 and problem.col >= 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_give_located_errors(raw):
    entry, problems = load_spec("models/x/model.yaml", raw)
    assert entry is None and problems and all(p.message for p in problems)
