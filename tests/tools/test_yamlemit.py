"""The generated YAML reads back, with PyYAML, as exactly the data that was written."""

from __future__ import annotations

import math

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from modelops import yamlemit

_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**63, max_value=2**63),
                     st.floats(allow_nan=False), st.text(max_size=30),
                     st.sampled_from(["yes", "No", "on", "~", "null", "1e3", "0x1F", "1:20",
                                      "2001-12-14", ".inf", "- a", "a: b", "#x", "'q'", "", " ",
                                      "img:1.2", "500m", "1Gi", "x\n", "\u2028", "\ufeff", "é"]))
_data = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=30)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


@settings(max_examples=500, deadline=None)
@given(_data)
def test_pyyaml_reads_back_what_was_written(data):
    text = yamlemit.dump(data, header="a header\n\nwith a blank line")
    assert _same(yaml.safe_load(text), data), text


def test_kubernetes_style_layout():
    text = yamlemit.dump({"kind": "X", "spec": {"items": [{"b": 1, "a": "500m"}], "empty": []}})
    assert text == "kind: X\nspec:\n  empty: []\n  items:\n  - a: 500m\n    b: 1\n"


def test_several_documents():
    text = yamlemit.dump_all([{"a": 1}, {"b": 2}], header="h")
    assert list(yaml.safe_load_all(text)) == [{"a": 1}, {"b": 2}]
    assert text.startswith("# h\n")
