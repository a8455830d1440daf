"""Dynamics GP client: the Service Based Architecture (SBA) REST service as pages of raw rows.

``GpClient`` talks to ``https://host:port/GPService/Tenants(T)/Companies(C)/<resource>`` with
Windows authentication (``requests_ntlm.HttpNtlmAuth``) on one keep-alive ``requests.Session``:
NTLM authenticates a *connection*, so the three-leg handshake and the requests after it must
share one socket. The first 401 is the normal
challenge; only a 401 or 403 *after* the final leg means the credentials or access are wrong.

What real SBA responses look like is not publicly known, so the client is tolerant:

* envelope: ``{"Payload": ...}`` or bare JSON;
* list shape: a JSON array, or an object holding the array (``Items``, ``value``, ...);
* next page: a ``NextLink`` / ``@odata.nextLink`` property, a ``Links`` list or mapping with a
  ``next`` relation, or an HTTP ``Link: <...>; rel="next"`` header; no link means one page.
  Links must stay on the same server, and a link seen twice stops the read (loop detection);
* filtering: none is asked of the server. Rows are filtered here on ``ModifiedDate`` (closed
  ``since``, open ``until``); the pipeline filters again.

Nested JSON becomes flat rows (column -> value) as described in ``entities.py``; amounts are
parsed as ``Decimal`` straight from the JSON text. Rows that cannot be used (not an object, no
usable ``ModifiedDate``) go into ``Page.problems``.

Errors (``erp_slack.errors``): a final 401, or a 403 refusing the company → ``SourceAuthFailed``
(audited ``auth_failed``); a 403 refusing one resource → ``SourceAccessDenied`` (audited
``access_denied``), which fails that entity only; no connection → ``SourceUnreachable``;
5xx, 429, timeouts, dropped connections, an HTML page with 200 and malformed JSON →
``SourceUnavailable`` after a small bounded retry (``sources/http.py``); other 4xx and redirects →
``SourceRefused``; an untrusted TLS certificate → ``SourceCertificateUntrusted`` naming the CA
bundle setting (verification is never switched off by
default); a 404 on an optional resource (GL, receipts) raises ``EntityNotOffered`` after a
``skipped`` audit event. Passwords never reach messages, audit details or ``repr``. The client
never reads or writes watermarks.
"""

from __future__ import annotations

import binascii
import json
import os
import re
import time
from collections.abc import Mapping as _AbcMapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Iterator, Mapping, Sequence
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import requests
from requests_ntlm import HttpNtlmAuth
from spnego.exceptions import SpnegoError

from erp_slack.errors import (
    ConfigError,
    EntityNotOffered,
    SourceAccessDenied,
    SourceAuthFailed,
    SourceCertificateUntrusted,
    SourceError,
    SourceRefused,
    SourceUnavailable,
    SourceUnreachable,
)
from erp_slack.model import CursorValue, Entity, Page, parse_cursor
from erp_slack.sources.base import AuditHook, no_audit
from erp_slack.sources.gp.entities import GpOptions
from erp_slack.sources.http import LinkGuard, RetryPolicy, retrying, safe_url

__all__ = ["GpClient", "flatten", "document_rows"]

SOURCE = "gp"
# Keys under which a list may sit inside an object body (the list shape is unknown).
_COLLECTION_KEYS = ("items", "value", "results", "records", "data")
_NEXT_KEYS = ("nextlink", "@odata.nextlink", "odata.nextlink", "@nextlink", "next")
# List items flattened per list field that is not exploded (phone numbers, addresses).
_LIST_ITEMS = 3
# Statuses that mean "try again shortly" (SourceUnavailable). Any other status from 400 up
# refuses the request as it is (SourceRefused); 401, 403 and 404 have meanings of their own.
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class _Forbidden(Exception):
    """HTTP 403 after a successful Windows logon: the company, or one resource, is refused."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(message)
        self.url = url
        self.message = message


class _NotFound(Exception):
    def __init__(self, url: str, message: str) -> None:
        super().__init__(message)
        self.url = url
        self.message = message


def _apply_aliases(aliases: Mapping[str, Sequence[tuple[str, str | None]]], row: dict[str, Any]) -> None:
    """Fill a column the entity reads from another shape of the same fact, where GP's JSON is
    not documented: ``(column, how)`` alternatives, tried in order; ``how`` is None (as is) or
    ``"year"`` (the year of a date)."""
    for column, alternatives in aliases.items():
        if row.get(column) not in (None, ""):
            continue
        for source, how in alternatives:
            value = row.get(source)
            if value in (None, ""):
                continue
            if how == "year":
                text = str(value).strip()
                if not (len(text) >= 4 and text[:4].isdigit()):
                    continue
                value = int(text[:4])
            row[column] = value
            break


def _options(entity: Entity) -> GpOptions:
    return entity.options if isinstance(entity.options, GpOptions) else GpOptions()


def _server_time(resp: requests.Response) -> datetime | None:
    """The server's clock from its HTTP ``Date`` header (aware UTC), if it sent a readable one."""
    try:
        when = parsedate_to_datetime(resp.headers.get("Date", ""))
    except (TypeError, ValueError, IndexError):
        return None
    return when.astimezone(timezone.utc) if when.tzinfo else when.replace(tzinfo=timezone.utc)


# Exact types of JSON leaves (amounts are parsed as Decimal): never a mapping, never a list.
_JSON_SCALARS = frozenset({str, int, float, bool, type(None), Decimal})


def flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a JSON object into dotted columns: ``{"VendorKey": {"Id": "A"}}`` → ``{"VendorKey.Id": "A"}``.

    List items get their index (``PhoneNumbers.0.Value``), at most three per list.
    """
    out: dict[str, Any] = {}

    def walk(value: Any, path: str) -> None:
        # Called about 30 times per GP row: scalars are settled by their exact type first.
        if type(value) in _JSON_SCALARS:
            out[path] = value
        elif isinstance(value, _AbcMapping):
            if not value and path:
                out[path] = None
            for k, v in value.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(value, list):
            for i, v in enumerate(value[:_LIST_ITEMS]):
                walk(v, f"{path}.{i}")
        else:
            out[path] = value

    walk(obj, prefix)
    return out


def _lookup(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(part)
    return obj


def _as_decimal(value: Any) -> Decimal:
    if value is None or value == "":
        return Decimal(0)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a number: {str(value)[:40]!r}") from None


def _utc(value: CursorValue | None) -> CursorValue | None:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)  # naive bounds are UTC, like GP timestamps
    return value


class GpClient:
    """One Dynamics GP company over SBA REST, as the pipeline's ``SourceClient``.

    Args:
        base_url: The GP Service root, ``https://host:port/GPService`` (``/GPService`` is added
            when the URL has no path).
        tenant: Tenant name, ``DefaultTenant`` on single-tenant installs.
        company: Company display name as GP shows it (``Fabrikam, Inc.``); percent-encoded here.
        username: Windows account as ``DOMAIN\\user``.
        password: Its password; kept out of every message.
        verify: True (system CAs), or the path of a CA bundle (PEM) that issued the GP Service
            certificate. False only if a caller insists; never the default.
        timeout: Seconds, or ``(connect, read)``.
        audit: Hook receiving ``logon``, ``auth_failed``, ``retry`` and ``skipped`` events.
        include_unposted: Also return unposted work documents of entities that mark them.
        session: A ``requests.Session`` to use (the client closes only one it made itself).
        retry: Retry policy for transient failures.
        sleep: How to wait between tries (tests pass a recorder).
        clock: Monotonic seconds, for the retry time cap.
        page_rows: Most rows per yielded ``Page`` (a large unpaged reply is split).
    """

    source = SOURCE

    def __init__(
        self,
        base_url: str,
        tenant: str,
        company: str,
        username: str,
        password: str,
        *,
        verify: bool | str = True,
        timeout: float | tuple[float, float] = (5.0, 60.0),
        audit: AuditHook = no_audit,
        include_unposted: bool = False,
        session: requests.Session | None = None,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        page_rows: int = 1000,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("base_url", "must be an http(s) URL such as https://gp.example:443/GPService")
        if isinstance(verify, str) and not os.path.isfile(verify):
            raise ConfigError("verify", f"CA bundle {verify!r} does not exist")
        if not username or ("\\" not in username and "@" not in username):
            raise ConfigError("username", "must be a Windows account as DOMAIN\\user (or user@domain)")
        path = parts.path.rstrip("/") or "/GPService"
        self._root = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        self.tenant = tenant
        self.company = company
        self.username = username
        self.include_unposted = include_unposted
        self._auth = HttpNtlmAuth(username, password)
        self._verify = verify
        self._timeout = timeout
        self._audit_hook = audit
        self._own_session = session is None
        self._session = session if session is not None else requests.Session()
        self._retry = retry
        self._sleep = sleep
        self._clock = clock
        self._page_rows = max(1, int(page_rows))
        self._closed = False
        self._company_readable = False  # set once any resource of the company has been read

    def __repr__(self) -> str:
        return (
            f"GpClient({safe_url(self._root)!r}, tenant={self.tenant!r}, company={self.company!r}, "
            f"user={self.username!r})"
        )

    # --- URLs ------------------------------------------------------------------------------------

    @property
    def company_url(self) -> str:
        """``…/Tenants(T)/Companies(C)`` with both names percent-encoded (``Fabrikam%2C%20Inc.``)."""
        return f"{self._root}/Tenants({quote(self.tenant, safe='')})/Companies({quote(self.company, safe='')})"

    def resource_url(self, resource: str, *key: str) -> str:
        """URL of a resource list, or of one document when ``key`` parts are given (``;``-joined)."""
        url = f"{self.company_url}/{resource.strip('/')}"
        if key:
            url += "(" + ";".join(quote(str(k), safe="") for k in key) + ")"
        return url

    # --- public operations -----------------------------------------------------------------------

    def pages(
        self,
        entity: Entity,
        *,
        since: CursorValue | None,
        until: CursorValue | None = None,
        limit: int | None = None,
    ) -> Iterator[Page]:
        """Rows of ``entity`` with ``ModifiedDate`` in [``since``, ``until``), page by page.

        Pages left empty by client-side filtering are not yielded. A 404 on an ``optional``
        entity yields nothing and audits ``skipped``.
        """
        self._check_open()
        since, until = _utc(since), _utc(until)
        url: str | None = self.resource_url(entity.table)
        links = LinkGuard(url, source=SOURCE, what="GP Service")
        left = limit
        first = True
        while url is not None:
            try:
                payload, resp = self._get(url)
            except _Forbidden as fb:
                raise self._refusal(entity.table, fb) from None
            except _NotFound as nf:
                if first and entity.optional:
                    # GL (and receipts) are outside the documented SBA catalog: a site that does
                    # not expose them is normal. The pipeline keeps the entity in its first-run
                    # state, so if the resource appears later its history is no flood.
                    reason = "resource not exposed by this GP Service"
                    self._audit("skipped", {
                        "entity": entity.name, "url": safe_url(url), "status": 404, "reason": reason,
                    })
                    raise EntityNotOffered(f"GP Service does not offer {entity.table} ({reason})", source=SOURCE,
                                           url=safe_url(url), status=404) from None
                raise SourceRefused(
                    f"GP Service has no {entity.table} for company {self.company!r} (404 at {safe_url(url)}): "
                    f"check the tenant, company name and resource path. {nf.message}".strip(),
                    source=SOURCE, url=safe_url(url), status=404,
                ) from None
            first = False
            self._company_readable = True
            items, link = _listing(payload, resp)
            next_url = self._next_url(url, link, links)
            rows, problems = self._rows(entity, items, since, until)
            if left is not None:
                rows = rows[:left]
                left -= len(rows)
            yield from self._chunk(rows, problems, url, next_url, len(items), _server_time(resp))
            if left is not None and left <= 0:
                return
            url = next_url

    def get(self, resource: str, *key: str) -> Any:
        """One raw document (``Purchasing/Vendors``, ``"ACETRAVE0001"``), envelope removed."""
        self._check_open()
        url = self.resource_url(resource, *key)
        try:
            payload, _ = self._get(url)
        except _Forbidden as fb:
            raise self._refusal(resource, fb) from None
        except _NotFound as nf:
            raise SourceRefused(
                f"not found: {safe_url(url)} {nf.message}".strip(), source=SOURCE, url=safe_url(url), status=404
            ) from None
        return _unwrap(payload)[0]

    def currency_codes(self) -> dict[str, str]:
        """Currency id -> ISO 4217 code from GP's currency setup (``Administration/Currencies``),
        for each currency whose setup names one; empty when this GP Service does not offer it
        to this account (the configuration's ``currency_codes`` then apply)."""
        self._check_open()
        url = self.resource_url("Administration/Currencies")
        codes: dict[str, str] = {}
        links = LinkGuard(url, source=SOURCE, what="GP Service")
        next_url: str | None = url
        while next_url is not None:
            try:
                payload, resp = self._get(next_url)
            except (_Forbidden, _NotFound):
                self._audit("skipped", {"entity": "currencies", "url": safe_url(next_url),
                                        "reason": "currency setup not readable; the configuration's codes apply"})
                return codes
            items, link = _listing(payload, resp)
            codes.update(iso_codes(items))
            next_url = self._next_url(next_url, link, links)
        return codes

    def companies(self) -> list[str]:
        """Names of the companies this account may open (a cheap connection check)."""
        self._check_open()
        url = f"{self._root}/Tenants({quote(self.tenant, safe='')})/Companies"
        try:
            payload, resp = self._get(url)
        except _Forbidden as fb:
            raise self._company_refused(fb) from None
        except _NotFound as nf:
            raise SourceRefused(
                f"GP Service has no tenant {self.tenant!r} ({nf.message})",
                source=SOURCE, url=safe_url(url), status=404,
            ) from None
        items, _ = _listing(payload, resp)
        return [str(i.get("Name")) for i in items if isinstance(i, Mapping) and i.get("Name") is not None]

    def close(self) -> None:
        """Close the HTTP session if this client made it; safe to call twice."""
        if not self._closed:
            self._closed = True
            if self._own_session:
                self._session.close()

    def __enter__(self) -> "GpClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- rows ------------------------------------------------------------------------------------

    def _rows(
        self, entity: Entity, items: Sequence[Any], since: CursorValue | None, until: CursorValue | None
    ) -> tuple[list[dict[str, Any]], list[tuple[Any, str]]]:
        return document_rows(entity, items, since, until, include_unposted=self.include_unposted)

    def _chunk(
        self, rows: list[dict[str, Any]], problems: list[tuple[Any, str]], url: str, next_url: str | None, served: int,
        server_time: datetime | None = None,
    ) -> Iterator[Page]:
        if not rows and not problems:
            return
        clean = safe_url(url)
        count = len(rows)
        starts = list(range(0, count, self._page_rows)) or [0]
        for n, start in enumerate(starts):
            last = n == len(starts) - 1
            token = (safe_url(next_url) if next_url else None) if last else f"{clean}#row={start + self._page_rows}"
            yield Page(
                rows=tuple(rows[start:start + self._page_rows]),
                url=clean,
                next_token=token,
                row_count=served if n == 0 else 0,
                problems=tuple(problems) if n == 0 else (),
                server_time=server_time,
            )

    # --- refusals --------------------------------------------------------------------------------

    def _refusal(self, resource: str, fb: _Forbidden) -> SourceError:
        """A 403 on one resource: the company itself refused (the account has no access to it,
        or is mapped to no GP user), or only this resource (the account's GP role lacks the
        security task behind it). Once anything of the company has been read it is the latter;
        before, the tenant's company list tells them apart."""
        if not self._company_readable:
            try:
                readable = self.company in self.companies()
            except SourceAuthFailed as exc:
                return exc
            except SourceError:
                readable = False
            if not readable:
                return self._company_refused(fb)
        clean = safe_url(fb.url)
        reason = (f"GP refuses {resource} to {self.username} (403 at {clean}): the account's GP security role "
                  f"lacks the security task that reads {resource}")
        self._audit("access_denied", {"user": self.username, "url": clean, "status": 403, "resource": resource,
                                      "reason": reason})
        return SourceAccessDenied(
            f"{reason}{': ' + fb.message if fb.message else ''}", resource=resource, source=SOURCE, url=clean,
            status=403,
            advice=(f"In GP, Security Task Setup / Security Role Setup: give the role of the GP user mapped to "
                    f"{self.username} a task with read access to {resource} in company {self.company!r}; the "
                    "other documents keep flowing meanwhile."),
        )

    def _company_refused(self, fb: _Forbidden) -> SourceAuthFailed:
        clean = safe_url(fb.url)
        reason = (f"{self.username} is authenticated but has no access to company {self.company!r}: map the "
                  f"Windows account to a GP user with access to the company (403 at {clean})")
        self._audit("auth_failed", {"user": self.username, "url": clean, "status": 403, "reason": reason})
        return SourceAuthFailed(f"{reason}{': ' + fb.message if fb.message else ''}", source=SOURCE, url=clean,
                                status=403)

    # --- HTTP ------------------------------------------------------------------------------------

    def _next_url(self, current: str, link: str | None, links: LinkGuard) -> str | None:
        return links.check(urljoin(current, link), current=current) if link else None

    def _get(self, url: str) -> tuple[Any, requests.Response]:
        def audit_retry(error: SourceUnavailable, attempt: int, wait: float) -> None:
            self._audit("retry", {"url": safe_url(url), "attempt": attempt, "wait": round(wait, 3),
                                  "reason": str(error), "status": error.status})

        return retrying(lambda: self._get_once(url), policy=self._retry, sleep=self._sleep, clock=self._clock,
                        on_retry=audit_retry)

    def _get_once(self, url: str) -> tuple[Any, requests.Response]:
        clean = safe_url(url)
        try:
            resp = self._session.get(
                url, auth=self._auth, verify=self._verify, timeout=self._timeout,
                headers={"Accept": "application/json"}, allow_redirects=False,
            )
        except requests.exceptions.SSLError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "certificate verify failed" in str(exc).lower():
                # A self-signed or internal-CA certificate is common on GP Service.
                raise SourceCertificateUntrusted(
                    f"the TLS certificate of {urlsplit(url).hostname} is not trusted: set the GP connection's "
                    "CA bundle (verify=<path to the PEM of the CA that issued the GP Service certificate>); "
                    "certificate verification stays on",
                    source=SOURCE, url=clean,
                ) from None
            raise SourceUnavailable(f"TLS error talking to {clean}: {type(exc).__name__}",
                                    source=SOURCE, url=clean) from None
        except requests.exceptions.Timeout as exc:
            raise SourceUnavailable(f"GP Service timed out ({type(exc).__name__}) at {clean}",
                                    source=SOURCE, url=clean) from None
        except requests.exceptions.ConnectionError as exc:
            raise SourceUnreachable(f"cannot reach GP Service at {clean} ({type(exc).__name__})",
                                    source=SOURCE, url=clean) from None
        except requests.exceptions.RequestException as exc:
            raise SourceUnavailable(f"HTTP error talking to {clean} ({type(exc).__name__})",
                                    source=SOURCE, url=clean) from None
        except (PermissionError, KeyError, SpnegoError, binascii.Error) as exc:
            # requests-ntlm raises PermissionError when leg 2 carries no challenge, and
            # KeyError when it carries no WWW-Authenticate header at all.
            self._audit("auth_failed", {"user": self.username, "url": clean, "status": None,
                                        "reason": type(exc).__name__})
            raise SourceAuthFailed(
                f"NTLM handshake with {clean} failed for {self.username} ({type(exc).__name__})",
                source=SOURCE, url=clean,
            ) from None
        return self._check(resp, url), resp

    def _check(self, resp: requests.Response, url: str) -> Any:
        """Turn one reply into a payload or a typed error."""
        clean = safe_url(url)
        status = resp.status_code
        handshake = any(h.status_code == 401 for h in resp.history)
        if status == 401:
            offered = resp.headers.get("WWW-Authenticate", "")
            if handshake:
                # The first 401 was the challenge; this one answers our final NTLM token.
                reason = "the GP Service refused the Windows credentials after the NTLM handshake"
            elif "ntlm" not in offered.lower() and "negotiate" not in offered.lower():
                reason = f"the GP Service does not offer NTLM or Negotiate (offers {offered[:60]!r})"
            else:
                reason = "the GP Service refused the request"
            self._audit("auth_failed", {"user": self.username, "url": clean, "status": 401, "reason": reason})
            raise SourceAuthFailed(f"{reason} for {self.username} (401 at {clean})", source=SOURCE, url=clean,
                                   status=401)
        if handshake:
            # Windows authentication succeeded; GP may still refuse the company (403 below).
            self._audit("logon", {"user": self.username, "url": clean, "company": self.company})
        if status == 403:
            raise _Forbidden(url, _server_message(resp))
        if status == 404:
            raise _NotFound(url, _server_message(resp))
        if status in _RETRY_STATUSES:
            raise SourceUnavailable(f"GP Service answered {status} at {clean}", source=SOURCE, url=clean,
                                    status=status, retry_after=_retry_after(resp))
        if 300 <= status < 400:
            where = safe_url(urljoin(url, resp.headers.get("Location", "")))
            raise SourceRefused(
                f"GP Service redirected to {where}: set base_url to the final address", source=SOURCE, url=clean,
                status=status,
            )
        if status >= 400:
            msg = _server_message(resp)
            raise SourceRefused(f"GP Service answered {status} at {clean}{': ' + msg if msg else ''}",
                                source=SOURCE, url=clean, status=status)
        body = resp.content
        ctype = resp.headers.get("Content-Type", "").lower()
        if "html" in ctype or body.lstrip()[:1] == b"<":
            # A proxy, load balancer or IIS page answering 200 in place of the service.
            raise SourceUnavailable(f"GP Service returned an HTML page instead of JSON at {clean}",
                                    source=SOURCE, url=clean, status=status)
        if not body.strip():
            raise SourceUnavailable(f"GP Service returned an empty body at {clean}",
                                    source=SOURCE, url=clean, status=status)
        try:
            return json.loads(body.decode("utf-8-sig"), parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            raise SourceUnavailable(f"GP Service returned malformed or truncated JSON at {clean}",
                                    source=SOURCE, url=clean, status=status) from None

    def _audit(self, kind: str, details: Mapping[str, Any]) -> None:
        self._audit_hook(kind, {"source": SOURCE, "company": self.company, **details})

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("GpClient is closed")


def document_rows(
    entity: Entity, items: Sequence[Any], since: CursorValue | None, until: CursorValue | None, *,
    include_unposted: bool = False,
) -> tuple[list[dict[str, Any]], list[tuple[Any, str]]]:
    """Flat rows of GP documents (whichever transport read them) in the window [``since``,
    ``until``), with the rows that cannot be used and why: the window is applied here because
    neither GP service can be trusted to filter; lists are exploded and columns derived as the
    entity's ``GpOptions`` say."""
    opts = _options(entity)
    explode, derive = opts.explode, opts.derive

    def finish(row: dict[str, Any]) -> None:
        _apply_aliases(opts.aliases, row)
        problem = _derive_minus(derive, row)
        if problem:
            problems.append((row, problem))
        else:
            rows.append(row)

    cursor_col = entity.cursor.column
    rows: list[dict[str, Any]] = []
    problems: list[tuple[Any, str]] = []
    for item in items:
        if not isinstance(item, Mapping):
            problems.append((item, "list item is not a JSON object"))
            continue
        header = {k: v for k, v in item.items() if k != explode} if explode else item
        flat = flatten(header)
        raw_cursor = flat.get(cursor_col)
        if raw_cursor is None or (isinstance(raw_cursor, str) and not raw_cursor.strip()):
            problems.append((flat, f"{cursor_col} is missing"))
            continue
        try:
            cursor = _utc(parse_cursor(entity.cursor.kind, raw_cursor))
        except ValueError as exc:
            problems.append((flat, f"{cursor_col}: {exc}"))
            continue
        if since is not None and cursor < since:  # type: ignore[operator]
            continue
        if until is not None and cursor >= until:  # type: ignore[operator]
            continue
        if not _wanted(entity, flat, include_unposted):
            continue
        for name, spec in derive.items():
            if spec[0] == "count":
                value = _lookup(item, spec[1])
                flat[name] = len(value) if isinstance(value, list) else 0
            elif spec[0] == "posting":
                unposted = any(_value_in(flat.get(c), v) for c, v in opts.unposted.items())
                flat[name] = "Unposted" if unposted else flat.get(spec[1])
        if not explode:
            finish(flat)
            continue
        lines = item.get(explode)
        if lines is None:
            lines = []
        if not isinstance(lines, list):
            problems.append((flat, f"{explode} is not a list"))
            continue
        for line in lines:
            if not isinstance(line, Mapping):
                problems.append((line, f"an item of {explode} is not a JSON object"))
                continue
            row = dict(flat)
            row.update(flatten(line, explode))
            finish(row)
    return rows, problems


def _wanted(entity: Entity, flat: Mapping[str, Any], include_unposted: bool, *, present_only: bool = False) -> bool:
    """Whether a row passes the entity's ``match`` and ``unposted`` options; ``present_only``
    judges only the columns the row has (a summary that lacks one is decided later)."""
    for column, accepted in _options(entity).match.items():
        if (column in flat or not present_only) and not _value_in(flat.get(column), accepted):
            return False
    if not include_unposted:
        for column, values in _options(entity).unposted.items():
            if _value_in(flat.get(column), values):
                return False
    return True


# --- reply helpers -------------------------------------------------------------------------------


def _unwrap(payload: Any) -> tuple[Any, Mapping[str, Any] | None]:
    """(body, envelope): the ``Payload`` member when present (the envelope is unknown)."""
    if isinstance(payload, Mapping):
        for k, v in payload.items():
            if k.lower() == "payload":
                return v, payload
    return payload, None


def _listing(payload: Any, resp: requests.Response) -> tuple[list[Any], str | None]:
    """The items of a list reply and its next link, whatever the envelope and list shape."""
    body, envelope = _unwrap(payload)
    holders = [h for h in (envelope, body) if isinstance(h, Mapping)]
    if body is None:
        items: list[Any] = []
    elif isinstance(body, list):
        items = body
    elif isinstance(body, Mapping):
        key = next((k for k in body if k.lower() in _COLLECTION_KEYS and isinstance(body[k], list)), None)
        items = list(body[key]) if key is not None else [body]
    else:
        raise SourceRefused(f"GP Service returned JSON of an unexpected shape ({type(body).__name__})",
                                source=SOURCE, url=safe_url(resp.url or ""))
    return items, _next_link(holders, resp)


def _next_link(holders: Sequence[Mapping[str, Any]], resp: requests.Response) -> str | None:
    for holder in holders:
        for key, value in holder.items():
            low = key.lower()
            if low in _NEXT_KEYS and isinstance(value, str) and value:
                return value
            if low == "links":
                href = _next_in_links(value)
                if href:
                    return href
    link = resp.links.get("next", {}).get("url") if resp.links else None
    return link or None


def _next_in_links(value: Any) -> str | None:
    def href_of(obj: Any) -> str | None:
        if isinstance(obj, str):
            return obj or None
        if isinstance(obj, Mapping):
            for k, v in obj.items():
                if k.lower() in ("href", "uri", "url") and isinstance(v, str) and v:
                    return v
        return None

    if isinstance(value, list):
        for link in value:
            if isinstance(link, Mapping):
                rel = next((v for k, v in link.items() if k.lower() == "rel"), "")
                if str(rel).lower() == "next":
                    return href_of(link)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if k.lower() == "next":
                return href_of(v)
    return None


def _value_in(value: Any, accepted: Sequence[Any]) -> bool:
    text = str(value).strip().lower() if value is not None else ""
    return any(text == str(a).strip().lower() for a in accepted)


def _derive_minus(derive: Mapping[str, Sequence[str]], row: dict[str, Any]) -> str | None:
    for name, spec in derive.items():
        if spec[0] != "minus":
            continue
        a, b = row.get(spec[1]), row.get(spec[2])
        if a is None and b is None:
            row[name] = None
            continue
        try:
            row[name] = _as_decimal(a) - _as_decimal(b)
        except ValueError as exc:
            return f"{name}: {exc}"
    return None


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def _server_message(resp: requests.Response) -> str:
    """The ``Message`` of a JSON error body (a simulator convention), short; else empty."""
    try:
        data = json.loads(resp.content.decode("utf-8-sig")) if resp.content else None
    except (ValueError, UnicodeDecodeError):
        return ""
    data, _ = _unwrap(data)
    if isinstance(data, Mapping):
        msg = next((v for k, v in data.items() if k.lower() == "message" and isinstance(v, str)), "")
        return msg[:200]
    return ""


_ISO = re.compile(r"[A-Z]{3}")


def iso_codes(items: Sequence[Any]) -> dict[str, str]:
    """Currency id -> ISO code from currency setup rows. Neither name is documented, so the id
    is the row's key (``Key.Id``, ``Id`` or ``CurrencyId``) and the code any field whose name
    says ISO and whose value is three capital letters (``ISOCode``, ``IsoCurrencyCode``…)."""
    codes = {}
    for item in items:
        if not isinstance(item, Mapping):
            continue
        flat = flatten(item)
        cid = next((str(flat[k]).strip() for k in ("Key.Id", "Id", "CurrencyId", "Key.CurrencyId")
                    if flat.get(k) not in (None, "")), None)
        iso = next((str(v).strip() for k, v in flat.items()
                    if "iso" in k.rsplit(".", 1)[-1].lower() and _ISO.fullmatch(str(v).strip())), None)
        if cid and iso:
            codes[cid] = iso
    return codes
