"""The one way rule data is read: a file (JSON or YAML) checked against its rule type's schema.

Role in the data flow: a shared utility, used at start-up only. Every rule type (value sets, order
names, local codes, card wording) owns a pydantic model of its file with the keys it allows
(`RuleModel`: unknown keys are refused, as medspaCy's `TargetRule.from_dict` refuses them);
`load_rule_file(path, Model)` reads the file and validates it, and a bad file stops the start-up
with a `RuleDataError` naming the file, the entry and the problem, for example

    rules/valuesets/infection-fever.json: entry 3 (entries[2]): unknown key(s) ['sytem']; allowed: [...]

Nothing here runs per request.
"""

from __future__ import annotations

import json
import re
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # cds_service/
RULES_DIR = Path(__file__).resolve().parent


class RuleDataError(ValueError):
    """A rule-data file is unreadable or breaks its schema (raised at start-up, never per request)."""


class RuleModel(BaseModel):
    """The base of every rule schema: unknown keys are an error (a typo worth stopping for).

    `entry_label` names an entry of a list in error messages: `{list}` is the list's key (with
    the keys above it, `dose_forms.not_systemic`), `{n}` the entry's number from 1, `{i}` its index
    from 0, and any other `{key}` that entry's own text value (`{name}`: "ingredients[3]
    (naproxen)"); an entry without that key is named by the default label."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    entry_label: ClassVar[str] = "entry {n} ({list}[{i}])"


M = TypeVar("M", bound=RuleModel)


def problem(message: str) -> PydanticCustomError:
    """A rule's own check, raised from a validator: the message is shown as written."""
    return PydanticCustomError("rule_data", message)


def shown(path: str | Path) -> str:
    """A shipped file by its place in the package (rules/valuesets/x.json); any other as given."""
    try:
        return Path(path).resolve().relative_to(PACKAGE_DIR).as_posix()
    except ValueError:
        return str(path)


def read_rule_file(path: str | Path, error: type[RuleDataError] = RuleDataError) -> Any:
    """The file's content: YAML for .yaml/.yml, JSON otherwise."""
    name = shown(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as failure:
        raise error(f"{name}: cannot be read ({failure.strerror or failure})") from None
    if Path(path).suffix in (".yaml", ".yml"):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as failure:
            raise error(f"{name}: not valid YAML ({failure})") from None
    try:
        return json.loads(text)
    except ValueError as failure:
        raise error(f"{name}: not readable JSON ({failure})") from None


def load_rule_file(path: str | Path, model: type[M], context: dict | None = None,
                   error: type[RuleDataError] = RuleDataError) -> M:
    """Read `path` and validate it as `model`; a problem raises `error` naming file and entry."""
    return validate_rule_data(read_rule_file(path, error), model, shown(path), context, error)


def validate_rule_data(data: Any, model: type[M], name: str, context: dict | None = None,
                       error: type[RuleDataError] = RuleDataError) -> M:
    try:
        return model.model_validate(data, context=context)
    except ValidationError as invalid:
        raise error(f"{name}: {describe(invalid, model, data)}") from None


def describe(invalid: ValidationError, model: type[BaseModel], data: Any = None) -> str:
    """The first problem of a validation error, as `<entry>: <problem>` in plain words (`data`,
    the validated content, lends its values to the entry labels)."""
    errors = invalid.errors(include_url=False)
    first = errors[0]
    place = _entry_of(first["loc"])
    same_place = [e for e in errors if _entry_of(e["loc"]) == place]
    unknown = [e for e in same_place if e["type"] == "extra_forbidden"]
    if unknown:
        keys = sorted(str(e["loc"][-1]) for e in unknown)
        owner = _model_at(model, unknown[0]["loc"][:-1])
        allowed = f"; allowed: {sorted(owner.model_fields)}" if owner else ""
        message = f"unknown key(s) {keys}{allowed}"
        return _where(model, unknown[0]["loc"][:-1], message, data)
    loc = first["loc"]
    if first["type"] == "missing":
        return _where(model, loc[:-1], f"missing key '{loc[-1]}'", data)
    if first["type"] == "rule_data":
        return _where(model, loc, first["msg"], data, own=True)
    return _where(model, loc, first["msg"], data)


def _entry_of(loc: tuple) -> tuple:
    """The location up to the first list index: the entry an error belongs to."""
    for position, part in enumerate(loc):
        if isinstance(part, int):
            return tuple(loc[: position + 1])
    return ()


def _where(model: type[BaseModel], loc: tuple, message: str, data: Any = None, own: bool = False) -> str:
    parts: list[str] = []
    field = []
    node = data  # the value at the current place of `loc`, for the entry labels
    position = 0
    while position < len(loc):
        part = loc[position]
        validator_step = isinstance(part, str) and part.startswith(("function-", "model"))
        if not validator_step:
            node = node.get(part) if isinstance(node, dict) else None
        if position + 1 < len(loc) and isinstance(loc[position + 1], int):
            index = loc[position + 1]
            node = node[index] if isinstance(node, list) and index < len(node) else None
            item = _model_at(model, loc[: position + 1])
            if item is None:  # a list of plain values: named as a field, absorbs[0]
                field.append(f"{part}[{index}]")
            else:
                parts.append(_label(item, ".".join([*field, str(part)]), index, node))
                field = []
            position += 2
            continue
        if not validator_step:
            field.append(str(part))
        position += 1
    if field and not own:
        message = f"'{'.'.join(field)}': {message}"
    return ": ".join(parts + [message])


def _label(item: type[BaseModel], list_name: str, index: int, entry: Any) -> str:
    values = {k: v for k, v in entry.items() if isinstance(v, str)} if isinstance(entry, dict) else {}
    where = {"list": list_name, "n": index + 1, "i": index}
    try:
        return item.entry_label.format_map({**values, **where})
    except (KeyError, IndexError, ValueError):  # the label names a value this entry lacks
        return RuleModel.entry_label.format_map(where)


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model that validates the object at `loc` (None when not a model)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None
        current = _inner_model(current.model_fields[part].annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    """list[X], X | None, tuple[X, ...] -> X, when X is a model."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (list, tuple, typing.Union, types.UnionType, typing.Annotated):
        for argument in typing.get_args(annotation):
            found = _inner_model(argument)
            if found is not None:
                return found
    return None


__all__ = ["RULES_DIR", "RuleDataError", "RuleModel", "load_rule_file", "problem", "read_rule_file", "shown",
           "validate_rule_data"]


def check_pattern(pattern: str, examples: list[str], counter_examples: list[str] = ()) -> None:
    """A rule's regular expression compiles (case-insensitive), matches each of its examples and
    none of its counter-examples: the rule file documents and tests itself at start-up."""
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
    except re.error as error:
        raise ValueError(f"pattern does not compile: {error}") from None
    missed = [e for e in examples if not compiled.search(e)]
    if missed:
        raise ValueError(f"pattern does not match its examples {missed}")
    wrong = [e for e in counter_examples if compiled.search(e)]
    if wrong:
        raise ValueError(f"pattern matches its counter_examples {wrong}")
