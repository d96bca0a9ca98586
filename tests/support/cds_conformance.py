"""A reusable checker that a CDS Hooks 2.0 service response obeys the specification's rules.

Role: test support. `problems(response)` returns a list of human-readable problems (empty when
the response conforms); `assert_conforms(response)` fails a test with all of them. Rules checked
(CDS Hooks 2.0, "CDS Service Response", "Card Attributes", "Suggestion", "Action",
"Override Reason", "System Action"; clinical-specification.md §7 and §7.6):
- `cards` is present and an array (required even when empty);
- each card has a uuid, a summary of at most 140 characters, an indicator in info | warning |
  critical, a source with a label (and a topic Coding with system and code when given);
- suggestions have a label and a uuid and at least one action, and the card then carries
  `selectionBehavior` (at-most-one | any);
- override reasons are Codings with a code, a system and a display;
- every action has a type in create | update | delete and a description; create and update carry
  a FHIR resource with resourceType; delete names `resourceId`;
- system actions obey the action rules;
- uuids are unique across cards and suggestions;
- no value anywhere is null or an empty string, array or object (except the required `cards`).
"""

from __future__ import annotations

import uuid
from typing import Any

INDICATORS = {"info", "warning", "critical"}
SELECTION_BEHAVIORS = {"at-most-one", "any"}
ACTION_TYPES = {"create", "update", "delete"}
SUMMARY_MAX = 140


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _empty_values(value: Any, path: str, out: list[str]) -> None:
    if value is None:
        out.append(f"{path}: null")
    elif isinstance(value, str):
        if not value.strip():
            out.append(f"{path}: empty string")
    elif isinstance(value, list):
        if not value:
            out.append(f"{path}: empty array")
        for index, item in enumerate(value):
            _empty_values(item, f"{path}[{index}]", out)
    elif isinstance(value, dict):
        if not value:
            out.append(f"{path}: empty object")
        for key, item in value.items():
            _empty_values(item, f"{path}.{key}", out)


def _check_action(action: Any, path: str, out: list[str]) -> None:
    if not isinstance(action, dict):
        out.append(f"{path}: not an object")
        return
    kind = action.get("type")
    if kind not in ACTION_TYPES:
        out.append(f"{path}.type: {kind!r} is not create|update|delete")
    if not isinstance(action.get("description"), str) or not action.get("description", "").strip():
        out.append(f"{path}.description: missing")
    if kind in ("create", "update"):
        resource = action.get("resource")
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            out.append(f"{path}.resource: a {kind} action needs a FHIR resource with resourceType")
        elif kind == "update" and not resource.get("id"):
            out.append(f"{path}.resource.id: an update needs the id of the resource it updates")
    if kind == "delete":
        ids = action.get("resourceId")
        ok = (isinstance(ids, str) and "/" in ids) or (
            isinstance(ids, list) and ids and all(isinstance(i, str) and "/" in i for i in ids)
        )
        if not ok:
            out.append(f"{path}.resourceId: a delete action needs relative references like 'ServiceRequest/1'")


def _check_coding(coding: Any, path: str, out: list[str], need_display: bool) -> None:
    if not isinstance(coding, dict):
        out.append(f"{path}: not a Coding object")
        return
    for key in ("code", "system") + (("display",) if need_display else ()):
        if not isinstance(coding.get(key), str) or not coding.get(key, "").strip():
            out.append(f"{path}.{key}: missing")


def problems(response: Any) -> list[str]:
    """Everything in `response` that breaks the CDS Hooks 2.0 response rules."""
    out: list[str] = []
    if not isinstance(response, dict):
        return ["response: not a JSON object"]
    cards = response.get("cards")
    if not isinstance(cards, list):
        out.append("cards: required array missing")
        cards = []
    seen_uuids: set[str] = set()

    def unique(value: Any, path: str) -> None:
        if not _is_uuid(value):
            out.append(f"{path}: missing or not a uuid")
        elif value in seen_uuids:
            out.append(f"{path}: uuid {value} used twice")
        else:
            seen_uuids.add(value)

    for c, card in enumerate(cards):
        path = f"cards[{c}]"
        if not isinstance(card, dict):
            out.append(f"{path}: not an object")
            continue
        unique(card.get("uuid"), f"{path}.uuid")
        summary = card.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            out.append(f"{path}.summary: missing")
        elif len(summary) > SUMMARY_MAX:
            out.append(f"{path}.summary: {len(summary)} characters (at most {SUMMARY_MAX})")
        if card.get("indicator") not in INDICATORS:
            out.append(f"{path}.indicator: {card.get('indicator')!r} is not info|warning|critical")
        source = card.get("source")
        if not isinstance(source, dict) or not isinstance(source.get("label"), str) or not source.get("label", "").strip():
            out.append(f"{path}.source.label: missing")
        elif "topic" in source:
            _check_coding(source["topic"], f"{path}.source.topic", out, need_display=False)
        suggestions = card.get("suggestions")
        if suggestions is not None:
            if not isinstance(suggestions, list):
                out.append(f"{path}.suggestions: not an array")
                suggestions = []
            if suggestions and card.get("selectionBehavior") not in SELECTION_BEHAVIORS:
                out.append(f"{path}.selectionBehavior: required with suggestions (at-most-one|any)")
            for s, suggestion in enumerate(suggestions):
                spath = f"{path}.suggestions[{s}]"
                if not isinstance(suggestion, dict):
                    out.append(f"{spath}: not an object")
                    continue
                if not isinstance(suggestion.get("label"), str) or not suggestion.get("label", "").strip():
                    out.append(f"{spath}.label: missing")
                unique(suggestion.get("uuid"), f"{spath}.uuid")
                actions = suggestion.get("actions")
                if not isinstance(actions, list) or not actions:
                    out.append(f"{spath}.actions: a suggestion needs at least one action")
                    continue
                for a, action in enumerate(actions):
                    _check_action(action, f"{spath}.actions[{a}]", out)
        elif "selectionBehavior" in card and card["selectionBehavior"] not in SELECTION_BEHAVIORS:
            out.append(f"{path}.selectionBehavior: {card['selectionBehavior']!r} is not at-most-one|any")
        reasons = card.get("overrideReasons")
        if reasons is not None:
            if not isinstance(reasons, list):
                out.append(f"{path}.overrideReasons: not an array")
            else:
                for r, reason in enumerate(reasons):
                    _check_coding(reason, f"{path}.overrideReasons[{r}]", out, need_display=True)
        for key in ("links",):
            for l_index, link in enumerate(card.get(key) or []):
                if not isinstance(link, dict) or not link.get("label") or not link.get("url") or link.get("type") not in {"absolute", "smart"}:
                    out.append(f"{path}.links[{l_index}]: needs label, url and type absolute|smart")

    for where in ("systemActions",):
        actions = response.get(where)
        if actions is None:
            continue
        if not isinstance(actions, list):
            out.append(f"{where}: not an array")
            continue
        for a, action in enumerate(actions):
            _check_action(action, f"{where}[{a}]", out)
    extension = response.get("extension")
    if isinstance(extension, dict) and isinstance(extension.get("systemActions"), list):
        for a, action in enumerate(extension["systemActions"]):
            _check_action(action, f"extension.systemActions[{a}]", out)

    # No nulls or empties anywhere; `cards` itself may be an empty array (it is required).
    for key, value in response.items():
        if key == "cards" and value == []:
            continue
        _empty_values(value, key, out)
    return out


def assert_conforms(response: Any) -> None:
    found = problems(response)
    assert not found, "CDS Hooks 2.0 response problems:\n- " + "\n- ".join(found)
