"""Structural limits on a parsed request body (issue "Security", item 3).

Role in the data flow: between JSON parsing and envelope validation. The body size is capped by
Flask (MAX_CONTENT_LENGTH -> 413) before parsing; here the nesting depth (400) and the number of
entries of each Bundle the client sent (413) are checked, so no later stage works on a hostile
shape. After the envelope is validated, `check_judged_orders` caps the orders one call may ask to
have judged (400).
"""

from __future__ import annotations

import re
from typing import Any

from cds_service.hooks.errors import CdsError


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


# Every byte except the four brackets and the double quote (deleted by bytes.translate); and
# "[" "]" written as "{" "}": in valid JSON the kinds always match, so only nesting is left.
_NOT_STRUCTURE = bytes(range(256)).translate(None, b'{}[]"')
# One escape sequence: a backslash and the byte after it ("\\uXXXX" leaves 4 harmless digits).
_QUOTED = re.compile(rb'"[^"]*"')
_ESCAPE = re.compile(rb"\\.", re.S)
_ONE_BRACKET_KIND = bytes.maketrans(b"[]", b"{}")


def check_raw_depth(raw: bytes, limit: int) -> None:
    """Raise LCDS-1007 if the JSON text `raw` nests deeper than `limit`; same verdict as
    `check_depth` on its parsed value, but in bulk byte operations (C speed) instead of a Python
    walk over every value: with 3 000 prefetch resources the walk was about a third of the
    request (pyinstrument, `python -m bench.profile`). Only call it on text orjson has already
    accepted: the reasoning below holds for valid JSON (UTF-8 multi-byte sequences never contain
    ASCII bytes).
    """
    # 1. Escapes out (left to right, so an escaped backslash is consumed whole): what is left of
    #    the quotes are exactly the string delimiters. Then keep only brackets and quotes.
    text = _ESCAPE.sub(b"", raw) if b"\\" in raw else raw
    text = text.translate(_ONE_BRACKET_KIND, _NOT_STRUCTURE)
    # 2. Removing adjacent quote pairs (an empty string, or the close of one string and the
    #    open of the next) keeps every bracket on its side of a string boundary; what quotes
    #    remain delimit strings that hold brackets: drop those.
    text = text.replace(b'""', b"")
    if b'"' in text:
        # one regex pass, not split-and-join: a list of every piece between quotes was ~30 MB
        # for a 2.8 MB body, the largest transient of a call
        text = _QUOTED.sub(b"", text)
    # 3. Each pass removes the innermost (empty) containers, exactly one level: bytes.replace
    #    does not rescan what a removal brings together ("{{}}" -> "{}" in one pass).
    for _ in range(limit):
        if not text:
            return
        text = text.replace(b"{}", b"")
    if text:
        raise CdsError("LCDS-1007", {"limit": limit})


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


def check_judged_orders(hook: str, selections: list[str], draft_orders: dict, limit: int) -> None:
    """Raise LCDS-1011 when a call asks for more orders to be judged than `limit`.

    Every judged order costs a decision, a card, a system action and a stored judgement: 10 000
    selected orders in a 3.2 MB request made a 54 MB answer. order-select judges the selected
    orders, order-sign every draft ServiceRequest; both are counted here, before any work.
    """
    if hook == "order-select":
        field, count = "context.selections", len(selections)
    else:
        entries = draft_orders.get("entry") or []
        field = "context.draftOrders.entry"
        count = sum(
            1 for e in entries
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)
            and e["resource"].get("resourceType") == "ServiceRequest"
        )
    if count > limit:
        raise CdsError("LCDS-1011", {"field": field, "count": count, "limit": limit}, field=field)
