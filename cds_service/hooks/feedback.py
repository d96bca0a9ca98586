"""The CDS Hooks 2.0 feedback body as models: what the clinician did with each card.

Role in the data flow: the contract of `POST /cds-services/<id>/feedback`; `governance.feedback`
validates a body with `parse_feedback_body` and stores the items. An item is `accepted` with the
suggestions taken, or `overridden` with the reason chosen from the card's `overrideReasons` and
a comment (CDS Hooks 2.0 "Feedback"). Epic sends `overrideReasons`, an array of the same
OverrideReason objects (with its own extension keys, ignored), where the specification has one
`overrideReason`: both shapes are read, and `FeedbackItem.reasons` holds every reason given. A bad item is a 400 naming its index and the problem
(LCDS-1010); the lengths are the store's columns.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, field_validator

from cds_service.hooks.errors import CdsError
from cds_service.hooks.validation import (
    NUL_REASON,
    ContractModel,
    Problem,
    broken,
    first_problem,
    invalid,
    numbered_error,
)

MAX_ITEMS = 1000
MAX_ID = 128
MAX_COMMENT = 4000
MAX_REASONS = 20


def _text(limit: int, required: bool = True):
    """A string of at most `limit` characters, no NUL (PostgreSQL refuses it: a 400 the client
    can act on, not a 503 it would retry); not blank when `required`."""
    return Annotated[str, AfterValidator(_text_check(limit, required))]


def _text_check(limit: int, required: bool):
    def check(value: str) -> str:
        if required and not value.strip():
            raise invalid("must not be empty")
        if len(value) > limit:
            raise invalid(f"is longer than {limit} characters")
        if "\x00" in value:
            raise invalid(NUL_REASON)
        return value

    return check


def _instant(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise invalid("is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        # CDS Hooks 2.0: an ISO 8601 instant; without an offset the moment is ambiguous.
        raise invalid("must include a time zone offset (e.g. Z)")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        # 9999-12-31T23:59:59-10:00 or 0001-01-01T00:30:00+01:00: no such instant in UTC.
        raise invalid("is out of range (years 1 to 9999 in UTC)") from None


# An ISO 8601 date-time with its offset, read as an aware UTC datetime.
Instant = Annotated[str, AfterValidator(_text_check(64, True)), AfterValidator(_instant)]
Id = _text(MAX_ID)
Label = _text(256, required=False)
Comment = _text(MAX_COMMENT, required=False)


class ReasonCoding(ContractModel):
    """The override reason's Coding. The sandbox sends only `code` and `system`."""

    expected: ClassVar[str] = "Coding object"

    code: Id
    system: Label | None = None
    display: Label | None = None


class OverrideReason(ContractModel):
    reason: ReasonCoding | None = None
    userComment: Comment | None = None


class AcceptedSuggestion(ContractModel):
    expected: ClassVar[str] = "object with 'id'"

    id: Id


class FeedbackItem(ContractModel):
    """One card's outcome. `acceptedSuggestions` only (and then at least one) when accepted,
    `overrideReason` (CDS Hooks 2.0) or `overrideReasons` (Epic: an array) only when overridden."""

    card: Id
    outcome: Literal["accepted", "overridden"] = Field(default=None, validate_default=True)
    outcomeTimestamp: Instant
    acceptedSuggestions: list[AcceptedSuggestion] | None = Field(default=None, validate_default=True)
    overrideReason: OverrideReason | None = None
    overrideReasons: list[OverrideReason] | None = None

    @property
    def reasons(self) -> tuple[OverrideReason, ...]:
        """Every reason given, in order: the specification's one, then Epic's array (a reason
        sent in both places counts once)."""
        given = ([self.overrideReason] if self.overrideReason else []) + list(self.overrideReasons or ())
        unique: list[OverrideReason] = []
        for reason in given:
            if reason not in unique:
                unique.append(reason)
        return tuple(unique)

    @field_validator("acceptedSuggestions", mode="before")
    @classmethod
    def _only_when_accepted(cls, value: Any, info: ValidationInfo) -> Any:
        outcome = info.data.get("outcome")
        if outcome == "accepted" and not (isinstance(value, list) and value):
            # Required for accepted outcomes: which of the card's suggestions the user took.
            raise invalid("must be a non-empty array when outcome is 'accepted'")
        if outcome == "overridden" and value not in (None, []):
            raise invalid("is only allowed when outcome is 'accepted'")
        return value

    @field_validator("overrideReason", "overrideReasons", mode="before")
    @classmethod
    def _only_when_overridden(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and value != [] and info.data.get("outcome") != "overridden":
            raise invalid("is only allowed when outcome is 'overridden'")
        if isinstance(value, list) and len(value) > MAX_REASONS:
            raise invalid(f"holds more than {MAX_REASONS} reasons")
        if info.field_name == "overrideReasons" and isinstance(value, list):
            # An entry may be the Coding itself rather than an OverrideReason holding it.
            return [{"reason": v} if isinstance(v, dict) and "code" in v and "reason" not in v else v for v in value]
        return value


class FeedbackBody(ContractModel):
    feedback: list[FeedbackItem]

    @field_validator("feedback", mode="before")
    @classmethod
    def _some_not_too_many(cls, value: Any) -> Any:
        # Said before any item is read.
        if isinstance(value, list) and not value:
            raise invalid("must hold at least one item")
        if isinstance(value, list) and len(value) > MAX_ITEMS:
            raise broken("too_many", limit=MAX_ITEMS)
        return value


_ITEM = re.compile(r"feedback\[(\d+)\]\.?(.*)")


def parse_feedback_body(body: Any) -> FeedbackBody:
    """The feedback body as models, or the CdsError of its first problem."""
    if not isinstance(body, dict):
        raise CdsError("LCDS-1002")
    try:
        return FeedbackBody.model_validate(body)
    except ValidationError as error:
        raise feedback_error(first_problem(error)) from None


def feedback_error(problem: Problem) -> CdsError:
    """A problem of an item: LCDS-1010 naming the item and the field in it; of the body: as a
    request's (LCDS-1003/1004/1006), or LCDS-1414 for too many items."""
    item = _ITEM.fullmatch(problem.path)
    if item:
        index, inner = int(item.group(1)), item.group(2)
        reason = f"'{inner}' {problem.phrase}" if inner else problem.phrase
        return CdsError("LCDS-1010", {"index": index, "reason": reason}, field=f"feedback[{index}]")
    if problem.kind == "too_many":
        return CdsError("LCDS-1414", {"field": problem.path, "limit": problem.context["limit"]}, field=problem.path)
    return numbered_error(problem)
