"""What both SYSPRO transports share: the paging contract, derived columns (supplier names,
PO line roll-ups, periods, debit/credit), rowversion decoding and the retry of each read.

``SysproBaseClient.pages`` asks a transport's ``_scan`` for raw pages in (cursor, key) order and
turns them into ``Page`` objects; each transport only says how to ask (COMFND XML on e.net,
``$filter`` on OData) and how to read the reply. Filters are written once, as ``Where`` (OR of
AND-groups of ``(column, condition, value)``), and rendered by each transport.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, Callable, ClassVar, Iterator, Mapping, Sequence, TypeVar
from urllib.parse import urlsplit

import httpx

from erp_slack.errors import (
    ConfigError,
    SourceAuthFailed,
    SourceError,
    SourceRefused,
    SourceUnavailable,
    SourceUnreachable,
)
from erp_slack.model import Cursor, CursorValue, Entity, Page
from erp_slack.sources.base import AuditHook
from erp_slack.sources.http import RetryPolicy, retrying
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
    "DEFAULT_PAGE_SIZE", "LOOKUP_CHUNK", "looks_like_html", "http_status_error", "and_where", "keyset_where",
    "RawPage", "rowversion_from_hex", "rowversion_from_base64", "key_text", "to_decimal", "SysproBaseClient",
    "period_text", "with_default_path",
]

DEFAULT_PAGE_SIZE = 500  # rows per request unless the configuration says otherwise

LOOKUP_CHUNK = 10  # keys per lookup query: the XML travels in the URL, keep it short

SOURCE = "syspro"

_T = TypeVar("_T")

# (column, condition, value): conditions are COMFND's codes (EQ NE LT LE GT GE).
Condition = tuple[str, str, Any]

# A filter in disjunctive normal form: OR of AND-groups. [] means "no filter".
Where = list[list[Condition]]


def looks_like_html(response: httpx.Response) -> bool:
    """A proxy, IIS or load balancer error page instead of the service's reply."""
    head = response.content.lstrip()[:64].lower()
    return "text/html" in response.headers.get("content-type", "").lower() or head.startswith(
        (b"<!doctype html", b"<html")
    )


# What an HTTP status other than 200 means, per status; anything not listed is a refusal of the
# request itself, except 5xx (the server is in trouble: try again).
_STATUS_ERRORS: dict[int, type[SourceError]] = {
    401: SourceAuthFailed, 403: SourceAuthFailed, 408: SourceUnavailable, 429: SourceUnavailable,
}


def http_status_error(response: httpx.Response, api: str, url: str, detail: str = "") -> SourceError:
    status = response.status_code
    suffix = f": {detail}" if detail else ""
    kind = _STATUS_ERRORS.get(status, SourceUnavailable if status >= 500 else SourceRefused)
    if kind is SourceAuthFailed:
        return kind(f"SYSPRO {api} refused the credentials (HTTP {status}){suffix}", source=SOURCE, url=url,
                    status=status)
    if status == 404:
        suffix = f" (no such endpoint; check the base URL){suffix}"
    return kind(f"SYSPRO {api} answered HTTP {status}{suffix}", source=SOURCE, url=url, status=status)


def and_where(a: Where, b: Where) -> Where:
    """(a) AND (b), both in disjunctive normal form."""
    if not a:
        return b
    if not b:
        return a
    return [x + y for x in a for y in b]


def keyset_where(order: Sequence[str], after: Sequence[Any], unique_first: bool) -> Where:
    """Rows after ``after`` in ``order``: ``c1 > a1`` or ``c1 = a1 and c2 > a2`` or …"""
    if unique_first:
        return [[(order[0], "GT", after[0])]]
    return [
        [(order[j], "EQ", after[j]) for j in range(i)] + [(order[i], "GT", after[i])]
        for i in range(len(order))
    ]


@dataclass
class RawPage:
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


def key_text(value: Any) -> str:
    # SQL Server compares char values ignoring trailing spaces; keys are opaque otherwise.
    return str(value).rstrip()


def to_decimal(value: Any) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


class SysproBaseClient(ABC):
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
            where = and_where(where, [[(cursor.column, "GE", self._cursor_value(cursor, since))]])
        if until is not None:
            where = and_where(where, [[(cursor.column, "LT", self._cursor_value(cursor, until))]])
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
            read.update("|".join(key_text(r.get(k)) for k in entity.key) for r in raw.rows)
        if unique and since is not None and limit is None:
            yield from self._changed_children(entity, since, until, read)

    def _page(self, entity: Entity, raw: RawPage) -> Page:
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
                where = and_where(where, [[(d.changes, "LT", self._cursor_value(cursor, until))]])
            changed: dict[str, Any] = {}  # parent key -> its value as SYSPRO sent it
            for raw in self._scan(d.table, (d.match, d.changes), where, (d.changes,), True, None,
                                  rowversion_first=True):
                for row in raw.rows:
                    k = key_text(row.get(d.match))
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

    def __enter__(self) -> "SysproBaseClient":
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
              unique_first: bool, limit: int | None, *, rowversion_first: bool = False) -> Iterator[RawPage]:
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
                    r[d.column] = period_text(r.get(d.year), r.get(d.month))
            elif isinstance(d, SignSplit):
                for r in rows:
                    v = to_decimal(r.get(d.value))
                    r[d.debit_column] = str(v) if v is not None and v > 0 else None
                    r[d.credit_column] = str(-v) if v is not None and v < 0 else None

    def _match_values(self, match: str, rows: list[dict[str, Any]], known: Mapping[str, Any]) -> list[Any]:
        wanted: dict[str, Any] = {}
        for r in rows:
            v = r.get(match)
            if v is None or not str(v).strip():
                continue
            k = key_text(v)
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
                    cache[key_text(r.get(d.match))] = r.get(d.value)
            for v in chunk:
                cache.setdefault(key_text(v), None)  # unknown supplier: remember, do not re-ask
        for r in rows:
            v = r.get(d.match)
            r[d.column] = None if v is None else cache.get(key_text(v))

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
                    k = key_text(r.get(d.match))
                    counts[k] = counts.get(k, 0) + 1
                    if track and r.get(track) not in (None, ""):
                        with contextlib.suppress(ValueError):
                            newest[k] = max(newest.get(k, 0), self._rowversion(r[track]))
                    qty, price = to_decimal(r.get(d.quantity)), to_decimal(r.get(d.price))
                    if k in totals and totals[k] is None:
                        continue
                    if qty is None or price is None:
                        totals[k] = None  # one unreadable line makes the total unknown, not wrong
                    else:
                        totals[k] = (totals.get(k) or Decimal(0)) + qty * price
                # A child line that cannot be decoded also makes the total unknown.
                for raw, _reason in page.problems:
                    for v in chunk:
                        if isinstance(raw, str) and f">{key_text(v)}<" in raw:
                            totals[key_text(v)] = None
        cents = Decimal("0.01")
        for r in rows:
            v = r.get(d.match)
            if v is None:
                r[d.count_column] = r[d.total_column] = None
                continue
            k = key_text(v)
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


def period_text(year: Any, month: Any) -> str | None:
    y, m = to_decimal(year), to_decimal(month)
    if y is None or m is None or not (1 <= m <= 15):  # GL periods go up to 15 (GenHistory)
        return None
    return f"{int(y):04d}-{int(m):02d}"


def with_default_path(base_url: str, default_path: str) -> str:
    """``base_url`` as given when it has a path; the reference's default path otherwise."""
    base = base_url.rstrip("/")
    return base if urlsplit(base).path not in ("", "/") else base + default_path
