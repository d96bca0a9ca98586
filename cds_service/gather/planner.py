"""The query plan: which FHIR searches fill each prefetch key, narrowed to what the pathway reads.

Role in the data flow: built once at start-up (from the value sets, by `cds_service.queries`),
used by discovery (the prefetch templates) and by `gather.prefetch` (the service's own queries).
Real EHR FHIR APIs have their own search rules (clinical-specification.md §8.4):
- Epic refuses an Observation search without `code` or `category`: Observations are asked for
  by code, the code lists taken from the value sets and split over several queries (at most
  `MAX_CODES_PER_QUERY` codes and `MAX_URL_CHARS` characters per URL, as cqf-ruler does);
- Oracle Health has no `code` search on Condition or Procedure: those are asked for whole;
- CDS Hooks 2.0 templates have no relative dates: the service's own queries add
  `<date param>=ge<reference date - window>` and `_count` (a hint only), never `_sort`.
A server that answers 400 to a narrowed search is asked again with fewer parameters
(`SearchQuery.fallbacks`) before the key counts as incomplete. What a server returns is still
filtered in memory by the value sets: narrowing is an optimisation that never decides a fact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from urllib.parse import quote

PATIENT_TOKEN = "{{context.patientId}}"
MAX_CODES_PER_QUERY = 64
MAX_URL_CHARS = 2000
COUNT_HINT = 200


@dataclass(frozen=True)
class SearchQuery:
    """One search: `<resource_type>?patient=<id>&<params>`, plus a date floor on the service's own."""

    resource_type: str
    params: tuple[tuple[str, str], ...] = ()
    date_param: str | None = None
    window_days: int | None = None  # the date floor's look-back; None: no floor
    # Parameter names dropped, step by step, when the server refuses the search (HTTP 400).
    fallbacks: tuple[tuple[str, ...], ...] = (("date", "_count"),)

    def _pairs(self, dropped: frozenset[str], reference: date | None, count: int | None) -> list[tuple[str, str]]:
        pairs = [(k, v) for k, v in self.params if k not in dropped]
        if self.date_param and self.window_days is not None and reference and "date" not in dropped:
            try:
                pairs.append((self.date_param, "ge" + (reference - timedelta(days=self.window_days)).isoformat()))
            except OverflowError:  # a floor before year 1: no floor
                pass
        if count and "_count" not in dropped:
            pairs.append(("_count", str(count)))
        return pairs

    def template(self) -> str:
        """The CDS Hooks prefetch template (discovery): no relative date, no _count."""
        rest = "".join(f"&{k}={quote(v, safe='|,:/.-')}" for k, v in self.params)
        return f"{self.resource_type}?patient={PATIENT_TOKEN}{rest}"

    def url(self, patient_id: str, reference: date | None, step: int = 0, count: int | None = COUNT_HINT) -> str:
        """The service's own query, relative to fhirServer; `step` > 0 is a fallback step."""
        dropped: set[str] = set()
        for names in self.fallbacks[:step]:
            dropped.update(names)
        pairs = self._pairs(frozenset(dropped), reference, count)
        rest = "".join(f"&{k}={quote(v, safe='|,:/.-')}" for k, v in pairs)
        return f"{self.resource_type}?patient={quote(patient_id, safe='')}{rest}"

    @property
    def steps(self) -> int:
        return len(self.fallbacks) + 1


@dataclass(frozen=True)
class KeyPlan:
    """A prefetch key: its discovery template and the searches the service runs itself."""

    key: str
    template: str
    resource_type: str
    queries: tuple[SearchQuery, ...] = ()  # empty: a read (`Patient/<id>`), not a search
    required: bool = False


@dataclass
class QueryPlan:
    keys: dict[str, KeyPlan] = field(default_factory=dict)

    def add(self, plan: KeyPlan) -> None:
        self.keys[plan.key] = plan

    def templates(self) -> dict[str, str]:
        return {key: plan.template for key, plan in self.keys.items()}


def chunk_codes(resource_type: str, codes: list[str], *, max_codes: int = MAX_CODES_PER_QUERY,
                max_chars: int = MAX_URL_CHARS) -> list[str]:
    """`system|code` values joined with commas, split so that no query has more than
    `max_codes` codes or a URL longer than `max_chars` (room left for the base, patient id,
    date floor and _count)."""
    room = max_chars - len(resource_type) - 160
    chunks: list[list[str]] = [[]]
    length = 0
    for code in sorted(set(codes)):
        size = len(quote(code, safe="|,:/.-")) + 1
        if chunks[-1] and (len(chunks[-1]) >= max_codes or length + size > room):
            chunks.append([])
            length = 0
        chunks[-1].append(code)
        length += size
    return [",".join(chunk) for chunk in chunks if chunk]


def coded_keys(key: str, resource_type: str, codes: list[str], *, date_param: str | None,
               window_days: int | None) -> list[KeyPlan]:
    """One key per chunk of codes: `key`, `key2`, `key3`... On a refusal the date floor is
    dropped first, then the codes (a server without code search answers the patient's whole list)."""
    plans = []
    for number, joined in enumerate(chunk_codes(resource_type, codes), start=1):
        query = SearchQuery(resource_type, (("code", joined),), date_param, window_days,
                            (("date", "_count"), ("code",)))
        name = key if number == 1 else f"{key}{number}"
        plans.append(KeyPlan(name, query.template(), resource_type, (query,)))
    return plans
