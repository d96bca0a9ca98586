"""The HTTP edge toward the EHR's FHIR server: guarded GETs with a deadline, caps and paging.

Role in the data flow: used by `gather.prefetch` for the prefetch keys the client did not send.
Security rules (issue "Security", CDS Hooks 2.0 "FHIR Resource Access"):
- the bearer token of `fhirAuthorization` goes only to the `fhirServer` origin: redirects are
  not followed automatically, a redirect or a Bundle `next` link to another origin is refused;
- `fhirServer` must be https unless its host is in FHIR_PLAIN_HTTP_HOSTS (default: loopback);
- when FHIR_ALLOWED_ORIGINS is set, only those origins are called (SSRF guard).
Bounds (clinical-specification.md §8): every request's timeouts are cut to what is left of the
call's gathering deadline; an answer is read in chunks and refused past `max_bytes` (counted
after decompression, so a gzip bomb stops early); pages stop at `max_pages` or `max_entries`.
What stopped a read is kept (`FetchResult.stopped`), so the data counts as incomplete.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin

import orjson
import requests

from cds_service.security.outbound import origin_of

FHIR_JSON = "application/fhir+json"
MAX_REDIRECTS = 3


class FhirFetchError(Exception):
    """A fetch that failed. `reason` is short and carries no PHI, URL query or token; `kind` is
    what the completeness model records: refused (HTTP 400/403/404/405), error, unreadable, budget."""

    def __init__(self, reason: str, status: int | None = None, kind: str = "error"):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.kind = kind


REFUSED_STATUSES = frozenset({400, 403, 404, 405, 422})


@dataclass
class FetchResult:
    body: dict
    pages: int
    stopped: str | None = None  # page-cap | entry-cap | budget: the last `next` was not followed
    requests: int = 0

    @property
    def truncated(self) -> bool:
        return self.stopped is not None


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
        max_pages: int = 50,
        max_bytes: int = 20_000_000,
        max_entries: int = 50_000,
        deadline: float | None = None,  # time.monotonic() value
    ):
        self.base_url = base_url.rstrip("/") + "/"
        self.origin = origin_of(self.base_url)
        self._token = access_token
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.max_pages = max(1, max_pages)
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.deadline = deadline
        self.requests = 0

    @classmethod
    def _session(cls) -> requests.Session:
        session = getattr(cls._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # never route the EHR token through an env-configured proxy
            cls._local.session = session
        return session

    def _timeout(self) -> tuple[float, float]:
        if self.deadline is None:
            return (self.connect_timeout, self.read_timeout)
        left = self.deadline - time.monotonic()
        if left <= 0.01:
            raise FhirFetchError("the gathering budget ran out", kind="budget")
        return (min(self.connect_timeout, left), min(self.read_timeout, left))

    def _same_origin(self, url: str) -> bool:
        try:
            return origin_of(url) == self.origin
        except ValueError:  # e.g. a port out of range in a next link
            raise FhirFetchError("a link is not a valid URL", kind="unreadable") from None

    def _content(self, response: requests.Response) -> bytes:
        """The body, decompressed, refused past max_bytes. A watchdog shuts the socket at the
        deadline, so an EHR trickling one byte at a time cannot hold the fetch past it (each read
        would otherwise wait only for the next byte)."""
        watchdog = None
        if self.deadline is not None:
            watchdog = threading.Timer(max(0.0, self.deadline - time.monotonic()), _shut, (response,))
            watchdog.daemon = True
            watchdog.start()
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(chunk_size=65536):
                size += len(chunk)
                if size > self.max_bytes:
                    raise FhirFetchError("the answer is larger than FHIR_MAX_BYTES_PER_KEY", kind="unreadable")
                chunks.append(chunk)
        except FhirFetchError:
            raise
        except Exception:  # the watchdog's shutdown, a reset, a broken gzip stream
            if self._spent():
                raise FhirFetchError("the gathering budget ran out", kind="budget") from None
            raise FhirFetchError("the answer was cut off or not decodable", kind="unreadable") from None
        finally:
            if watchdog is not None:
                watchdog.cancel()
        if self._spent():
            raise FhirFetchError("the gathering budget ran out", kind="budget")
        return b"".join(chunks)

    def get_bytes(self, url: str, accept: str = FHIR_JSON) -> tuple[bytes, str | None]:
        """A guarded GET: the fhirServer origin only (redirects followed by hand, never to another
        origin), the bearer token, the call's deadline and the byte cap. Returns the body and its
        Content-Type; any failure is a FhirFetchError."""
        headers = {"Accept": accept}
        for _ in range(MAX_REDIRECTS + 1):
            if not self._same_origin(url):
                # The token is bound to fhirServer: never send it (or anything) elsewhere.
                raise FhirFetchError("refused a URL on another origin than fhirServer", kind="refused")
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            timeout = self._timeout()
            self.requests += 1
            try:
                with self._session().get(url, headers=headers, timeout=timeout, allow_redirects=False,
                                         stream=True) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers.get("Location", ""))
                        continue
                    if response.status_code != 200:
                        kind = "refused" if response.status_code in REFUSED_STATUSES else "error"
                        raise FhirFetchError(f"HTTP {response.status_code}", response.status_code, kind)
                    return self._content(response), response.headers.get("Content-Type")
            except requests.Timeout:
                raise FhirFetchError("timed out", kind="budget" if self._spent() else "error") from None
            except requests.ConnectionError:
                raise FhirFetchError("could not connect") from None
            except requests.RequestException:
                raise FhirFetchError("request failed") from None
            except ValueError:  # a redirect Location that is no URL
                raise FhirFetchError("a link is not a valid URL", kind="unreadable") from None
        raise FhirFetchError("too many redirects")

    def get_json(self, url: str) -> dict:
        content, _ = self.get_bytes(url)
        try:
            body = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise FhirFetchError("answer is not JSON", kind="unreadable") from None
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise FhirFetchError("answer is not a FHIR resource", kind="unreadable")
        if body["resourceType"] == "OperationOutcome":
            raise FhirFetchError("answered with an OperationOutcome", kind="refused")
        return body

    def _spent(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline - 0.05

    def read(self, relative: str) -> FetchResult:
        """GET `relative` (e.g. 'Condition?patient=1'); a searchset is followed through `next`."""
        body = self.get_json(urljoin(self.base_url, relative))
        if body.get("resourceType") != "Bundle":
            return FetchResult(body, 1, requests=self.requests)
        return self.follow(body)

    def follow(self, first: dict) -> FetchResult:
        """A Bundle's first page (fetched, or a prefetch sent as one page) read through `next`
        on the fhirServer origin, until the last page, the page cap, the entry cap or the deadline."""
        entries = list(_entries(first))
        pages, stopped = 1, None
        next_url = next_link(first)
        while next_url:
            if pages >= self.max_pages:
                stopped = "page-cap"
                break
            if len(entries) >= self.max_entries:
                stopped = "entry-cap"
                break
            try:
                page = self.get_json(urljoin(self.base_url, next_url))
            except FhirFetchError as error:
                if error.kind == "budget":
                    stopped = "budget"
                    break
                raise
            pages += 1
            if page.get("resourceType") != "Bundle":
                raise FhirFetchError("a next page is not a Bundle", kind="unreadable")
            entries.extend(_entries(page))
            next_url = next_link(page)
        merged = {k: v for k, v in first.items() if k not in ("entry", "link")}
        merged["entry"] = entries
        return FetchResult(merged, pages, stopped, self.requests)


def _entries(bundle: dict) -> list:
    entries = bundle.get("entry")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise FhirFetchError("a Bundle's entry is not a list", kind="unreadable")
    return entries


def next_link(bundle: dict) -> str | None:
    links = bundle.get("link")
    if links is None:
        return None
    if not isinstance(links, list):
        raise FhirFetchError("a Bundle's link is not a list", kind="unreadable")
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


def _shut(response: requests.Response) -> None:
    """Shut the answer's socket (from the watchdog thread): a blocked read returns at once."""
    for path in (("_connection", "sock"), ("_fp", "fp", "raw", "_sock")):
        target = response.raw
        try:
            for name in path:
                target = getattr(target, name)
            target.shutdown(socket.SHUT_RDWR)
            return
        except (AttributeError, OSError):
            continue
