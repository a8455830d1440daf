"""SYSPRO e.net Solutions REST (``/SYSPROWCFService/Rest``): the session and the COMFND reads.

A session token from ``Logon`` rides on every call as ``UserId=``; the session is an
``httpx.Auth`` (``SysproSession``) that logs on lazily, logs on again once when SYSPRO says the
UserID is invalid, and logs off on ``close()``. Table reads go through ``Query/Query`` with the
``COMFND`` business object, paged by keyset (COMFND has no offset); errors come back as HTTP 200
bodies starting ``ERROR:``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Callable, ClassVar, Iterator, Mapping, Sequence
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

import httpx

from erp_slack.errors import (
    SourceAuthFailed,
    SourceRefused,
    SourceSessionExpired,
    SourceUnavailable,
)
from erp_slack.model import Cursor, CursorValue
from erp_slack.sources.base import AuditHook, no_audit
from erp_slack.sources.http import RetryPolicy, Verify, safe_url, scrubber, tls_verify
from erp_slack.sources.syspro.base import (
    DEFAULT_PAGE_SIZE,
    SOURCE,
    RawPage,
    SysproBaseClient,
    Where,
    and_where,
    http_status_error,
    keyset_where,
    looks_like_html,
    rowversion_from_hex,
    with_default_path,
)

__all__ = [
    "ENET_PATH", "check_enet", "SysproSession", "build_comfnd_query", "parse_comfnd_reply",
    "SysproEnetClient",
]

ENET_PATH = "/SYSPROWCFService/Rest"


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
        raise http_status_error(response, "e.net", url)
    if looks_like_html(response):
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


class SysproEnetClient(SysproBaseClient):
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
        self.base_url = with_default_path(base_url, ENET_PATH)
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
              unique_first: bool, limit: int | None, *, rowversion_first: bool = False) -> Iterator[RawPage]:
        # Order columns must come back in every row, or the next page cannot be asked for.
        columns = tuple(dict.fromkeys((*columns, *order)))
        url = f"{self.base_url}/Query/Query"
        after: tuple[Any, ...] | None = None
        fetched = 0
        while True:
            return_rows = self.page_size if limit is None else min(self.page_size, limit - fetched)
            query_where = where if after is None else and_where(where, keyset_where(order, after, unique_first))
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
                yield RawPage(parsed.rows, parsed.problems, shown, parsed.row_count, next_token)
            if stuck:
                # The rows of this page are in; the ones after it cannot be asked for. Loudly.
                raise SourceRefused(stuck, url=shown, source=SOURCE)
            if not more:
                return
            after = parsed.last
