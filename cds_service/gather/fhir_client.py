"""The HTTP edge toward the EHR's FHIR server: guarded GETs with timeouts and paging.

Role in the data flow: used by `gather.prefetch` for the prefetch keys the client did not send.
Security rules (issue "Security", CDS Hooks 2.0 "FHIR Resource Access"):
- the bearer token of `fhirAuthorization` goes only to the `fhirServer` origin: redirects are
  not followed automatically, a redirect or a Bundle `next` link to another origin is refused;
- `fhirServer` must be https unless its host is in FHIR_PLAIN_HTTP_HOSTS (default: loopback);
- when FHIR_ALLOWED_ORIGINS is set, only those origins are called (SSRF guard).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import urljoin

import orjson
import requests

from cds_service.security.outbound import origin_of

FHIR_JSON = "application/fhir+json"
MAX_REDIRECTS = 3


class FhirFetchError(Exception):
    """A fetch that failed. `reason` is short and carries no PHI, URL query or token."""

    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass
class FetchResult:
    body: dict
    pages: int
    truncated: bool  # the page cap stopped us before the last `next` link


class FhirClient:
    """GETs relative to one FHIR base URL, with one bearer token, on a per-thread Session."""

    _local = threading.local()

    def __init__(
        self,
        base_url: str,
        access_token: str | None,
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        max_pages: int = 10,
    ):
        self.base_url = base_url.rstrip("/") + "/"
        self.origin = origin_of(self.base_url)
        self._token = access_token
        self.timeout = (connect_timeout, read_timeout)
        self.max_pages = max(1, max_pages)

    @classmethod
    def _session(cls) -> requests.Session:
        session = getattr(cls._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # never route the EHR token through an env-configured proxy
            cls._local.session = session
        return session

    def _get_json(self, url: str) -> dict:
        headers = {"Accept": FHIR_JSON}
        for _ in range(MAX_REDIRECTS + 1):
            if origin_of(url) != self.origin:
                # The token is bound to fhirServer: never send it (or anything) elsewhere.
                raise FhirFetchError("refused a URL on another origin than fhirServer")
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            try:
                response = self._session().get(
                    url, headers=headers, timeout=self.timeout, allow_redirects=False
                )
            except requests.Timeout:
                raise FhirFetchError("timed out") from None
            except requests.ConnectionError:
                raise FhirFetchError("could not connect") from None
            except requests.RequestException:
                raise FhirFetchError("request failed") from None
            if response.is_redirect:
                location = response.headers.get("Location", "")
                url = urljoin(url, location)
                continue
            if response.status_code != 200:
                raise FhirFetchError(f"HTTP {response.status_code}", response.status_code)
            try:
                body = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                raise FhirFetchError("answer is not JSON") from None
            if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
                raise FhirFetchError("answer is not a FHIR resource")
            if body["resourceType"] == "OperationOutcome":
                raise FhirFetchError("answered with an OperationOutcome")
            return body
        raise FhirFetchError("too many redirects")

    def read(self, relative: str) -> FetchResult:
        """GET `relative` (e.g. 'Condition?patient=1'); a searchset is followed through `next`."""
        body = self._get_json(urljoin(self.base_url, relative))
        if body.get("resourceType") != "Bundle":
            return FetchResult(body, 1, False)
        entries = list(body.get("entry") or [])
        pages = 1
        next_url = _next_link(body)
        while next_url and pages < self.max_pages:
            page = self._get_json(urljoin(self.base_url, next_url))
            pages += 1
            if page.get("resourceType") != "Bundle":
                raise FhirFetchError("a next page is not a Bundle")
            entries.extend(page.get("entry") or [])
            next_url = _next_link(page)
        merged = {k: v for k, v in body.items() if k not in ("entry", "link")}
        merged["entry"] = entries
        merged["total"] = len(entries) if "total" not in body else body["total"]
        return FetchResult(merged, pages, truncated=bool(next_url))


def _next_link(bundle: dict) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None
