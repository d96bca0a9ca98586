"""The nesting limit read from the raw bytes gives the same verdict as a walk of the parsed value.

`check_raw_depth` (limits.py) replaced the walk on the request path for speed; these check it
against the walk on generated JSON full of what could fool a byte scanner: brackets, quotes and
backslashes inside strings and keys, escaped quotes, non-ASCII text, empty containers.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.hooks.errors import CdsError
from cds_service.web.limits import check_depth, check_raw_depth

TRICKY_TEXT = st.text(alphabet=st.sampled_from(list('{}[]"\\:,ab é\n/')), max_size=8)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | TRICKY_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TRICKY_TEXT, children, max_size=4),
    max_leaves=40,
)


def verdict(check, value, limit) -> bool:
    try:
        check(value, limit)
    except CdsError as error:
        assert error.code == "LCDS-1007"
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(value=JSON_VALUES, limit=st.integers(min_value=1, max_value=8))
def test_same_verdict_as_the_walk(value, limit):
    body = {"root": value}
    assert verdict(check_raw_depth, orjson.dumps(body), limit) == verdict(check_depth, body, limit)


@pytest.mark.parametrize("depth", [1, 2, 5, 64])
def test_exactly_at_the_limit_passes_and_one_more_fails(depth):
    body = {"a": '"[[[[\\', "b": "}}}"}
    inner = body
    for _ in range(depth - 1):
        inner["n"] = {"s": "]\\\"["}
        inner = inner["n"]
    raw = orjson.dumps(body)
    assert verdict(check_depth, body, depth) and verdict(check_raw_depth, raw, depth)
    if depth > 1:
        assert not verdict(check_depth, body, depth - 1)
        assert not verdict(check_raw_depth, raw, depth - 1)
