"""SYSPRO source clients: one interface, two transports.

* ``SysproEnetClient`` speaks e.net Solutions REST (``/SYSPROWCFService/Rest``): a session token
  from ``Logon`` rides on every call as ``UserId=``, table reads go through ``Query/Query`` with
  the ``COMFND`` business object, and errors come back as HTTP 200 bodies starting ``ERROR:``.
  The session is an ``httpx.Auth`` (``SysproSession``) that logs on lazily, logs on again once when SYSPRO says the UserID is invalid, and logs off
  on ``close()``.
* ``SysproODataClient`` speaks the SYSPRO OData v4 service: HTTP Basic auth with the operator's
  OData password, ``$filter/$orderby/$select/$top`` with keyset paging, at most 5,000 rows a page.

Both hand out ``Page`` objects of raw rows (column -> value as the API gave it); ``model.normalise``
parses them. Neither reads or writes watermarks. Each API has one ``check_*`` function that
turns replies into typed errors (whether one is retried is a property of its type); reads are
retried with the shared policy of ``sources/http.py``, and every URL goes through its
``safe_url`` before it reaches an exception, a ``Page`` or an audit event: the e.net query
string carries passwords and the session token.

``connect(transport, ...)`` picks the client; ``client.entities`` is the matching entity tuple.
"""

from __future__ import annotations

import base64
import contextlib
import binascii
import json
import re
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, datetime, timezone
from email.utils import parsedate_to_datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Callable, ClassVar, Iterator, Mapping, Sequence, TypeVar
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

import httpx

from erp_slack.errors import (
    ConfigError,
    SourceAuthFailed,
    SourceError,
    SourceSessionExpired,
    SourceRefused,
    SourceUnavailable,
    SourceUnreachable,
)
from erp_slack.model import Cursor, CursorValue, Entity, Page
from erp_slack.sources.base import AuditHook, no_audit
from erp_slack.sources.http import LinkGuard, RetryPolicy, Verify, retrying, safe_url, scrubber, tls_verify
from erp_slack.sources.syspro.entities import (
    Lookup,
    Period,
    Rollup,
    SignSplit,
    derivations,
    entities_for,
    source_columns,
)

__all__ = [
    "SysproEnetClient",
    "SysproODataClient",
    "SysproSession",
    "connect",
    "check_enet",
    "check_odata",
    "build_comfnd_query",
    "odata_literal",
    "ENET_PATH",
    "ODATA_PATH",
    "ODATA_MAX_ROWS",
]

ENET_PATH = "/SYSPROWCFService/Rest"
ODATA_PATH = "/SYSPRO8Odata/SYSPROOData"  # the real base path is unknown, so it is overridable
ODATA_MAX_ROWS = 5000  # each OData response is capped at 5,000 rows
DEFAULT_PAGE_SIZE = 500  # rows per request unless the configuration says otherwise
LOOKUP_CHUNK = 10  # keys per lookup query: the XML travels in the URL, keep it short

SOURCE = "syspro"
_T = TypeVar("_T")
# (column, condition, value): conditions are COMFND's codes (EQ NE LT LE GT GE).
Condition = tuple[str, str, Any]
# A filter in disjunctive normal form: OR of AND-groups. [] means "no filter".
Where = list[list[Condition]]


# --- reply checks -------------------------------------------------------------------------------------


def _looks_like_html(response: httpx.Response) -> bool:
    head = response.content.lstrip()[:64].lower()
    return "text/html" in response.headers.get("content-type", "").lower() or head.startswith(
        (b"<!doctype html", b"<html")
    )


# What an HTTP status other than 200 means, per status; anything not listed is a refusal of the
# request itself, except 5xx (the server is in trouble: try again).
_STATUS_ERRORS: dict[int, type[SourceError]] = {
    401: SourceAuthFailed, 403: SourceAuthFailed, 408: SourceUnavailable, 429: SourceUnavailable,
}


def _http_status_error(response: httpx.Response, api: str, url: str, detail: str = "") -> SourceError:
    status = response.status_code
    suffix = f": {detail}" if detail else ""
    kind = _STATUS_ERRORS.get(status, SourceUnavailable if status >= 500 else SourceRefused)
    if kind is SourceAuthFailed:
        return kind(f"SYSPRO {api} refused the credentials (HTTP {status}){suffix}", source=SOURCE, url=url,
                    status=status)
    if status == 404:
        suffix = f" (no such endpoint; check the base URL){suffix}"
    return kind(f"SYSPRO {api} answered HTTP {status}{suffix}", source=SOURCE, url=url, status=status)


def check_enet(response: httpx.Response, *, scrub: Callable[[str], str] = lambda s: s) -> bytes:
    """Turn an e.net REST reply into its body, or raise the matching typed error.

    HTTP 200 does not mean success: a body starting ``ERROR`` is a failure.

    Raises:
        SourceSessionExpired: "The supplied UserID is invalid" (expired or evicted session).
        SourceAuthFailed: wrong operator/company or password, a blank operator, a business
            object the operator is not licensed for (``e.net exception 100000``), HTTP 401/403.
        SourceUnavailable: HTTP 429/5xx or an HTML page (retried).
        SourceRefused: any other ``ERROR`` text or HTTP status (retrying the same call will not help).
    """
    url = safe_url(response.request.url)
    if response.status_code != 200:
        raise _http_status_error(response, "e.net", url)
    if _looks_like_html(response):
        # A proxy, IIS or a load balancer error page, not the WCF service.
        raise SourceUnavailable("SYSPRO e.net answered with an HTML page instead of an e.net reply",
                           url=url, status=200, source=SOURCE)
    body = response.content
    if body.lstrip()[:5].upper() != b"ERROR":
        return body
    text = scrub(body.decode("cp1252", "replace").strip())
    message = f"SYSPRO e.net: {text[:300]}"
    low = text.lower()
    if "userid is invalid" in low:
        raise SourceSessionExpired(message, source="syspro", url=url, status=200)
    if ("password" in low or "invalid operator" in low or "invalid company" in low
            or "cannot be blank" in low or "e.net exception 100000" in low):
        raise SourceAuthFailed(message, source="syspro", url=url, status=200)
    # Anything else (licence seats full, unknown table or column, bad condition) will not be
    # cured by an immediate retry; Prefect's task retry tries again later.
    raise SourceRefused(message, url=url, status=200, source=SOURCE)


def check_odata(response: httpx.Response, *, scrub: Callable[[str], str] = lambda s: s) -> dict[str, Any]:
    """Turn an OData reply into its JSON document, or raise the matching typed error.

    Raises:
        SourceAuthFailed: HTTP 401/403 (wrong operator or OData password).
        SourceUnavailable: HTTP 429/5xx, an HTML page or a truncated body (retried).
        SourceRefused: a rejected query (400), an unknown entity set (404) or a reply without ``value``.
    """
    url = safe_url(response.request.url)
    if response.status_code != 200:
        detail = ""
        try:
            detail = str(json.loads(response.content)["error"]["message"])[:300]
        except (ValueError, KeyError, TypeError):
            pass
        raise _http_status_error(response, "OData", url, scrub(detail))
    if _looks_like_html(response):
        raise SourceUnavailable("SYSPRO OData answered with an HTML page instead of JSON", url=url,
                           status=200, source=SOURCE)
    try:
        # Amounts are Decimal from the moment they are parsed.
        doc = json.loads(response.content, parse_float=Decimal)
    except ValueError:
        raise SourceUnavailable("SYSPRO OData answered with malformed or truncated JSON", url=url,
                           status=200, source=SOURCE) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("value"), list):
        raise SourceRefused("SYSPRO OData reply has no 'value' list", url=url, status=200, source=SOURCE)
    return doc


# --- the e.net session ------------------------------------------------------------------------------

_OPERATOR_LOCKS: dict[str, threading.RLock] = {}
_OPERATOR_LOCKS_GUARD = threading.Lock()


def _operator_lock(base_url: str, operator: str) -> threading.RLock:
    """One lock per (server, operator): SYSPRO keeps one session per operator."""
    parts = urlsplit(base_url)
    key = f"{parts.scheme}://{parts.netloc.lower()}|{operator.upper()}"
    with _OPERATOR_LOCKS_GUARD:
        return _OPERATOR_LOCKS.setdefault(key, threading.RLock())


class SysproSession(httpx.Auth):
    """An e.net session as an httpx auth flow.

    * Logs on lazily, on the first request, and adds ``UserId=<token>`` to every request.
    * On ``ERROR: The supplied UserID is invalid…`` (idle timeout, or a second logon with the same
      operator evicted us) logs on once more and replays the request once; a second refusal
      surfaces as ``SourceSessionExpired``.
    * Holds the operator's lock for each call, logon and replay included, so calls that share
      an operator never interleave.
    * Audits ``logon``, ``relogon``, ``logoff`` and ``auth_failed``; details never hold secrets.

    Args:
        base_url: The REST base, ending in ``/SYSPROWCFService/Rest``.
        operator: SYSPRO operator code (a dedicated integration operator).
        operator_password: The operator's password.
        company_id: Company to log on to.
        company_password: The company password; sent empty when None.
        audit: Where audit events go.
    """

    requires_response_body = True

    def __init__(
        self,
        base_url: str,
        operator: str,
        operator_password: str,
        company_id: str,
        company_password: str | None = None,
        *,
        audit: AuditHook = no_audit,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.operator = operator
        self.company_id = company_id
        self._operator_password = operator_password
        self._company_password = company_password or ""
        self._audit = audit
        self._lock = _operator_lock(self.base_url, operator)
        self.scrub = scrubber([operator_password, company_password])
        self.user_id: str | None = None

    @property
    def lock(self) -> threading.RLock:
        """The operator's lock (shared by every session of this operator on this server)."""
        return self._lock

    def _details(self, **more: Any) -> dict[str, Any]:
        return {"operator": self.operator, "company": self.company_id, **more}

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        with self._lock:
            if self.user_id is None:
                yield from self._logon(request)
            response = yield self._signed(request)
            if _says_session_invalid(response):
                # re-logon on "UserID is invalid", whatever the cause, then retry once.
                self.user_id = None
                self._audit("relogon", self._details(
                    reason="session invalid (expired, evicted or the service restarted)",
                    url=safe_url(request.url)))
                yield from self._logon(request)
                yield self._signed(request)

    def _signed(self, request: httpx.Request) -> httpx.Request:
        assert self.user_id is not None
        return httpx.Request(
            request.method,
            request.url.copy_set_param("UserId", self.user_id),
            headers=request.headers,
            extensions=request.extensions,  # keeps the client's timeouts
        )

    def _logon(self, request: httpx.Request) -> Iterator[httpx.Request]:
        # CompanyPassword is always sent, even empty ("strict about missing parameters").
        logon = httpx.Request(
            "GET",
            f"{self.base_url}/Logon",
            params={
                "Operator": self.operator,
                "OperatorPassword": self._operator_password,
                "CompanyId": self.company_id,
                "CompanyPassword": self._company_password,
            },
            extensions=request.extensions,
        )
        response = yield logon
        try:
            body = check_enet(response, scrub=self.scrub)
        except SourceAuthFailed as exc:
            self._audit("auth_failed", self._details(reason=str(exc), url=exc.url, status=exc.status))
            raise
        # an opaque token, upper-case hex + "00" + two trailing spaces; strip, never parse.
        token = body.decode("cp1252", "replace").strip()
        if not token or len(token) > 200 or any(ch.isspace() or ch in "<>&" for ch in token):
            raise SourceUnavailable("SYSPRO e.net Logon returned something that is not a session token",
                               url=safe_url(logon.url), status=response.status_code, source=SOURCE)
        self.user_id = token
        self._audit("logon", self._details(url=safe_url(logon.url)))

    def logoff(self, client: httpx.Client) -> None:
        """Release the session and its e.net licence; never raises."""
        with self._lock:
            if self.user_id is None:
                return
            user_id, self.user_id = self.user_id, None
            url = f"{self.base_url}/Logoff"
            try:
                response = client.get(url, params={"UserId": user_id}, auth=None)
                reply = response.content.decode("cp1252", "replace").strip()
                # "0" is success; anything else is a warning, never fatal.
                ok = response.status_code == 200 and reply == "0"
                self._audit("logoff", self._details(ok=ok, reply=self.scrub(reply[:120]),
                                                    url=safe_url(response.request.url)))
            except httpx.HTTPError as exc:
                self._audit("logoff", self._details(ok=False, reply=f"{type(exc).__name__}",
                                                    url=safe_url(url)))


def _says_session_invalid(response: httpx.Response) -> bool:
    if response.status_code != 200:
        return False
    head = response.content.lstrip()[:400]
    return head[:5].upper() == b"ERROR" and b"userid is invalid" in head.lower()


# --- COMFND queries and replies -------------------------------------------------------------------


def build_comfnd_query(table: str, columns: Sequence[str], where: Where, order: Sequence[str],
                       return_rows: int) -> str:
    """The ``XmlIn`` document of a COMFND query.

    ``where`` is an OR of AND-groups; each group becomes one bracketed run of ``<Expression>``
    elements joined with ``And``, and the groups are joined with ``Or``. Brackets never nest,
    so the query needs nothing beyond the single ``(``/``)`` of SYSPRO's own samples.
    """
    out = [
        '<Query xmlns:xsd="http://www.w3.org/2001/XMLSchema-instance" '
        'xsd:noNamespaceSchemaLocation="COMFND.XSD">',
        f"<TableName>{escape(table)}</TableName>",
        f"<ReturnRows>{int(return_rows)}</ReturnRows>",
        "<Columns>",
        *(f"<Column>{escape(c)}</Column>" for c in columns),
        "</Columns>",
    ]
    if where:
        out.append("<Where>")
        for g, group in enumerate(where):
            for n, (column, condition, value) in enumerate(group):
                andor = "" if g == 0 and n == 0 else f"<AndOr>{'Or' if n == 0 else 'And'}</AndOr>"
                open_ = "(" if n == 0 else ""
                close = ")" if n == len(group) - 1 else ""
                out.append(
                    f"<Expression>{andor}<OpenBracket>{open_}</OpenBracket>"
                    f"<Column>{escape(column)}</Column><Condition>{condition}</Condition>"
                    f"<Value>{escape(str(value))}</Value><CloseBracket>{close}</CloseBracket></Expression>"
                )
        out.append("</Where>")
    if order:
        out.append("<OrderBy>" + "".join(f"<Column>{escape(c)}</Column>" for c in order) + "</OrderBy>")
    out.append("</Query>")
    return "".join(out)


def _and(a: Where, b: Where) -> Where:
    """(a) AND (b), both in disjunctive normal form."""
    if not a:
        return b
    if not b:
        return a
    return [x + y for x in a for y in b]


def _keyset(order: Sequence[str], after: Sequence[Any], unique_first: bool) -> Where:
    """Rows after ``after`` in ``order``: ``c1 > a1`` or ``c1 = a1 and c2 > a2`` or …"""
    if unique_first:
        return [[(order[0], "GT", after[0])]]
    return [
        [(order[j], "EQ", after[j]) for j in range(i)] + [(order[i], "GT", after[i])]
        for i in range(len(order))
    ]


_DTD = re.compile(rb"<!DOCTYPE|<!ENTITY", re.I)
_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_ROW_CHUNK = re.compile(r"<Row\b[^>]*>.*?</Row\s*>", re.S | re.I)


@dataclass
class _Parsed:
    rows: list[dict[str, Any]]
    problems: list[tuple[Any, str]]
    row_count: int
    last: tuple[Any, ...] | None  # the last row's order values, for keyset paging


def _row_values(elem: ET.Element, canon: Mapping[str, str]) -> tuple[dict[str, Any] | None, str]:
    row: dict[str, Any] = {}
    for child in elem:
        if not isinstance(child.tag, str):
            continue
        # element casing can differ from the request; map back to our column names.
        name = canon.get(child.tag.lower(), child.tag)
        if len(child):
            return None, f"column {name} holds nested elements"
        if name in row:
            return None, f"column {name} appears twice"
        text = child.text or ""
        # an empty date may come back as 0000-00-00.
        row[name] = "" if text.strip() == "0000-00-00" else text
    return row, ""


def _salvage_order_values(chunk: str, order: Sequence[str]) -> tuple[Any, ...] | None:
    values = []
    for c in order:
        m = re.search(rf"<{re.escape(c)}>([^<]*)</{re.escape(c)}>", chunk, re.I)
        if m is None:
            return None
        values.append(m.group(1))
    return tuple(values)


def parse_comfnd_reply(body: bytes, table: str, columns: Sequence[str], order: Sequence[str],
                       *, url: str = "") -> _Parsed:
    """Rows of a COMFND reply: root = table name, one ``<Row>`` per record.

    Parsed from the raw bytes so the parser honours ``encoding="Windows-1252"``.
    A reply that declares a DTD is refused (no entity expansion, ever). If the document is
    ill-formed but complete (say one row holds a control character SQL let through), each
    ``<Row>`` is parsed alone and the bad ones become ``problems``; a reply cut short raises a
    transient ``SourceUnavailable`` instead, so no rows are silently lost.
    """
    if _DTD.search(body):
        raise SourceRefused("refusing an e.net reply that declares a DTD", url=url, source=SOURCE)
    canon = {c.lower(): c for c in columns}
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        return _salvage(body, table, canon, order, url, str(exc))
    if not isinstance(root.tag, str) or root.tag.lower() != table.lower():
        raise SourceRefused(f"SYSPRO e.net answered <{root.tag}> to a query on {table}", url=url, source=SOURCE)
    parsed = _Parsed([], [], 0, None)
    for elem in root:
        if not isinstance(elem.tag, str) or elem.tag.lower() != "row":
            continue
        parsed.row_count += 1
        row, reason = _row_values(elem, canon)
        if row is None:
            raw = ET.tostring(elem, encoding="unicode")[:500]
            parsed.problems.append((raw, reason))
            parsed.last = _salvage_order_values(raw, order)
        else:
            parsed.rows.append(row)
            parsed.last = tuple(row.get(c) for c in order) if all(c in row for c in order) else None
    return parsed


def _salvage(body: bytes, table: str, canon: Mapping[str, str], order: Sequence[str], url: str,
             error: str) -> _Parsed:
    m = _ENCODING.match(body)
    encoding = m.group(1).decode() if m else "utf-8"
    try:
        text = body.decode(encoding, "replace")
    except LookupError:
        text = body.decode("cp1252", "replace")
    if not re.search(rf"</{re.escape(table)}\s*>\s*$", text, re.I):
        raise SourceUnavailable(f"SYSPRO e.net reply is truncated or ill-formed ({error})", url=url, source=SOURCE)
    parsed = _Parsed([], [], 0, None)
    for chunk in _ROW_CHUNK.findall(text):
        parsed.row_count += 1
        try:
            row, reason = _row_values(ET.fromstring(chunk), canon)
        except ET.ParseError as exc:
            row, reason = None, f"row is not well-formed XML ({exc})"
        if row is None:
            parsed.problems.append((chunk[:500], reason))
            parsed.last = _salvage_order_values(chunk, order)
        else:
            parsed.rows.append(row)
            parsed.last = tuple(row.get(c) for c in order) if all(c in row for c in order) else None
    return parsed


# --- OData literals -----------------------------------------------------------------------------------


def odata_literal(value: Any) -> str:
    """A value as an OData v4 URL literal.

    Strings are quoted with ``'`` doubled (``O'Brien`` -> ``'O''Brien'``); dates become
    ``DateTimeOffset`` midnight UTC ( inferred); numbers stay bare; an int rowversion becomes
    a ``binary'…'`` literal.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        value = value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00Z"
    if isinstance(value, int):
        return "binary'" + base64.b64encode(value.to_bytes(8, "big")).decode() + "'"
    if isinstance(value, (Decimal, float)):
        return str(value)
    if value is None:
        return "null"
    return "'" + str(value).replace("'", "''") + "'"


def _odata_filter(where: Where) -> str:
    ops = {"EQ": "eq", "NE": "ne", "GT": "gt", "GE": "ge", "LT": "lt", "LE": "le"}
    groups = [
        " and ".join(f"{column} {ops[cond]} {value if isinstance(value, _OrderValue) else odata_literal(value)}"
                     for column, cond, value in group)
        for group in where
    ]
    if len(groups) == 1:
        return groups[0]
    return " or ".join(f"({g})" for g in groups)


# --- shared client machinery -----------------------------------------------------------------------------


@dataclass
class _RawPage:
    rows: list[dict[str, Any]]
    problems: list[tuple[Any, str]]
    url: str
    row_count: int
    next_token: str | None


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def rowversion_from_hex(value: Any) -> int:
    """A COMFND ``TimeStamp``: hexadecimal, in any case, with or without ``0x`` and leading zeros.

    Always hexadecimal, also when no letter occurs in it: ``0000000000100003`` is 1,048,579.
    """
    text = str(value).strip()
    digits = text[2:] if text[:2].lower() == "0x" else text
    if not digits or len(digits) > 16 or not set(digits) <= _HEX_DIGITS:
        raise ValueError(f"not a hexadecimal rowversion: {text[:40]!r}")
    return int(digits, 16)


def rowversion_from_base64(value: Any) -> int:
    """An OData ``Edm.Binary`` rowversion: base64 of its (at most) 8 bytes."""
    text = str(value).strip()
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise ValueError(f"not a base64 rowversion: {text[:40]!r}") from None
    if not 0 < len(raw) <= 8:
        raise ValueError(f"not an 8-byte rowversion: {text[:40]!r}")
    return int.from_bytes(raw, "big")


def _key_text(value: Any) -> str:
    # SQL Server compares char values ignoring trailing spaces; keys are opaque otherwise.
    return str(value).rstrip()


def _decimal(value: Any) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


class _SysproClient(ABC):
    """What both transports share: pages(), derived columns, the retry loop, the context manager."""

    source: ClassVar[str] = "syspro"
    TRANSPORT: ClassVar[str] = ""

    def __init__(
        self,
        company: str,
        *,
        audit: AuditHook,
        page_size: int,
        retry: RetryPolicy | None,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> None:
        if page_size < 1:
            raise ConfigError("page_size", "must be at least 1")
        self.company = company
        self._audit = audit
        self.page_size = page_size
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._lookups: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._closed = False
        self._server_time: datetime | None = None  # the ERP's clock at its last reply

    def _note_server_time(self, response: httpx.Response) -> None:
        try:
            when = parsedate_to_datetime(response.headers.get("Date", ""))
        except (TypeError, ValueError, IndexError):
            return
        self._server_time = when.astimezone(timezone.utc) if when.tzinfo else when.replace(tzinfo=timezone.utc)

    @property
    def entities(self) -> tuple[Entity, ...]:
        """The entity tuple whose cursors this transport can serve."""
        return entities_for(self.TRANSPORT)

    # -- the SourceClient interface --

    def pages(
        self,
        entity: Entity,
        *,
        since: CursorValue | None,
        until: CursorValue | None = None,
        limit: int | None = None,
    ) -> Iterator[Page]:
        """Rows of ``entity`` with cursor >= ``since`` and < ``until``, one ``Page`` per request.

        Rows come in cursor order (then key order), as raw column -> value dicts, with the
        derived ``@`` columns filled in. ``limit`` stops after that many rows.
        """
        if self._closed:
            raise SourceUnavailable("the SYSPRO client is closed", source="syspro")
        if limit is not None and limit <= 0:
            return
        cursor = entity.cursor
        where: Where = []
        if since is not None:
            where = _and(where, [[(cursor.column, "GE", self._cursor_value(cursor, since))]])
        if until is not None:
            where = _and(where, [[(cursor.column, "LT", self._cursor_value(cursor, until))]])
        # A rowversion is unique database-wide, so ordering by it alone is a total order; any
        # other cursor needs the key to break ties (keyset paging inferred).
        unique = cursor.kind == "rowversion"
        order = (cursor.column,) if unique else (cursor.column, *[k for k in entity.key if k != cursor.column])
        read: set[str] = set()
        for raw in self._scan(entity.table, source_columns(entity), where, order, unique, limit,
                              rowversion_first=unique):
            if unique:
                raw.rows = self._decode_rowversions(cursor.column, raw.rows, raw.problems)
            yield self._page(entity, raw)
            read.update("|".join(_key_text(r.get(k)) for k in entity.key) for r in raw.rows)
        if unique and since is not None and limit is None:
            yield from self._changed_children(entity, since, until, read)

    def _page(self, entity: Entity, raw: _RawPage) -> Page:
        self._derive(entity, raw.rows)
        return Page(rows=tuple(raw.rows), url=raw.url, next_token=raw.next_token, row_count=raw.row_count,
                    problems=tuple(raw.problems), server_time=self._server_time)

    def _changed_children(self, entity: Entity, since: CursorValue, until: CursorValue | None,
                          read: set[str]) -> Iterator[Page]:
        """Parents whose child rows changed in [since, until) while they did not (a PO line
        edited): read again, with the latest child rowversion as their cursor."""
        cursor = entity.cursor
        for d in derivations(entity):
            if not isinstance(d, Rollup) or d.changes is None or entity.key != (d.match,):
                continue
            where: Where = [[(d.changes, "GE", self._cursor_value(cursor, since))]]
            if until is not None:
                where = _and(where, [[(d.changes, "LT", self._cursor_value(cursor, until))]])
            changed: dict[str, Any] = {}  # parent key -> its value as SYSPRO sent it
            for raw in self._scan(d.table, (d.match, d.changes), where, (d.changes,), True, None,
                                  rowversion_first=True):
                for row in raw.rows:
                    k = _key_text(row.get(d.match))
                    if k and k not in read:
                        changed.setdefault(k, row[d.match])
            wanted = list(changed.values())
            for i in range(0, len(wanted), LOOKUP_CHUNK):
                parents: Where = [[(d.match, "EQ", v)] for v in wanted[i : i + LOOKUP_CHUNK]]
                for raw in self._scan(entity.table, source_columns(entity), parents, (d.match,), True, None):
                    raw.rows = self._decode_rowversions(cursor.column, raw.rows, raw.problems)
                    yield self._page(entity, raw)  # the rollup sets the cursor from the lines

    def close(self) -> None:
        """Release the connection (and, for e.net, the session); safe to call twice."""
        self._closed = True

    def __enter__(self) -> "_SysproClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _decode_rowversions(self, column: str, rows: list[dict[str, Any]],
                            problems: list[tuple[Any, str]]) -> list[dict[str, Any]]:
        """Rowversions as integers, read in this transport's wire format and no other: a
        guess from the characters would read most real values (no hex letter) as decimal."""
        kept = []
        for row in rows:
            value = row.get(column)
            if value is not None and str(value).strip():
                try:
                    row[column] = self._rowversion(value)
                except ValueError as exc:
                    problems.append((row, f"{column}: {exc}"))
                    continue
            kept.append(row)
        return kept

    # -- transport hooks --

    @abstractmethod
    def _rowversion(self, value: Any) -> int:
        """A ``TimeStamp`` value as this transport sends it, as an integer (or ValueError)."""

    @abstractmethod
    def _cursor_value(self, cursor: Cursor, value: CursorValue) -> Any:
        """A cursor value in this transport's literal form (COMFND text or an OData literal)."""

    @abstractmethod
    def _scan(self, table: str, columns: Sequence[str], where: Where, order: Sequence[str],
              unique_first: bool, limit: int | None, *, rowversion_first: bool = False) -> Iterator[_RawPage]:
        """Raw pages of ``table`` matching ``where`` in ``order`` (each transport pages its own way)."""

    # -- derived columns (entities.py: Lookup, Rollup, Period, SignSplit) --

    def _derive(self, entity: Entity, rows: list[dict[str, Any]]) -> None:
        for d in derivations(entity):
            if isinstance(d, Lookup):
                self._apply_lookup(d, rows)
            elif isinstance(d, Rollup):
                self._apply_rollup(d, rows, entity.cursor.column if entity.cursor.kind == "rowversion" else None)
            elif isinstance(d, Period):
                for r in rows:
                    r[d.column] = _period(r.get(d.year), r.get(d.month))
            elif isinstance(d, SignSplit):
                for r in rows:
                    v = _decimal(r.get(d.value))
                    r[d.debit_column] = str(v) if v is not None and v > 0 else None
                    r[d.credit_column] = str(-v) if v is not None and v < 0 else None

    def _match_values(self, match: str, rows: list[dict[str, Any]], known: Mapping[str, Any]) -> list[Any]:
        wanted: dict[str, Any] = {}
        for r in rows:
            v = r.get(match)
            if v is None or not str(v).strip():
                continue
            k = _key_text(v)
            if k not in known and k not in wanted:
                wanted[k] = v  # sent back exactly as received (keys may be padded)
        return list(wanted.values())

    def _apply_lookup(self, d: Lookup, rows: list[dict[str, Any]]) -> None:
        cache = self._lookups.setdefault((d.table, d.match, d.value), {})
        wanted = self._match_values(d.match, rows, cache)
        for i in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[i : i + LOOKUP_CHUNK]
            where: Where = [[(d.match, "EQ", v)] for v in chunk]
            # At most one row per value asked for: a reply holding all of them ends the read
            # without asking for the empty page that would otherwise prove it.
            for page in self._scan(d.table, (d.match, d.value), where, (d.match,), True, len(chunk)):
                for r in page.rows:
                    cache[_key_text(r.get(d.match))] = r.get(d.value)
            for v in chunk:
                cache.setdefault(_key_text(v), None)  # unknown supplier: remember, do not re-ask
        for r in rows:
            v = r.get(d.match)
            r[d.column] = None if v is None else cache.get(_key_text(v))

    def _apply_rollup(self, d: Rollup, rows: list[dict[str, Any]], rowversion: str | None = None) -> None:
        """Child counts and totals; with ``rowversion`` (the parent's cursor column) and a
        declared ``changes`` column, the parent's cursor also becomes the later of its own and
        its children's, so a watermark never sits below a line it has already accounted for."""
        wanted = self._match_values(d.match, rows, {})
        counts: dict[str, int] = {}
        totals: dict[str, Decimal | None] = {}
        newest: dict[str, int] = {}
        track = d.changes if rowversion else None
        for i in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[i : i + LOOKUP_CHUNK]
            where: Where = [[(d.match, "EQ", v)] for v in chunk]
            cols = tuple(dict.fromkeys((*d.order, d.quantity, d.price, *([track] if track else []))))
            for page in self._scan(d.table, cols, where, d.order, False, None):
                for r in page.rows:
                    k = _key_text(r.get(d.match))
                    counts[k] = counts.get(k, 0) + 1
                    if track and r.get(track) not in (None, ""):
                        with contextlib.suppress(ValueError):
                            newest[k] = max(newest.get(k, 0), self._rowversion(r[track]))
                    qty, price = _decimal(r.get(d.quantity)), _decimal(r.get(d.price))
                    if k in totals and totals[k] is None:
                        continue
                    if qty is None or price is None:
                        totals[k] = None  # one unreadable line makes the total unknown, not wrong
                    else:
                        totals[k] = (totals.get(k) or Decimal(0)) + qty * price
                # A child line that cannot be decoded also makes the total unknown.
                for raw, _reason in page.problems:
                    for v in chunk:
                        if isinstance(raw, str) and f">{_key_text(v)}<" in raw:
                            totals[_key_text(v)] = None
        cents = Decimal("0.01")
        for r in rows:
            v = r.get(d.match)
            if v is None:
                r[d.count_column] = r[d.total_column] = None
                continue
            k = _key_text(v)
            r[d.count_column] = str(counts.get(k, 0))
            total = totals.get(k, Decimal(0))
            # Whether MPrice is in the PO's currency for import orders is undocumented; shown as the PO's.
            r[d.total_column] = None if total is None else str(total.quantize(cents, rounding=ROUND_HALF_UP))
            if rowversion and k in newest and isinstance(r.get(rowversion), int) and newest[k] > r[rowversion]:
                r[rowversion] = newest[k]

    # -- the retry loop (idempotent reads only) --

    def _call(self, url: str, send: Callable[[], httpx.Response], parse: Callable[[httpx.Response], _T]) -> _T:
        """``parse(send())``, retried on transient failures within the policy's caps."""

        def once() -> _T:
            try:
                return parse(send())
            except httpx.TransportError as exc:
                # Connection refused or dropped, timeouts: the read never completed. No connection
                # at all means the server is not there for any other read either.
                kind = SourceUnreachable if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)) else \
                    SourceUnavailable
                raise kind(f"SYSPRO {self.TRANSPORT} request failed: {type(exc).__name__}", url=url,
                           source=SOURCE) from exc

        def audit_retry(error: SourceUnavailable, attempt: int, wait: float) -> None:
            self._audit("retry", {"url": url, "attempt": attempt, "wait": wait, "reason": str(error)})

        return retrying(once, policy=self._retry, sleep=self._sleep, clock=self._clock, on_retry=audit_retry)


def _period(year: Any, month: Any) -> str | None:
    y, m = _decimal(year), _decimal(month)
    if y is None or m is None or not (1 <= m <= 15):  # GL periods go up to 15 (GenHistory)
        return None
    return f"{int(y):04d}-{int(m):02d}"


def _with_default_path(base_url: str, default_path: str) -> str:
    """``base_url`` as given when it has a path; the reference's default path otherwise."""
    base = base_url.rstrip("/")
    return base if urlsplit(base).path not in ("", "/") else base + default_path


# --- e.net ----------------------------------------------------------------------------------------------------


class SysproEnetClient(_SysproClient):
    """SYSPRO over e.net Solutions REST, reading tables with COMFND.

    Args:
        base_url: ``https://host:port`` (``/SYSPROWCFService/Rest`` is added) or the full REST base.
        operator: A dedicated integration operator: a person logging on with the same code
            evicts our session.
        operator_password: The operator's password.
        company_id: The SYSPRO company (``EDU1``).
        company_password: The company password, if the company has one.
        verify: ``True``, a CA bundle path (self-signed servers) or an ``ssl.SSLContext``.
            Never off unless you pass ``False``.
        timeout: Seconds for connect/read/write/pool.
        audit: Receives ``logon``, ``relogon``, ``logoff``, ``auth_failed`` and ``retry`` events.
        page_size: ``ReturnRows`` per query; keep it modest, each call runs SYSPRO business
            logic on the ERP server.
        transport: An httpx transport (tests use ``simulators._http.mock_transport``).
        retry: The retry policy for transport blips.
        sleep: How to wait between retries (tests pass a recorder; nothing really sleeps).
        clock: Monotonic seconds, for the retry time cap.
    """

    TRANSPORT: ClassVar[str] = "enet"

    def __init__(
        self,
        base_url: str,
        operator: str,
        operator_password: str,
        company_id: str,
        company_password: str | None = None,
        *,
        verify: Verify = True,
        timeout: float = 30.0,
        audit: AuditHook = no_audit,
        page_size: int = DEFAULT_PAGE_SIZE,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(company_id, audit=audit, page_size=page_size, retry=retry, sleep=sleep, clock=clock)
        self.base_url = _with_default_path(base_url, ENET_PATH)
        self.session = SysproSession(self.base_url, operator, operator_password, company_id,
                                     company_password, audit=audit)
        self._http = httpx.Client(
            auth=self.session,
            verify=tls_verify(verify),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            event_hooks={"response": [self._note_server_time]},
        )

    def version(self) -> str:
        """``GetVersion``: the e.net service version; needs no session."""
        url = f"{self.base_url}/GetVersion"
        body = self._call(safe_url(url), lambda: self._http.get(url, auth=None),
                          lambda r: check_enet(r, scrub=self.session.scrub))
        return body.decode("cp1252", "replace").strip()

    def close(self) -> None:
        """Log off (always, also after a failed run) and close the connection pool."""
        if self._closed:
            return
        super().close()
        try:
            self.session.logoff(self._http)
        finally:
            self._http.close()

    def _rowversion(self, value: Any) -> int:
        return rowversion_from_hex(value)

    def _cursor_value(self, cursor: Cursor, value: CursorValue) -> Any:
        if cursor.kind == "rowversion":
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{cursor.column} is a rowversion cursor; got {value!r}")
            return f"{value:016X}"  # COMFND reads its own rendering back: 16 hex digits
        if isinstance(value, datetime):
            value = value.date()  # COMFND dates are CCYY-MM-DD
        if isinstance(value, date):
            return value.isoformat()
        raise TypeError(f"{cursor.column} is a {cursor.kind} cursor; got {value!r}")

    def _scan(self, table: str, columns: Sequence[str], where: Where, order: Sequence[str],
              unique_first: bool, limit: int | None, *, rowversion_first: bool = False) -> Iterator[_RawPage]:
        # Order columns must come back in every row, or the next page cannot be asked for.
        columns = tuple(dict.fromkeys((*columns, *order)))
        url = f"{self.base_url}/Query/Query"
        after: tuple[Any, ...] | None = None
        fetched = 0
        while True:
            return_rows = self.page_size if limit is None else min(self.page_size, limit - fetched)
            query_where = where if after is None else _and(where, _keyset(order, after, unique_first))
            params = {"BusinessObject": "COMFND",
                      "XmlIn": build_comfnd_query(table, columns, query_where, order, return_rows)}
            shown = safe_url(httpx.URL(url, params=params))

            def parse(response: httpx.Response) -> _Parsed:
                body = check_enet(response, scrub=self.session.scrub)
                return parse_comfnd_reply(body, table, columns, order, url=shown)

            parsed = self._call(shown, lambda: self._http.get(url, params=params), parse)
            fetched += parsed.row_count
            # Only an empty page ends the read: a server may cap a reply below ReturnRows, so a
            # short page proves nothing (COMFND has no offset; keyset paging asks for the rest).
            more = parsed.row_count > 0 and (limit is None or fetched < limit)
            next_token = None
            stuck: str | None = None
            if more:
                if rowversion_first and parsed.last is not None:
                    # The rowversion written back exactly as COMFND reads it, whatever it sent.
                    try:
                        parsed.last = (f"{rowversion_from_hex(parsed.last[0]):016X}", *parsed.last[1:])
                    except (ValueError, TypeError):
                        parsed.last = None
                if parsed.last is None or any(v is None for v in parsed.last):
                    stuck = f"cannot page past the last row of {table}: its {', '.join(order)} could not be read"
                elif parsed.last == after:
                    stuck = f"paging {table} did not advance past {parsed.last!r}"
                else:
                    next_token = json.dumps(list(parsed.last))
            if parsed.row_count or after is None:  # the empty page that ends a read is no page
                yield _RawPage(parsed.rows, parsed.problems, shown, parsed.row_count, next_token)
            if stuck:
                # The rows of this page are in; the ones after it cannot be asked for. Loudly.
                raise SourceRefused(stuck, url=shown, source=SOURCE)
            if not more:
                return
            after = parsed.last


# --- OData -----------------------------------------------------------------------------------------------------


class SysproODataClient(_SysproClient):
    """SYSPRO over the OData v4 service (SYSPRO 8 2021 R2+), Basic auth.

    Args:
        base_url: ``https://host`` (``/SYSPRO8Odata/SYSPROOData`` is added) or the full
            service root without the company.
        operator: Operator code configured for OData access.
        odata_password: The operator's OData password (not the e.net password).
        company: The company, placed in the path (``…/SYSPROOData/{company}/{table}``).
        verify: ``True``, a CA bundle path or an ``ssl.SSLContext``; never off by default.
        timeout: Seconds for connect/read/write/pool.
        audit: Receives ``auth_failed`` and ``retry`` events.
        page_size: ``$top`` per request, at most 5,000 (the service's cap).
        transport: An httpx transport, for tests.
        retry: The retry policy for transport blips.
        sleep: How to wait between retries.
        clock: Monotonic seconds, for the retry time cap.
    """

    TRANSPORT: ClassVar[str] = "odata"

    def __init__(
        self,
        base_url: str,
        operator: str,
        odata_password: str,
        company: str,
        *,
        verify: Verify = True,
        timeout: float = 30.0,
        audit: AuditHook = no_audit,
        page_size: int = DEFAULT_PAGE_SIZE,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(company, audit=audit, page_size=min(page_size, ODATA_MAX_ROWS), retry=retry,
                         sleep=sleep, clock=clock)
        self.base_url = _with_default_path(base_url, ODATA_PATH)
        self.operator = operator
        self._scrub = scrubber([odata_password])
        self._http = httpx.Client(
            auth=httpx.BasicAuth(operator, odata_password),
            verify=tls_verify(verify),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            headers={"Accept": "application/json", "OData-MaxVersion": "4.0"},
            event_hooks={"response": [self._note_server_time]},
        )

    def close(self) -> None:
        """Close the connection pool (OData has no session to release)."""
        if self._closed:
            return
        super().close()
        self._http.close()

    def _rowversion(self, value: Any) -> int:
        return rowversion_from_base64(value)

    def _cursor_value(self, cursor: Cursor, value: CursorValue) -> Any:
        return value  # odata_literal renders dates, timestamps and rowversions

    def _check(self, response: httpx.Response) -> dict[str, Any]:
        try:
            return check_odata(response, scrub=self._scrub)
        except SourceAuthFailed as exc:
            self._audit("auth_failed", {"operator": self.operator, "company": self.company,
                                        "reason": str(exc), "url": exc.url, "status": exc.status})
            raise

    def _scan(self, table: str, columns: Sequence[str], where: Where, order: Sequence[str],
              unique_first: bool, limit: int | None, *, rowversion_first: bool = False) -> Iterator[_RawPage]:
        """Pages by the server's ``@odata.nextLink`` while it sends one, else by keyset on
        ``order`` (never ``$skip``: a row deleted between two pages would shift every later row
        one place and the first of them would never be read). Only an empty page ends a keyset
        read, whatever cap the server puts on a reply."""
        url = f"{self.base_url}/{quote(self.company, safe='')}/{quote(table, safe='')}"
        columns = tuple(dict.fromkeys((*columns, *order)))
        after: tuple[Any, ...] | None = None
        next_link: str | None = None
        links = LinkGuard(url, source=SOURCE, what="SYSPRO OData")
        fetched = 0
        while True:
            top = self.page_size if limit is None else min(self.page_size, limit - fetched)
            if next_link is not None:
                request_url: httpx.URL = httpx.URL(next_link)
            else:
                query_where = where if after is None else _and(where, _keyset(order, after, unique_first))
                params: dict[str, str] = {"$select": ",".join(columns), "$orderby": ",".join(order),
                                          "$top": str(top)}
                if query_where:
                    params["$filter"] = _odata_filter(query_where)
                request_url = httpx.URL(url, params=params)
            shown = safe_url(request_url)
            doc = self._call(shown, lambda: self._http.get(request_url), self._check)
            rows: list[dict[str, Any]] = []
            problems: list[tuple[Any, str]] = []
            last: tuple[Any, ...] | None = None
            for item in doc["value"]:
                if not isinstance(item, dict):
                    problems.append((item, "row is not a JSON object"))
                    continue
                if all(c in item for c in order):
                    last = tuple(_OrderValue(item[c]) for c in order)
                nested = [k for k, v in item.items() if isinstance(v, (dict, list))]
                if nested:
                    problems.append((item, f"column {nested[0]} holds a nested value"))
                    continue
                rows.append({k: v for k, v in item.items() if not k.startswith("@")})
            count = len(doc["value"])
            if limit is not None and fetched + count > limit:
                keep = limit - fetched
                rows, count = rows[:keep], keep  # a server-chosen page can exceed our $top
            fetched += count
            link = doc.get("@odata.nextLink")
            done = limit is not None and fetched >= limit
            if not done and isinstance(link, str) and link:
                links.check(link, current=shown)
                yield _RawPage(rows, problems, shown, count, link)
                next_link = link
                continue
            more = not done and count > 0
            if more and (last is None or any(v.value is None for v in last)):
                raise SourceRefused(f"cannot page past the last row of {table}: its {', '.join(order)} could not "
                                   "be read", url=shown, source=SOURCE)
            if more and last == after:
                raise SourceRefused(f"paging {table} did not advance", url=shown, source=SOURCE)
            if count or (after is None and not links.followed):  # the empty page that ends a read is no page
                yield _RawPage(rows, problems, shown, count, json.dumps([v.value for v in last]) if more else None)
            if not more:
                return
            # After a server-driven run of pages, carry on by keyset from the last row seen.
            next_link, after = None, last


@dataclass(frozen=True)
class _OrderValue:
    """A value of an ``$orderby`` column as the reply gave it, written back into ``$filter``
    in the same form: a JSON date-time string stays an unquoted DateTimeOffset literal."""

    value: Any

    def __str__(self) -> str:
        v = self.value
        if isinstance(v, str) and _ODATA_DATETIME.fullmatch(v):
            return v
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)  # a JSON number; odata_literal would read an int as a rowversion
        if isinstance(v, str) and _BASE64_8.fullmatch(v) and v.endswith("="):
            return f"binary'{v}'"  # an Edm.Binary rowversion, as the reply gave it
        return odata_literal(v)


_BASE64_8 = re.compile(r"[A-Za-z0-9+/]{11}=")
_ODATA_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


# --- choosing a transport -------------------------------------------------------------------------------------


def connect(
    transport: str,
    *,
    base_url: str,
    operator: str,
    company: str,
    operator_password: str | None = None,
    company_password: str | None = None,
    odata_password: str | None = None,
    verify: Verify = True,
    timeout: float = 30.0,
    audit: AuditHook = no_audit,
    page_size: int | None = None,
    http_transport: httpx.BaseTransport | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SysproEnetClient | SysproODataClient:
    """Build the client for ``transport`` (``"enet"`` or ``"odata"``) from settings.

    e.net needs ``operator_password`` (and ``company_password`` if the company has one); OData
    needs ``odata_password``. ``client.entities`` is the matching entity tuple.

    Raises:
        ConfigError: unknown transport or a missing password (the path names the setting).
    """
    if transport == "enet":
        if operator_password is None:
            raise ConfigError("syspro.operator_password", "the e.net transport needs the operator password")
        return SysproEnetClient(
            base_url, operator, operator_password, company, company_password, verify=verify,
            timeout=timeout, audit=audit, page_size=page_size or DEFAULT_PAGE_SIZE, transport=http_transport,
            retry=retry, sleep=sleep,
        )
    if transport == "odata":
        if odata_password is None:
            raise ConfigError("syspro.odata_password", "the OData transport needs the operator's OData password")
        return SysproODataClient(
            base_url, operator, odata_password, company, verify=verify, timeout=timeout, audit=audit,
            page_size=page_size or DEFAULT_PAGE_SIZE, transport=http_transport, retry=retry, sleep=sleep,
        )
    raise ConfigError("syspro.transport", f"unknown transport {transport!r}; use 'enet' or 'odata'")
