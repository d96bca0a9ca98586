"""The CDS Hooks 2.0 request as models: the "HTTP Request" fields and the context of each hook.

Role in the data flow: the contract `hooks.envelope` validates a hook call against, before
anything else reads it. One model per hook this service answers (`REQUEST_MODELS`):
`order-select` and `order-sign` share their context but for `selections`. The rules are the
specification's, tolerant where the CDS Hooks sandbox is (clinical-specification.md §7.6): empty
codings, a draftOrders Bundle without `type`, no `encounterId`. Fields are declared in the order
they are checked: the first problem is the one the client hears of.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from pydantic import Field, ValidationInfo, field_validator, model_validator

from cds_service.hooks.validation import (
    NUL_REASON,
    ContractModel,
    Identifier,
    StoredText,
    broken,
    invalid,
)

# Clearer names of the expected type at these paths, for "Field 'x' has the wrong type".
EXPECTED_AT = {"fhirServer": "string (URL)", "context.selections": "array of strings"}


class FhirAuthorization(ContractModel):
    """CDS Hooks 2.0 "fhirAuthorization": every field is required when the object is sent."""

    access_token: str
    token_type: str
    expires_in: int
    scope: str
    subject: str

    @model_validator(mode="after")
    def _bearer(self) -> FhirAuthorization:
        # Checked once every field is there: a missing field is named before a wrong token type.
        if self.token_type.lower() != "bearer":
            raise invalid("must be 'Bearer'", subpath=".token_type")
        return self


class BundleEntry(ContractModel):
    resource: Any = None

    @field_validator("resource")
    @classmethod
    def _a_resource(cls, value: Any) -> Any:
        if value is not None and not (isinstance(value, dict) and isinstance(value.get("resourceType"), str)):
            raise invalid("must be a FHIR resource with resourceType")
        return value


class DraftOrders(ContractModel):
    """context.draftOrders: a Bundle of the orders being chosen or signed. The sandbox omits
    `type`, so it is not required; every string in it is one the store may keep (no NUL)."""

    expected: ClassVar[str] = "object (Bundle)"

    resourceType: Any = Field(default=None, validate_default=True)
    entry: list[BundleEntry] | None = None

    @field_validator("resourceType")
    @classmethod
    def _a_bundle(cls, value: Any) -> str:
        if value != "Bundle":
            raise invalid("must be 'Bundle'")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _no_nul_anywhere(cls, data: Any, handler) -> DraftOrders:
        bundle = handler(data)
        # Order ids and codes are stored too. orjson writes NUL as the escape \u0000: one
        # C-speed scan; the walk that finds where runs only on a hit.
        if b"\\u0000" in orjson.dumps(data):
            where = nul_path(data)
            if where is not None:
                raise invalid(NUL_REASON, subpath=where)
        return bundle


def nul_path(value: Any, path: str = "") -> str | None:
    """The path (below `path`) of the first string, key or value, holding NUL in `value`."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return where
        elif isinstance(node, dict):
            for key, child in node.items():
                if "\x00" in key:
                    return where
                stack.append((child, f"{where}.{key}"))
        elif isinstance(node, list):
            stack.extend((child, f"{where}[{index}]") for index, child in enumerate(node))
    return None


class OrderSignContext(ContractModel):
    """The order-sign context (CDS Hooks "order-sign" 1.0): every draft order is judged."""

    userId: Identifier
    patientId: Identifier
    encounterId: StoredText | None = None
    draftOrders: DraftOrders


class OrderSelectContext(OrderSignContext):
    """The order-select context: the draft orders, and which of them were just selected."""

    selections: list[StoredText]


class HookRequestBody(ContractModel):
    """The fields of a CDS Hooks 2.0 call every hook shares; `hook` must be the model's `HOOK`."""

    HOOK: ClassVar[str] = ""

    hook: str
    hookInstance: Identifier
    fhirServer: StoredText | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: OrderSignContext
    prefetch: dict[str, Any] | None = None

    @field_validator("hook")
    @classmethod
    def _this_hook(cls, value: str) -> str:
        if value != cls.HOOK:
            raise broken("hook_mismatch", value=value[:64], expected=cls.HOOK)
        return value

    @field_validator("fhirAuthorization", mode="before")
    @classmethod
    def _with_a_server(cls, value: Any, info: ValidationInfo) -> Any:
        # A token needs the server it is for; said before the object's own fields are checked.
        if isinstance(value, dict) and not info.data.get("fhirServer"):
            raise broken("authorization_without_server")
        return value


class OrderSelectRequest(HookRequestBody):
    HOOK: ClassVar[str] = "order-select"
    context: OrderSelectContext


class OrderSignRequest(HookRequestBody):
    HOOK: ClassVar[str] = "order-sign"


REQUEST_MODELS: dict[str, type[HookRequestBody]] = {
    model.HOOK: model for model in (OrderSelectRequest, OrderSignRequest)
}
