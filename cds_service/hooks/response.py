"""The CDS Hooks 2.0 response as models: cards, suggestions, actions, links, system actions.

Role in the data flow: the contract `render` answers in (CDS Hooks 2.0 "CDS Service Response",
"Card Attributes", "Suggestion", "Action", "Link", "System Action"; clinical-specification.md §7
and §7.6). `CdsResponse.model_validate(body)` checks a rendered body; the tests run it on every
card of every scenario. Besides the specification's own rules it holds this service's promises
to strict clients and the sandbox: a value is left out, never null or empty; every card and
suggestion has a uuid, unique in the response; an update names the resource it updates.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from cds_service.hooks.validation import ContractModel, invalid

# CDS Hooks 2.0: a "<140-character" summary; read here, as in clinical-specification.md §7, as
# at most 140 characters.
SUMMARY_MAX = 140


def _text(value: str) -> str:
    if not value.strip():
        raise invalid("must not be empty")
    return value


def _uuid(value: str) -> str:
    try:
        uuid.UUID(value)
    except ValueError:
        raise invalid("must be a uuid") from None
    return value


def _absolute_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid("must be an absolute http(s) URL")
    return value


def _summary(value: str) -> str:
    if len(value) > SUMMARY_MAX:
        raise invalid(f"must be at most {SUMMARY_MAX} characters, not {len(value)}")
    return value


Text = Annotated[str, AfterValidator(_text)]
Uuid = Annotated[str, AfterValidator(_uuid)]
AbsoluteUrl = Annotated[str, AfterValidator(_absolute_url)]
Summary = Annotated[str, AfterValidator(_text), AfterValidator(_summary)]
Resource = Annotated[dict[str, Any], Field(min_length=1)]


class ResponseModel(ContractModel):
    """A part of the response: no field the specification does not name, no null value."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                if value is None:
                    raise invalid("must be left out rather than null", subpath=f".{key}")
        return data


class Coding(ResponseModel):
    expected: ClassVar[str] = "Coding object"

    system: Text
    code: Text
    display: Text | None = None


class OverrideReasonCoding(Coding):
    """CDS Hooks 2.0: a Coding offered as an override reason must carry its display."""

    display: Text


class Source(ResponseModel):
    label: Text
    url: AbsoluteUrl | None = None
    icon: AbsoluteUrl | None = None
    topic: Coding | None = None


class Link(ResponseModel):
    label: Text
    url: AbsoluteUrl
    type: Literal["absolute", "smart"]
    appContext: Text | None = None

    @model_validator(mode="after")
    def _app_context_for_smart(self) -> Link:
        if self.appContext is not None and self.type != "smart":
            raise invalid("is only allowed on a 'smart' link", subpath=".appContext")
        return self


class Action(ResponseModel):
    """create and update carry the FHIR resource (update: with the id it updates); delete names
    the resources as relative references ("ServiceRequest/1")."""

    type: Literal["create", "update", "delete"]
    description: Text
    resource: Resource | None = None
    resourceId: Text | Annotated[list[Text], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _what_it_acts_on(self) -> Action:
        if self.type in ("create", "update"):
            if self.resource is None or not isinstance(self.resource.get("resourceType"), str):
                raise invalid(f"a {self.type} action needs a FHIR resource with resourceType", subpath=".resource")
            if self.type == "update" and not self.resource.get("id"):
                raise invalid("an update needs the id of the resource it updates", subpath=".resource.id")
        if self.type == "delete":
            ids = [self.resourceId] if isinstance(self.resourceId, str) else self.resourceId or []
            if not ids or not all("/" in reference for reference in ids):
                raise invalid("a delete action needs relative references like 'ServiceRequest/1'",
                              subpath=".resourceId")
        return self


class Suggestion(ResponseModel):
    label: Text
    uuid: Uuid
    isRecommended: bool | None = None
    actions: Annotated[list[Action], Field(min_length=1)]


class Card(ResponseModel):
    uuid: Uuid
    summary: Summary
    detail: Text | None = None
    indicator: Literal["info", "warning", "critical"]
    source: Source
    suggestions: Annotated[list[Suggestion], Field(min_length=1)] | None = None
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: Annotated[list[OverrideReasonCoding], Field(min_length=1)] | None = None
    links: Annotated[list[Link], Field(min_length=1)] | None = None
    extension: Resource | None = None

    @model_validator(mode="after")
    def _selection_behavior_with_suggestions(self) -> Card:
        if self.suggestions and self.selectionBehavior is None:
            raise invalid("is required when the card has suggestions", subpath=".selectionBehavior")
        return self


class ResponseExtension(ResponseModel):
    """The response's `extension`: free, but for the system actions the sandbox reads there."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    systemActions: Annotated[list[Action], Field(min_length=1)] | None = None


class CdsResponse(ResponseModel):
    """The body of a hook call's answer. `cards` is required, even when empty; the system
    actions also sit in `extension.systemActions`, where the sandbox reads them (§7.6)."""

    cards: list[Card]
    systemActions: Annotated[list[Action], Field(min_length=1)] | None = None
    extension: ResponseExtension | None = None

    @model_validator(mode="after")
    def _uuids_unique(self) -> CdsResponse:
        seen: set[str] = set()
        for index, card in enumerate(self.cards):
            uuids = [(card.uuid, f"cards[{index}].uuid")]
            uuids += [(s.uuid, f"cards[{index}].suggestions[{n}].uuid") for n, s in enumerate(card.suggestions or ())]
            for value, where in uuids:
                if value in seen:
                    raise invalid(f"uuid {value} is used twice", subpath=where)
                seen.add(value)
        return self
