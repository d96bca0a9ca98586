"""Structural limits on a parsed request body (issue "Security", item 3).

Role in the data flow: between JSON parsing and envelope validation. The body size is capped by
Flask (MAX_CONTENT_LENGTH -> 413) before parsing; here the nesting depth (400) and the number of
entries of each Bundle the client sent (413) are checked, so no later stage works on a hostile
shape.
"""

from __future__ import annotations

from typing import Any

from .errors import CdsError


def check_depth(value: Any, limit: int) -> None:
    """Raise LCDS-1007 if `value` nests deeper than `limit` (iterative: no recursion to blow)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise CdsError("LCDS-1007", {"limit": limit})
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values() if isinstance(child, (dict, list)))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node if isinstance(child, (dict, list)))


def check_bundle_sizes(body: dict, limit: int) -> None:
    """Raise LCDS-1414 when draftOrders or a prefetch Bundle has more than `limit` entries."""
    context = body.get("context")
    if isinstance(context, dict):
        _check_bundle(context.get("draftOrders"), "context.draftOrders", limit)
    prefetch = body.get("prefetch")
    if isinstance(prefetch, dict):
        for key, value in prefetch.items():
            _check_bundle(value, f"prefetch.{key}", limit)


def _check_bundle(value: Any, path: str, limit: int) -> None:
    if isinstance(value, dict) and isinstance(value.get("entry"), list) and len(value["entry"]) > limit:
        raise CdsError("LCDS-1414", {"field": f"{path}.entry", "limit": limit}, field=f"{path}.entry")
