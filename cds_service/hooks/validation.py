"""The contract models' shared base, field types and the reading of their validation errors.

Role in the data flow: used by every model of the CDS Hooks contract (`hooks.request`,
`hooks.response`, `hooks.feedback`). A pydantic `ValidationError` is reduced to its first
`Problem` (the field path as the client wrote it, `context.selections[0]`, and a plain reason);
`numbered_error` (and, for their own rules, `hooks.envelope` and `hooks.feedback`) turn that
into the numbered `CdsError` the client reads.
The models validate strictly (JSON `true` is no number, `"300"` no integer), as the hand checks
they replace did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from cds_service.hooks.errors import CdsError

# PostgreSQL refuses NUL (U+0000) in text, and no CDS Hooks identifier needs one: a request whose
# ids (which the governance store keeps) hold one is refused, with a 400 naming the field.
# (Lone surrogates, the other strings a database cannot store, never get past the JSON parser.)
NUL_REASON = "must not contain the NUL character (U+0000)"


# What each contract model is called in a wrong-type error, by class name (pydantic's error names
# the class); filled as the models are defined.
_EXPECTED: dict[str, str] = {}


class ContractModel(BaseModel):
    """A part of the CDS Hooks contract. `expected` names it in a wrong-type error ("expected
    object"); fields the contract does not name are ignored, as CDS Hooks asks of a service."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    expected: ClassVar[str] = "object"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _EXPECTED[cls.__name__] = cls.expected


def invalid(reason: str, *, subpath: str = "", **context: Any) -> PydanticCustomError:
    """A broken rule of the contract: `reason` completes "Field 'x' is invalid: ..."; `subpath`
    continues the field's path (".entry[0].resource") when the rule looked inside the value."""
    return PydanticCustomError("invalid", "{reason}", {"reason": reason, "subpath": subpath, **context})


def broken(kind: str, **context: Any) -> PydanticCustomError:
    """A rule with a numbered error of its own (the hook of another service, fhirAuthorization
    without fhirServer, too many items): `kind` is read by the module that raised it."""
    return PydanticCustomError(kind, kind, context)


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise invalid(NUL_REASON)
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise invalid("must not be empty")
    return _no_nul(value)


# A string a store may keep (no NUL); an identifier that must also say something (not blank).
StoredText = Annotated[str, AfterValidator(_no_nul)]
Identifier = Annotated[str, AfterValidator(_not_blank)]


# --- reading a ValidationError ---------------------------------------------------------------

# pydantic's wrong-type errors and the JSON type each expected.
_TYPE_NAMES = {
    "string_type": "string", "int_type": "integer", "float_type": "number", "bool_type": "boolean",
    "list_type": "array", "dict_type": "object",
}
_MODEL_TYPES = {"model_type", "model_attributes_type"}


@dataclass(frozen=True)
class Problem:
    """The first thing wrong with a body: where (`path`), what kind (`missing`, `type`, `invalid`
    or the kind a `broken` rule named), and the words for it."""

    path: str
    kind: str
    expected: str = ""  # for `type`: the JSON type wanted, "string", "object (Bundle)"
    reason: str = ""  # for `invalid`: "must not be empty"
    context: dict | None = None

    @property
    def phrase(self) -> str:
        """What is wrong, after the field's name: "is required", "must be a string"."""
        if self.kind == "missing":
            return "is required"
        if self.kind == "type":
            article = "an" if self.expected[:1] in "aeiou" else "a"
            return f"must be {article} {self.expected}"
        return self.reason


def path_of(location: tuple) -> str:
    """('context', 'selections', 0) -> 'context.selections[0]'."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def first_problem(error: ValidationError, expected_at: dict[str, str] | None = None) -> Problem:
    """The first error pydantic found (fields are checked in the order the contract lists them).
    `expected_at`: a clearer name of the expected type at some paths ("string (URL)")."""
    details = error.errors(include_url=False)[0]
    kind, location, context = details["type"], tuple(details["loc"]), details.get("ctx") or {}
    path = path_of(location)
    if kind == "missing":
        return Problem(path, "missing")
    if kind in _TYPE_NAMES or kind in _MODEL_TYPES:
        # JSON null where a value is required counts as missing (an index in an array does not).
        if details["input"] is None and location and isinstance(location[-1], str):
            return Problem(path, "missing")
        expected = _TYPE_NAMES.get(kind) or _EXPECTED.get(context.get("class_name", ""), "object")
        return Problem(path, "type", expected=(expected_at or {}).get(path, expected))
    if kind == "literal_error":
        return Problem(path, "invalid", reason=f"must be {context['expected']}")
    if kind == "invalid":
        # A rule of a model as a whole names the field inside it (".token_type").
        return Problem((path + context.get("subpath", "")).lstrip("."), "invalid", reason=context["reason"])
    # Any other rule pydantic checks: its own words, as a reason.
    return Problem(path, kind, reason=str(details["msg"]), context=context)


def numbered_error(problem: Problem) -> CdsError:
    """A field's problem as the numbered error a client reads: LCDS-1003 missing, LCDS-1004
    wrong type, else LCDS-1006 invalid, each naming the field."""
    field = problem.path
    if problem.kind == "missing":
        return CdsError("LCDS-1003", {"field": field}, field=field)
    if problem.kind == "type":
        return CdsError("LCDS-1004", {"field": field, "expected": problem.expected}, field=field)
    return CdsError("LCDS-1006", {"field": field, "reason": problem.reason}, field=field)

