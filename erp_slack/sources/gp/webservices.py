"""Dynamics GP client over Web Services for Microsoft Dynamics GP (SOAP), the legacy endpoint.

``GpWebServicesClient`` reads ``http(s)://host:48620/DynamicsGPWebServices/DynamicsGPService.asmx``
with zeep over one keep-alive ``requests.Session`` carrying Windows authentication
(``requests_ntlm``), and offers the pipeline the same pages of flat rows as the REST client
(``GpClient``), so entities, templates and routes do not care which transport read them.

Only the *legacy* endpoint is reachable from Python: the native endpoint (``/Dynamics/GPService``)
demands WS-Security message signing bootstrapped by SPNEGO, which neither zeep nor requests speaks.

How an entity is read (its ``GpOptions.soap``):

1. ``Get<X>List(criteria, context)`` with ``ModifiedDate`` ``GreaterThan``/``LessThan`` in UTC,
   date *and* time, and the ``TransactionState`` (posted states, plus Work when unposted
   documents are enabled) or ``Type`` restrictions the entity declares;
2. the summaries are filtered here again on ``ModifiedDate`` (which column the server compares is
   not documented, and a server that ignores criteria must not flood the channel);
3. ``Get<X>ByKey`` for each summary left: the summary merged with the full document is one
   document, flattened and exploded exactly as a REST body (``client.document_rows``).

The company is GP's numeric company id in ``Context.OrganizationKey``. The configuration may name
the company as GP shows it (``Fabrikam, Inc.``) or give the id; a name is looked up once per
client in ``GetWSEnabledCompanyForUserList`` (the companies where the account holds a Web
Services security role), which is also how a company the account may not use is told apart.

zeep builds each request from the site's own WSDL; the reply is read here as plain text values
(``true``/``false`` as booleans, ``ArrayOfX`` wrappers as lists, as the WSDL declares them), so the
entity's types parse every value and one document with a value that cannot be used is
quarantined while the rest of its list flows (zeep would fail the whole reply). A ``dateTime``
without an offset is taken as UTC, like every GP stamp. Where the site's criteria type lacks a
member asked for, the list is read without criteria and filtered here (audited
``criteria_dropped``).

Errors: the final 401 of the NTLM handshake → ``SourceAuthFailed``; a company the account has no
role in → ``SourceAuthFailed``; a fault saying access is denied for one operation (a security role
without that operation) → ``SourceAccessDenied`` for that entity only; an operation the site's
WSDL lacks → ``EntityNotOffered`` for optional entities; a *validation* fault → ``SourceRefused``
with the detail fetched by its ``LogId``; a *system* fault (GP's generic "contact your
administrator") → ``SourceUnavailable``, retried, then reported with where GP logs the detail;
connection, TLS, timeouts and 5xx as in the REST client.
"""

from __future__ import annotations

import binascii
import os
import re
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Mapping

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
from erp_slack.sources.gp.client import _options, _utc, _wanted, document_rows, flatten
from erp_slack.sources.gp.entities import SoapCalls
from erp_slack.sources.http import RetryPolicy, retrying, safe_url

__all__ = ["GpWebServicesClient", "LEGACY_PATH"]

SOURCE = "gp"
LEGACY_PATH = "/DynamicsGPWebServices/DynamicsGPService.asmx"
# Words of a fault that refuses an operation to the account's security role (GP's exact text is
# not documented; these cover "access denied", "not authorized", "no permission").
_DENIED = re.compile(r"access (is )?denied|not authori[sz]ed|permission|security role", re.IGNORECASE)
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class _RequestNotBuilt(Exception):
    """The site's WSDL does not take the request as built (criteria members it lacks)."""


class GpWebServicesClient:
    """One Dynamics GP company over the Web Services legacy endpoint, as a ``SourceClient``.

    Args:
        base_url: The endpoint, ``http://host:48620/DynamicsGPWebServices/DynamicsGPService.asmx``
            (the path is added when the URL has none).
        company: The company as GP shows it, or its numeric company id.
        username, password, verify, timeout, audit, include_unposted, retry, sleep, clock,
        page_rows: as for ``GpClient``.
        session: A ``requests.Session`` to use (the client closes only one it made itself).
    """

    source = SOURCE

    def __init__(
        self,
        base_url: str,
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
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("base_url", f"must be an http(s) URL such as http://gp.example:48620{LEGACY_PATH}")
        if isinstance(verify, str) and not os.path.isfile(verify):
            raise ConfigError("verify", f"CA bundle {verify!r} does not exist")
        if not username or ("\\" not in username and "@" not in username):
            raise ConfigError("username", "must be a Windows account as DOMAIN\\user (or user@domain)")
        path = parts.path.rstrip("/")
        if not path.lower().endswith(".asmx"):
            path = (path if path.lower().endswith("/dynamicsgpwebservices") else path + "/DynamicsGPWebServices") \
                + "/DynamicsGPService.asmx"
        self.url = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        self.company = company
        self.username = username
        self.include_unposted = include_unposted
        self._audit_hook = audit
        self._own_session = session is None
        self._session = session if session is not None else requests.Session()
        self._session.auth = HttpNtlmAuth(username, password)
        self._session.verify = verify
        self._timeout = timeout
        self._retry, self._sleep, self._clock = retry, sleep, clock
        self._page_rows = max(1, int(page_rows))
        self._zeep: Any = None  # zeep's service proxy, once the WSDL is read
        self._operations: frozenset[str] = frozenset()
        self._array_items: frozenset[str] = frozenset()  # element names that are items of an ArrayOf…
        self._company_id: int | None = None
        self._logged_on = False
        self._closed = False

    def __repr__(self) -> str:
        return f"GpWebServicesClient({safe_url(self.url)!r}, company={self.company!r}, user={self.username!r})"

    # --- public operations -----------------------------------------------------------------------

    def pages(
        self, entity: Entity, *, since: CursorValue | None, until: CursorValue | None = None,
        limit: int | None = None,
    ) -> Iterator[Page]:
        """Rows of ``entity`` changed in [``since``, ``until``): one list call, then each changed
        document by key. An operation this site's WSDL lacks skips an optional entity."""
        self._check_open()
        calls = _options(entity).soap
        if calls is None:
            raise SourceRefused(f"{entity.name} cannot be read over GP Web Services", source=SOURCE, url=self.url)
        since, until = _utc(since), _utc(until)
        if not self._offers(calls.list_op) or not self._offers(calls.get_op):
            missing = calls.list_op if not self._offers(calls.list_op) else calls.get_op
            reason = f"this GP Web Services site has no {missing} operation"
            if entity.optional:
                self._audit("skipped", {"entity": entity.name, "url": safe_url(self.url), "reason": reason})
                raise EntityNotOffered(reason, source=SOURCE, url=safe_url(self.url))
            raise SourceRefused(f"{reason}; {entity.name} cannot be read", source=SOURCE, url=safe_url(self.url))
        context = self._context()
        try:
            summaries = self._call(calls.list_op, entity.name, criteria=self._criteria(calls, since, until),
                                   context=context)
        except _RequestNotBuilt as exc:
            # This site's criteria type differs: list everything and filter here (slower, complete).
            self._audit("criteria_dropped", {"entity": entity.name, "operation": calls.list_op, "reason": str(exc)})
            summaries = self._call(calls.list_op, entity.name, criteria={}, context=context)
        summaries = summaries if isinstance(summaries, list) else [] if summaries is None else [summaries]
        served = len(summaries)
        # The server's filter is not trusted: only summaries in the window cost a by-key call.
        changed, problems = _changed(entity, summaries, since, until, self.include_unposted)
        documents = []
        for summary, key in changed:
            if limit is not None and len(documents) >= limit:
                break
            full = self._call(calls.get_op, entity.name, key=key, context=context)
            documents.append({**summary, **full} if isinstance(full, Mapping) else summary)
        rows, more = document_rows(entity, documents, since, until, include_unposted=self.include_unposted)
        problems.extend(more)
        if limit is not None:
            rows = rows[:limit]
        if not rows and not problems:
            return
        clean = safe_url(self.url)
        starts = list(range(0, len(rows), self._page_rows)) or [0]
        for n, start in enumerate(starts):
            yield Page(
                rows=tuple(rows[start:start + self._page_rows]), url=f"{clean}#{calls.list_op}",
                next_token=None if n == len(starts) - 1 else f"{clean}#{calls.list_op}&row={start + self._page_rows}",
                row_count=served if n == 0 else 0, problems=tuple(problems) if n == 0 else (),
            )

    def companies(self) -> list[str]:
        """Names of the companies where this account holds a Web Services role (a connection check)."""
        self._check_open()
        return [name for name, _ in self._company_list()]

    def operations(self) -> list[str]:
        """The operations this site's WSDL offers (what ``erp-slack check`` reports)."""
        self._check_open()
        self._service()
        return sorted(self._operations)

    def close(self) -> None:
        """Close the HTTP session if this client made it; safe to call twice."""
        if not self._closed:
            self._closed = True
            if self._own_session:
                self._session.close()

    def __enter__(self) -> "GpWebServicesClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests --------------------------------------------------------------------------------

    def _criteria(self, calls: SoapCalls, since: Any, until: Any) -> dict[str, Any]:
        criteria: dict[str, Any] = {}
        modified = {}
        if since is not None:
            # GreaterThan with a second's margin: whether the server compares at millisecond
            # precision is unknown, and the window is applied again here.
            modified["GreaterThan"] = _wire_time(since, -1)
        if until is not None:
            modified["LessThan"] = _wire_time(until, +1)
        if modified:
            criteria["ModifiedDate"] = modified
        if calls.states is not None:
            enum, posted, unposted = calls.states
            states = list(posted) + (list(unposted) if self.include_unposted else [])
            criteria["TransactionState"] = {"Items": {enum: states}}
        for field, (enum, values) in calls.lists.items():
            criteria[field] = {"Items": {enum: list(values)}}
        return criteria

    def _context(self) -> dict[str, Any]:
        return {"OrganizationKey": {"Id": self._company()}}

    def _company(self) -> int:
        if self._company_id is None:
            wanted = str(self.company).strip()
            listed = self._company_list()
            match = next((cid for name, cid in listed if name == wanted or str(cid) == wanted), None)
            if match is None:
                reason = (f"{self.username} holds no Web Services security role in company {self.company!r} "
                          f"(roles in: {', '.join(n for n, _ in listed) or 'none'})")
                self._audit("auth_failed", {"user": self.username, "url": safe_url(self.url), "reason": reason})
                raise SourceAuthFailed(
                    reason, source=SOURCE, url=safe_url(self.url),
                    advice="In Dynamics Security Administration, give the account a role (e.g. a read-only "
                           "role) in this company, or correct the company name.")
            self._company_id = match
        return self._company_id

    def _company_list(self) -> list[tuple[str, int]]:
        items = self._call("GetWSEnabledCompanyForUserList", "companies", context={})
        out = []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, Mapping) and isinstance(item.get("Key"), Mapping):
                out.append((str(item.get("Name") or ""), int(item["Key"].get("Id"))))
        return out

    def _offers(self, operation: str) -> bool:
        self._service()
        return operation in self._operations

    def _service(self) -> Any:
        """zeep's service proxy, built once from the live WSDL (the site's own types and
        operations), calling the configured address whatever address the WSDL was published with."""
        if self._zeep is None:
            import zeep
            from zeep.transports import Transport

            transport = Transport(session=self._session, timeout=_read_timeout(self._timeout),
                                  operation_timeout=_read_timeout(self._timeout))
            # zeep builds the requests from the site's WSDL; the replies are read here (``_reply``),
            # so one document with a value zeep cannot type does not lose the whole list.
            settings = zeep.Settings(strict=False, xml_huge_tree=True, raw_response=True)
            client = self._guard(lambda: zeep.Client(f"{self.url}?wsdl", transport=transport, settings=settings),
                                 "the WSDL")
            binding = next(iter(client.wsdl.bindings.values()))
            self._zeep = client.create_service(str(binding.name), self.url)
            self._operations = frozenset(binding.all())
            self._array_items = _array_items(client)
        return self._zeep

    def _call(self, operation: str, what: str, **kwargs: Any) -> Any:
        service = self._service()

        def audit_retry(error: SourceUnavailable, attempt: int, wait: float) -> None:
            self._audit("retry", {"url": safe_url(self.url), "operation": operation, "attempt": attempt,
                                  "wait": round(wait, 3), "reason": str(error), "status": error.status})

        def once() -> Any:
            return self._reply(self._guard(lambda: getattr(service, operation)(**kwargs), operation, what),
                               operation, what)

        result = retrying(once, policy=self._retry, sleep=self._sleep, clock=self._clock, on_retry=audit_retry)
        if not self._logged_on:
            self._logged_on = True
            self._audit("logon", {"user": self.username, "url": safe_url(self.url), "company": self.company})
        return result

    def _guard(self, call: Callable[[], Any], operation: str, what: str = "") -> Any:
        """``call()`` with every failure turned into the project's errors."""
        import zeep.exceptions as zx

        clean = safe_url(self.url)
        try:
            return call()
        except (TypeError, zx.ValidationError) as exc:
            # zeep could not build the request from this site's WSDL (a member it does not have).
            raise _RequestNotBuilt(f"{operation}: {exc}") from None
        except (zx.TransportError, requests.exceptions.HTTPError) as exc:
            # A call's HTTP error is zeep's TransportError; reading the WSDL raises requests' own.
            status = exc.status_code if isinstance(exc, zx.TransportError) else exc.response.status_code
            if status == 401:
                reason = "GP Web Services refused the Windows credentials after the NTLM handshake"
                self._audit("auth_failed", {"user": self.username, "url": clean, "status": 401, "reason": reason})
                raise SourceAuthFailed(f"{reason} for {self.username} (401 at {clean})", source=SOURCE, url=clean,
                                       status=401) from None
            if status in _RETRY_STATUSES:
                raise SourceUnavailable(f"GP Web Services answered {status} to {operation} at {clean}",
                                        source=SOURCE, url=clean, status=status) from None
            if status == 404:
                raise SourceRefused(f"no GP Web Services at {clean} (404): check base_url (the legacy endpoint "
                                    f"ends {LEGACY_PATH})", source=SOURCE, url=clean, status=404) from None
            raise SourceRefused(f"GP Web Services answered {status} to {operation} at {clean}", source=SOURCE,
                                url=clean, status=status) from None
        except (zx.XMLSyntaxError, zx.XMLParseError, zx.ValidationError) as exc:
            raise SourceUnavailable(f"GP Web Services sent a reply to {operation} that is not the expected XML "
                                    f"({type(exc).__name__}) at {clean}", source=SOURCE, url=clean) from None
        except requests.exceptions.SSLError as exc:
            if "certificate verify failed" in str(exc).lower():
                raise SourceCertificateUntrusted(
                    f"the TLS certificate of GP Web Services at {clean} is not trusted: set the GP connection's "
                    "CA bundle (verify=<path to the PEM of the issuing CA>); certificate verification stays on",
                    source=SOURCE, url=clean) from None
            raise SourceUnavailable(f"TLS error talking to {clean}: {type(exc).__name__}", source=SOURCE,
                                    url=clean) from None
        except requests.exceptions.Timeout as exc:
            raise SourceUnavailable(f"GP Web Services timed out ({type(exc).__name__}) at {clean}", source=SOURCE,
                                    url=clean) from None
        except requests.exceptions.ConnectionError as exc:
            raise SourceUnreachable(f"cannot reach GP Web Services at {clean} ({type(exc).__name__})",
                                    source=SOURCE, url=clean) from None
        except requests.exceptions.RequestException as exc:
            raise SourceUnavailable(f"HTTP error talking to {clean} ({type(exc).__name__})", source=SOURCE,
                                    url=clean) from None
        except (PermissionError, KeyError, SpnegoError, binascii.Error) as exc:
            self._audit("auth_failed", {"user": self.username, "url": clean, "status": None,
                                        "reason": type(exc).__name__})
            raise SourceAuthFailed(f"NTLM handshake with {clean} failed for {self.username} ({type(exc).__name__})",
                                   source=SOURCE, url=clean) from None

    def _reply(self, resp: requests.Response, operation: str, what: str) -> Any:
        """The result of one call as plain values, or the project's error for its fault or status."""
        clean = safe_url(self.url)
        status = resp.status_code
        if status == 401:
            reason = "GP Web Services refused the Windows credentials after the NTLM handshake"
            self._audit("auth_failed", {"user": self.username, "url": clean, "status": 401, "reason": reason})
            raise SourceAuthFailed(f"{reason} for {self.username} (401 at {clean})", source=SOURCE, url=clean,
                                   status=401)
        body = _body(resp.content)
        if body is not None and len(body) and _local(body[0].tag) == "Fault":
            raise self._fault(body[0], operation, what)
        if status in _RETRY_STATUSES:
            raise SourceUnavailable(f"GP Web Services answered {status} to {operation} at {clean}", source=SOURCE,
                                    url=clean, status=status)
        if status >= 300:
            raise SourceRefused(f"GP Web Services answered {status} to {operation} at {clean}", source=SOURCE,
                                url=clean, status=status)
        if body is None or not len(body):
            # A proxy's HTML page, an empty or a truncated reply.
            raise SourceUnavailable(f"GP Web Services sent a reply to {operation} that is not a SOAP envelope at "
                                    f"{clean}", source=SOURCE, url=clean, status=status)
        response = body[0]  # <OperationResponse><OperationResult>…
        result = response[0] if len(response) else None
        return None if result is None else _element(result, self._array_items)

    def _fault(self, fault: Any, operation: str, what: str) -> SourceError:
        clean = safe_url(self.url)
        message = " ".join(t.strip() for el in fault if _local(el.tag) == "faultstring" for t in el.itertext())[:300]
        detail = next((el for el in fault if _local(el.tag) == "detail"), None)
        log_id = _log_id(detail)
        if log_id:
            detail = self._validation_detail(log_id)
            return SourceRefused(
                f"GP Web Services rejected {operation}: {message}{' — ' + detail if detail else ''} (LogId {log_id})",
                source=SOURCE, url=clean,
                advice="The validation errors above say what GP refused; they are also in the Web Services "
                       "exception log on the GP server under this LogId.")
        if _DENIED.search(message):
            reason = f"GP refuses {operation} to {self.username}: {message}"
            self._audit("access_denied", {"user": self.username, "url": clean, "resource": operation,
                                          "reason": reason})
            return SourceAccessDenied(
                reason, resource=operation, source=SOURCE, url=clean,
                advice=f"In Dynamics Security Administration, give the account's role the {operation} operation "
                       f"in company {self.company!r}; the other documents keep flowing meanwhile.")
        return SourceUnavailable(
            f"GP Web Services failed {operation}: {message or 'system error'}", source=SOURCE, url=clean,
            advice="GP reports system errors only in its Web Services exception log: open the Dynamics GP Web "
                   "Services Exception Management Console on the GP server for the detail (and check the GP "
                   "service host and SQL Server are up).")

    def _validation_detail(self, log_id: str) -> str:
        import zeep.exceptions as zx

        if not self._offers("GetLoggedValidationResultByKey"):
            return ""
        try:
            resp = self._service().GetLoggedValidationResultByKey(key={"Id": log_id}, context={})
            result = self._reply(resp, "GetLoggedValidationResultByKey", "validation detail")
        except (zx.Error, requests.exceptions.RequestException, SourceError):
            return ""
        errors = result.get("Errors") if isinstance(result, Mapping) else None
        messages = [str(e.get("Message")) for e in errors or [] if isinstance(e, Mapping) and e.get("Message")]
        return "; ".join(messages)[:400]

    def _audit(self, kind: str, details: Mapping[str, Any]) -> None:
        self._audit_hook(kind, {"source": SOURCE, "company": self.company, **details})

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("GpWebServicesClient is closed")


def _body(content: bytes) -> Any:
    """The SOAP Body element of a reply, or None when the reply is not a SOAP envelope."""
    from lxml import etree

    try:
        root = etree.fromstring(content, parser=etree.XMLParser(resolve_entities=False, no_network=True,
                                                                huge_tree=True))
    except (etree.XMLSyntaxError, ValueError):
        return None
    if root is None or _local(root.tag) != "Envelope":
        return None
    return next((el for el in root if _local(el.tag) == "Body"), None)


def _local(tag: Any) -> str:
    return tag.split("}", 1)[-1] if isinstance(tag, str) else ""


_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


def _element(el: Any, array_items: frozenset[str]) -> Any:
    """An XML element as plain values: text stays text (the entity's types parse it, so one bad
    value is one quarantined document), ``true``/``false`` become booleans, an element whose
    children are all items of an ``ArrayOf…`` type becomes a list, others a mapping."""
    if el.get(_NIL) == "true":
        return None
    children = [c for c in el if isinstance(c.tag, str)]
    if not children:
        text = el.text
        return {"true": True, "false": False}.get(text, text) if text is not None else None
    names = [_local(c.tag) for c in children]
    if names[0] in array_items and len(set(names)) == 1:
        return [_element(c, array_items) for c in children]
    out: dict[str, Any] = {}
    for name, child in zip(names, children):
        value = _element(child, array_items)
        if name in out:  # a repeated element the WSDL did not declare as a list: keep every one
            out[name] = (out[name] if isinstance(out[name], list) else [out[name]]) + [value]
        else:
            out[name] = value
    return out


def _array_items(client: Any) -> frozenset[str]:
    """Names of the elements that are the one repeated member of a type (``ArrayOfX`` holds X)."""
    names = set()
    for kind in client.wsdl.types.types:
        elements = getattr(kind, "elements", None) or []
        if len(elements) == 1:
            name, element = elements[0]
            if element.max_occurs == "unbounded" or (isinstance(element.max_occurs, int) and element.max_occurs > 1):
                names.add(name)
    return frozenset(names)


def _changed(
    entity: Entity, summaries: list[Any], since: CursorValue | None, until: CursorValue | None, include_unposted: bool,
) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], list[tuple[Any, str]]]:
    """(summary, key) of each summary changed in [``since``, ``until``), once per key, and the
    summaries that cannot be used with why (no key, no usable ``ModifiedDate``)."""
    column = entity.cursor.column
    out: list[tuple[dict[str, Any], dict[str, Any]]] = []
    problems: list[tuple[Any, str]] = []
    seen: set[str] = set()
    for s in summaries:
        if not isinstance(s, Mapping) or not isinstance(s.get("Key"), Mapping):
            problems.append((s, "summary without a Key"))
            continue
        raw = s.get(column)
        try:
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                raise ValueError("missing")
            stamp = _utc(parse_cursor(entity.cursor.kind, raw))
        except ValueError as exc:
            problems.append((dict(s), f"{column}: {exc}"))
            continue
        if (since is not None and stamp < since) or (until is not None and stamp >= until):  # type: ignore[operator]
            continue
        # A server that ignores the criteria lists what the entity does not want (payments
        # beside invoices, work documents): those summaries cost no by-key call either.
        flat = flatten(s)
        if not _wanted(entity, flat, include_unposted, present_only=True):
            continue
        marker = repr(sorted((k, str(v)) for k, v in s["Key"].items()))
        if marker not in seen:
            seen.add(marker)
            out.append((dict(s), dict(s["Key"])))
    return out, problems


def _wire_time(value: Any, seconds: int) -> datetime:
    """A UTC datetime with date and time, widened by ``seconds``."""
    from datetime import timedelta

    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
    return when + timedelta(seconds=seconds)


def _read_timeout(timeout: float | tuple[float, float]) -> float:
    return timeout[1] if isinstance(timeout, tuple) else timeout


def _log_id(detail: Any) -> str | None:
    """The ``LogId`` inside a validation fault's detail, wherever it sits."""
    if detail is None:
        return None
    for el in detail.iter():
        tag = el.tag.split("}", 1)[-1] if isinstance(el.tag, str) else ""
        if tag.lower() == "logid" and (el.text or "").strip():
            return el.text.strip()
    return None
