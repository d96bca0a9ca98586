"""The service entry point: one CDS Hooks call, from its parsed JSON body to the answer.

Role in the data flow: the one way into the pipeline. The Flask view (`web.api`), the
`lumbar-cds evaluate` command and the tests all call a `CdsService`:

    read_request: service id -> Bundle sizes -> the contract (hooks.envelope)  -> HookRequest
    answer:       judged-order cap, fhirServer rules -> gather -> evaluate (pipeline) -> record

`call(service_id, body)` does both. The HTTP edge (JSON parsing, body size and depth limits,
authentication) stays in `web`; every refusal here is a `CdsError`. A `CdsService` is built once
per process (`CdsService.start(settings)`): value sets, card templates and the governance
recorder are ready before the first call, and one synthetic call per service (`warmup`, not
recorded) has built whatever a first call would build lazily.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from cds_service import metrics
from cds_service.gather.prefetch import GatheredData, gather
from cds_service.governance.store import create_recorder
from cds_service.hooks.envelope import HookRequest, parse_hook_request
from cds_service.hooks.errors import CdsError
from cds_service.hooks.registry import ServiceDefinition, ServiceRegistry
from cds_service.logs import get_logger, log_event
from cds_service.pipeline import Evaluator
from cds_service.render.result import EvaluationResult
from cds_service.security.outbound import check_fhir_server
from cds_service.warmup import warm_up
from cds_service.web.limits import check_bundle_sizes, check_judged_orders

log = get_logger("service")


@dataclass
class Answer:
    """What one call gave: the response body for the client (empty cards in silent mode), the
    judgements recorded, and how the data was gathered."""

    request: HookRequest
    response: dict
    result: EvaluationResult
    gathered: GatheredData
    gather_ms: float


class CdsService:
    """The CDS services of this deployment, ready to answer calls."""

    def __init__(self, settings: dict, evaluator: Evaluator, recorder):
        self.settings = settings
        self.evaluator = evaluator
        # Discovery announces the prefetch templates narrowed from the value sets (queries.py).
        self.registry = ServiceRegistry(prefetch=evaluator.query_plan.templates())
        self.recorder = recorder  # governance.store: record(request, result, now), flush(), close()
        self.screen = None  # the red-flag screen (governance.screen.init_screen sets it when enabled)

    @classmethod
    def start(cls, settings: dict) -> CdsService:
        """Built from resolved settings (config.load_settings): the pathway, then the recorder,
        then warmed by one synthetic call per service (nothing recorded)."""
        service = cls(settings, Evaluator(settings), create_recorder(settings))
        try:
            log_event(log, "worker warmed", ms=warm_up(service))
        except Exception as error:  # noqa: BLE001 - a warm-up that fails must not stop the worker
            log_event(log, "worker warm-up failed; the first call will be slower", 30, exception=type(error).__name__)
        return service

    def close(self) -> None:
        """Write the queued judgements: nothing accepted is lost."""
        self.recorder.close()

    def definition(self, service_id: str) -> ServiceDefinition:
        service = self.registry.get(service_id)
        if service is None:
            raise CdsError("LCDS-1404", {"service": service_id[:64]})
        return service

    def read_request(self, service_id: str, body: dict) -> HookRequest:
        """The call's body (a parsed JSON object) checked against the service's contract."""
        service = self.definition(service_id)
        check_bundle_sizes(body, self.settings["MAX_BUNDLE_ENTRIES"])
        return parse_hook_request(body, service)

    def answer(self, request: HookRequest, now: datetime | None = None, url_root: str = "") -> Answer:
        """Gather, evaluate and record one validated call. `now` (aware UTC) is the call's one
        clock: the date floors of the FHIR searches and the reference date agree. `url_root` is
        the service's own address, for the red-flag screen's link (none without it)."""
        self._admit(request)
        now = now or datetime.now(UTC)
        started = time.perf_counter()
        gathered = gather(request, self.definition(request.service_id), self.settings,
                          self.evaluator.query_plan, now.date())
        gather_ms = round((time.perf_counter() - started) * 1000, 2)
        if gathered.fetched or gathered.incomplete:
            log_event(
                log, "prefetch gathered", service=request.service_id, hookInstance=request.hook_instance,
                fetched=sorted(gathered.fetched), requests=gathered.requests,
                incomplete={key: kind for key, kind in sorted(gathered.incomplete.items())},
                unavailable_reasons=sorted(set(gathered.unavailable.values())), ms=gather_ms,
            )
        # The red-flag screen (clinical-specification.md §12): the patient's attested answers in,
        # the screen's link out (None when CDS_SCREEN_ENABLED is false or nothing is recorded).
        screen = self.screen
        attested = screen.attested_for(request, now) if screen else None
        result = self.evaluator.evaluate(request, gathered, now, attested)
        if screen and url_root:
            screen.after_call(request, result, now, url_root)
        self.recorder.record(request, result, now)
        metrics.judged(result.judgements)
        # Silent mode (pilot a rule before turning it on): decided and recorded, nothing shown.
        response = {"cards": []} if self.settings["MODE"] == "silent" else result.response
        return Answer(request, response, result, gathered, gather_ms)

    def call(self, service_id: str, body: dict, now: datetime | None = None) -> Answer:
        return self.answer(self.read_request(service_id, body), now)

    def _admit(self, request: HookRequest) -> None:
        """Refuse, before any work, more orders than one call may have judged and a fhirServer
        the deployment does not allow (security.outbound)."""
        settings = self.settings
        check_judged_orders(request.hook, request.selections, request.draft_orders,
                            int(settings.get("MAX_JUDGED_ORDERS", 50)))
        if request.fhir_server:
            why = check_fhir_server(request.fhir_server, settings["FHIR_PLAIN_HTTP_HOSTS"],
                                    settings["FHIR_ALLOWED_ORIGINS"])
            if why:
                raise CdsError("LCDS-1009", {"field": "fhirServer", "reason": why}, field="fhirServer")

    def with_planned_keys(self, request: dict) -> dict:
        """`request` with the prefetch a client running every discovery template would send."""
        return with_planned_keys(request, self.evaluator.query_plan.templates())


def with_planned_keys(request: dict, templates: dict[str, str]) -> dict:
    """A request whose prefetch lists each resource type's searchset once (e.g. every Observation
    under `observations`, as the scenario files do), completed in place: the narrowed keys of the
    same type (`observationFindings`, ...) get the same searchset, as their searches return
    subsets of it and the service filters by the value sets in memory either way."""
    prefetch = request.get("prefetch")
    if not isinstance(prefetch, dict):
        return request
    by_type: dict[str, list[str]] = {}
    for key, template in templates.items():
        by_type.setdefault(template.split("?")[0].split("/")[0], []).append(key)
    for keys in by_type.values():
        given = next((prefetch[k] for k in keys if k in prefetch), None)
        if given is not None:
            for key in keys:
                prefetch.setdefault(key, copy.deepcopy(given))
    return request
