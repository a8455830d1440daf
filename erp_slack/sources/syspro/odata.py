"""SYSPRO's OData v4 service: HTTP Basic auth with the operator's OData password,
``$filter/$orderby/$select/$top``, at most 5,000 rows a reply, paged by the server's nextLink
while it sends one and by keyset on (cursor, key) otherwise (never ``$skip``).
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Callable, ClassVar, Iterator, Sequence
from urllib.parse import quote

import httpx

from erp_slack.errors import (
    SourceAuthFailed,
    SourceRefused,
    SourceUnavailable,
)
from erp_slack.model import Cursor, CursorValue
from erp_slack.sources.base import AuditHook, no_audit
from erp_slack.sources.http import LinkGuard, RetryPolicy, Verify, safe_url, scrubber, tls_verify
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
    rowversion_from_base64,
    with_default_path,
)

__all__ = [
    "ODATA_PATH", "ODATA_MAX_ROWS", "check_odata", "odata_literal", "SysproODataClient",
]

ODATA_PATH = "/SYSPRO8Odata/SYSPROOData"  # the real base path is unknown, so it is overridable

ODATA_MAX_ROWS = 5000  # each OData response is capped at 5,000 rows


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
        raise http_status_error(response, "OData", url, scrub(detail))
    if looks_like_html(response):
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


def odata_literal(value: Any) -> str:
    """A value as an OData v4 URL literal.

    Strings are quoted with ``'`` doubled (``O'Brien`` -> ``'O''Brien'``); dates become
    ``DateTimeOffset`` midnight UTC (inferred); numbers stay bare; an int rowversion becomes
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


class SysproODataClient(SysproBaseClient):
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
        self.base_url = with_default_path(base_url, ODATA_PATH)
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
              unique_first: bool, limit: int | None, *, rowversion_first: bool = False) -> Iterator[RawPage]:
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
                query_where = where if after is None else and_where(where, keyset_where(order, after, unique_first))
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
                yield RawPage(rows, problems, shown, count, link)
                next_link = link
                continue
            more = not done and count > 0
            if more and (last is None or any(v.value is None for v in last)):
                raise SourceRefused(f"cannot page past the last row of {table}: its {', '.join(order)} could not "
                                   "be read", url=shown, source=SOURCE)
            if more and last == after:
                raise SourceRefused(f"paging {table} did not advance", url=shown, source=SOURCE)
            if count or (after is None and not links.followed):  # the empty page that ends a read is no page
                yield RawPage(rows, problems, shown, count, json.dumps([v.value for v in last]) if more else None)
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
