"""glibc malloc arenas (cds_service/web/memory.py): limited unless the operator chose."""

from __future__ import annotations

import sys

import pytest

from cds_service.web.memory import limit_malloc_arenas


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_the_arenas_are_limited_when_the_operator_did_not_choose():
    assert limit_malloc_arenas({}) is True


def test_an_operators_malloc_arena_max_wins():
    assert limit_malloc_arenas({"MALLOC_ARENA_MAX": "8"}) is False
