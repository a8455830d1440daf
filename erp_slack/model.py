"""Values that flow through the pipeline: Entity, Cursor, Record and Page.

An ``Entity`` is declarative data (which table, which key, which cursor, how columns map to
fields); a source client turns HTTP replies into ``Page`` objects of raw rows; ``normalise``
turns one raw row into a typed ``Record`` or raises ``BadRecord``. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from functools import cached_property
from types import MappingProxyType
from typing import Any, Literal, Mapping

from erp_slack.errors import BadRecord

__all__ = [
    "Cursor",
    "CursorKind",
    "CursorValue",
    "Entity",
    "Page",
    "Record",
    "normalise",
    "cursor_to_text",
    "cursor_from_text",
    "parse_cursor",
    "is_rowversion_text",
    "readable_watermark",
    "lower_bound",
    "FIELD_TYPES",
]

CursorKind = Literal["rowversion", "timestamp", "date"]
CursorValue = int | datetime | date
FIELD_TYPES: tuple[str, ...] = ("str", "decimal", "date", "datetime", "int", "bool")

# Longest text kept from one ERP field. Slack's limits are far lower; this only stops a 50 KB
# remark from bloating the outbox. The renderer truncates again to Block Kit limits.
MAX_FIELD_CHARS = 4000


@dataclass(frozen=True)
class Cursor:
    """How an entity's change watermark works.

    Attributes:
        column: Source column holding the cursor value.
        kind: ``rowversion`` (monotonic integer, catches updates), ``timestamp`` (aware UTC
            datetime) or ``date`` (date only, may be back-dated).
        lookback: How far before the stored watermark each poll starts again. Rows re-read
            inside the window are dropped by the outbox's (key, version) uniqueness.
    """

    column: str
    kind: CursorKind
    lookback: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if self.kind not in ("rowversion", "timestamp", "date"):
            raise ValueError(f"cursor {self.column}: unknown kind {self.kind!r}")
        if self.kind == "rowversion" and self.lookback:
            raise ValueError(f"cursor {self.column}: a rowversion cursor takes no lookback")


@dataclass(frozen=True)
class Entity:
    """One kind of ERP document we watch, as data.

    Attributes:
        source: ``syspro`` or ``gp``.
        name: Stable identifier used in state, audit rows and config (``ap_invoice``).
        title: What people call it (``Supplier invoice``).
        table: Source table (SYSPRO) or resource path (GP).
        key: Source columns that identify one document.
        cursor: The change watermark.
        fields: Output field name -> source column.
        types: Output field name -> one of ``FIELD_TYPES`` (default ``str``).
        required: Fields that must be present and non-empty, else the row is quarantined.
        labels: Field -> code -> label, for decoding status codes.
        template: Renderer template name.
        status_field: The field whose change makes an event a "status change".
        currency_field: Field holding the currency code, if any.
        amount_field: The field routing rules compare with ``min_amount``/``max_amount``, if any.
        party_field: The field holding the code of the document's party (supplier, vendor,
            customer), which routing rules filter with ``suppliers``/``exclude_suppliers``.
        default_currency: Currency shown when the row carries none.
        link: Optional format string for a link back into the ERP (fields as placeholders).
        watch: Fields whose change counts as a new version (default: every field but the cursor).
        optional: True for resources a site may not expose (a 404 skips the entity, audited).
        period_field: The document's own date that places it in an archive period (its posting
            or journal date), for rules with ``archive``.
        by_date: The same document read by a date column, for a backfill given dates when this
            entity's own cursor is not a date (a rowversion has no relation to the calendar).
        options: Source-specific options for the client, as that source's own typed value
            (``SysproOptions``, ``GpOptions``); None when the entity needs none.
    """

    source: str
    name: str
    title: str
    table: str
    key: tuple[str, ...]
    cursor: Cursor
    fields: Mapping[str, str]
    template: str
    types: Mapping[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    status_field: str | None = None
    currency_field: str | None = None
    amount_field: str | None = None
    party_field: str | None = None
    default_currency: str = ""
    link: str | None = None
    watch: tuple[str, ...] | None = None
    optional: bool = False
    by_date: "Entity | None" = None
    period_field: str | None = None
    options: Any = None

    def __post_init__(self) -> None:
        # Freeze the mappings so an Entity is a true value (hashable identity, no aliasing).
        for name in ("fields", "types", "labels"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    @property
    def columns(self) -> tuple[str, ...]:
        """Every source column the entity reads, key and cursor included."""
        cols = list(self.fields.values())
        for c in (*self.key, self.cursor.column):
            if c not in cols:
                cols.append(c)
        return tuple(cols)

    def field_for(self, column: str) -> str:
        """The output field name that holds ``column``."""
        for name, col in self.fields.items():
            if col == column:
                return name
        raise KeyError(f"{self.name}: no field maps column {column!r}")

    # Both are asked for once per row by ``normalise`` and the pipeline; an Entity never
    # changes, so each is worked out once (cached in the instance dict; a frozen dataclass
    # allows that because ``cached_property`` does not go through ``__setattr__``).

    @cached_property
    def version_fields(self) -> tuple[str, ...]:
        """Fields whose values make up the version hash."""
        if self.watch is not None:
            return self.watch
        cursor_field = self.field_for(self.cursor.column)
        return tuple(f for f in self.fields if f != cursor_field)

    @cached_property
    def _cursor_field(self) -> str:
        return self.field_for(self.cursor.column)

    @cached_property
    def _plan(self) -> tuple[tuple[str, str, str, bool, bool, Any], ...]:
        # Per field: (name, column, type, required?, labelled?, labels): what ``normalise`` looks
        # up for every field of every row, resolved once.
        return tuple(
            (name, col, self.types.get(name, "str"), name in self.required, name in self.labels,
             self.labels.get(name))
            for name, col in self.fields.items()
        )


def check_entities(entities: tuple[Entity, ...], templates: Mapping[str, Any]) -> None:
    """Validate an entity table at import time; each error names the entity and the field."""
    seen: set[tuple[str, str]] = set()
    for e in entities:
        where = f"entity {e.source}.{e.name}"
        if (e.source, e.name) in seen:
            raise ValueError(f"{where}: duplicate name")
        seen.add((e.source, e.name))
        cols = set(e.fields.values())
        for k in e.key:
            if k not in cols:
                raise ValueError(f"{where}: key column {k!r} is not in fields")
        if e.cursor.column not in cols:
            raise ValueError(f"{where}: cursor column {e.cursor.column!r} is not in fields")
        if e.template not in templates:
            raise ValueError(f"{where}: template {e.template!r} does not exist")
        for f, t in e.types.items():
            if f not in e.fields:
                raise ValueError(f"{where}: types names unknown field {f!r}")
            if t not in FIELD_TYPES:
                raise ValueError(f"{where}: field {f!r} has unknown type {t!r}")
        for f in (*e.required, *e.labels, *(e.watch or ())):
            if f not in e.fields:
                raise ValueError(f"{where}: unknown field {f!r}")
        for f in (e.status_field, e.currency_field, e.amount_field, e.party_field):
            if f is not None and f not in e.fields:
                raise ValueError(f"{where}: unknown field {f!r}")
        expected = {"rowversion": "int", "timestamp": "datetime", "date": "date"}[e.cursor.kind]
        cursor_type = e.types.get(e.field_for(e.cursor.column), "str")
        if cursor_type != expected:
            raise ValueError(f"{where}: cursor field must have type {expected!r}, not {cursor_type!r}")


@dataclass(frozen=True)
class Record:
    """One normalised ERP document version.

    ``key`` is the joined, trimmed key (``"00010|INV-1042"``); ``version`` is a hash of the
    watched fields, so the same document re-read is recognised and a changed one is not.
    """

    source: str
    company: str
    entity: str
    key: str
    version: str
    cursor: CursorValue
    fields: Mapping[str, Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))


@dataclass(frozen=True)
class Page:
    """One page of raw rows from a source.

    Attributes:
        rows: Raw rows: source column -> value as the API gave it (strings, numbers, None).
        url: The request URL with secrets removed, for logs and audit rows.
        next_token: Opaque token of the next page, or None on the last page.
        row_count: Rows the server returned (before any client-side filtering).
        problems: (raw row or None, reason) pairs the client could not even turn into a row.
        server_time: The ERP server's clock when it answered (its HTTP ``Date`` header, UTC),
            if it said. The pipeline caps time-based watermarks at the first page's
            ``server_time`` (or its own clock), so a row stamped in the future never moves
            the watermark past the moment the poll started.
    """

    rows: tuple[Mapping[str, Any], ...]
    url: str = ""
    next_token: str | None = None
    row_count: int = 0
    problems: tuple[tuple[Any, str], ...] = ()
    server_time: datetime | None = None


# --- value parsing -------------------------------------------------------------------------

# Control characters, the zero-width space, and bidi marks, embeddings, overrides and isolates
# (which can make text read backwards). Joiners (U+200C/D) stay: emoji sequences and some scripts need them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_MOJIBAKE_HINT = re.compile("[\u00c2\u00c3][\u0080-\u00bf]")


def clean_text(value: Any) -> str:
    """Text as people should read it: trimmed, NFC, no control or bidi-override characters.

    Windows-1252 bytes are decoded as such (SYSPRO and GP run on Windows code pages).
    """
    if type(value) is str and value.isascii() and value.isprintable():
        # Fast path for the common case (most ERP text): printable ASCII is already NFC and
        # holds no control, zero-width or bidi character and no CR, so only strip and cap apply.
        text = value.strip()
        return text if len(text) <= MAX_FIELD_CHARS else text[: MAX_FIELD_CHARS - 1] + "…"
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            value = value.decode("cp1252", errors="replace")
    text = unicodedata.normalize("NFC", str(value))
    text = _CONTROL.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    text = text.strip()
    if len(text) > MAX_FIELD_CHARS:
        text = text[: MAX_FIELD_CHARS - 1] + "…"
    return text


def _parse_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an amount")
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, float):
        d = Decimal(repr(value))
    else:
        text = str(value).strip().replace(",", "")
        try:
            d = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"not a number: {text[:40]!r}") from None
    if not d.is_finite():
        raise ValueError("not a finite number")
    if abs(d) >= Decimal("1e15"):
        raise ValueError(f"amount out of range: {d:.6E}")
    return d


_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ]00:00:00(?:\.0+)?(?:Z|[+-]00:?00)?)?$")


class _Placeholder(ValueError):
    """A value ERPs store to mean "no date": an optional field reads it as empty."""


# 1900-01-01 is GP's (and SQL Server's) empty date; 9999-12-31 a "never" placeholder.
_PLACEHOLDER_DATES = frozenset({date(1900, 1, 1), date(9999, 12, 31)})


def _parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    m = _DATE_RE.match(text)
    if not m:
        raise ValueError(f"not a date: {text[:40]!r}")
    try:
        d = date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise ValueError(f"invalid date: {text[:40]!r}") from None
    if d in _PLACEHOLDER_DATES:
        raise _Placeholder(text)
    if not (1900 < d.year < 9999):
        raise ValueError(f"date out of range: {text}")
    return d


def _parse_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value).strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a timestamp: {text[:40]!r}") from None
    # A naive timestamp from the ERP is UTC by contract (GP stores ModifiedDate in UTC).
    dt = dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
    if not (1900 < dt.year < 9999):
        raise ValueError(f"timestamp out of range: {dt.isoformat()}")
    return dt


# Compiled once: ``re.fullmatch(pattern, …)`` looks the pattern up in re's cache on every call.
_DECIMAL_INT = re.compile(r"[+-]?\d+")
_HEX_PREFIXED = re.compile(r"0[xX][0-9a-fA-F]+")


def _parse_int(value: Any) -> int:
    """Integers: decimal text, or hexadecimal written with ``0x``.

    Never a guess from the characters: ``0000000000100003`` is a decimal here. A source whose
    wire format is something else (SYSPRO's hexadecimal or base64 rowversions) converts its
    values to integers itself, because only it knows the format.
    """
    if isinstance(value, bool):
        raise ValueError("a boolean is not an integer")
    if isinstance(value, int):
        return _bounded(value)
    text = str(value).strip()
    if len(text) > 40:
        raise ValueError("integer too long")
    if _DECIMAL_INT.fullmatch(text):
        return _bounded(int(text))
    if _HEX_PREFIXED.fullmatch(text):
        return _bounded(int(text, 16))
    raise ValueError(f"not an integer: {text[:40]!r}")


def _bounded(n: int) -> int:
    # SQL Server rowversions are 8 bytes; nothing an ERP counts is larger.
    if abs(n) >= 2**64:
        raise ValueError("integer out of range")
    return n


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "y", "yes", "t"):
        return True
    if text in ("0", "false", "n", "no", "f", ""):
        return False
    raise ValueError(f"not a yes/no value: {text[:20]!r}")


_PARSERS = {
    "str": clean_text,
    "decimal": _parse_decimal,
    "date": _parse_date,
    "datetime": _parse_datetime,
    "int": _parse_int,
    "bool": _parse_bool,
}


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, bytes)) and not value.strip())


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


# ``json.dumps(..., sort_keys=True)`` builds a new encoder on every call; one shared encoder with
# the same options gives the same text (so the same hashes as ever) for less work per row.
_HASH_JSON = json.JSONEncoder(sort_keys=True)


def version_hash(values: Mapping[str, Any]) -> str:
    """A short stable hash of field values (order-independent)."""
    blob = _HASH_JSON.encode({k: _jsonable(v) for k, v in values.items()})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def normalise(entity: Entity, company: str, row: Mapping[str, Any]) -> Record:
    """Turn one raw row into a typed Record, or raise BadRecord naming the problem."""
    key_parts = []
    for col in entity.key:
        raw = row.get(col)
        if _empty(raw):
            raise BadRecord(entity.name, None, f"key column {col} is missing")
        part = clean_text(raw)
        if not any(unicodedata.category(c)[0] in "LNPS" for c in part):
            # Only invisible characters: two such keys would collapse into one document.
            raise BadRecord(entity.name, None, f"key column {col} has no visible characters")
        key_parts.append(part)
    key = "|".join(key_parts)
    if len(key) > 200:
        raise BadRecord(entity.name, key[:60] + "…", "key is longer than 200 characters")
    values: dict[str, Any] = {}
    # The hot loop of every poll and backfill: the per-field lookups are resolved once per
    # entity (``Entity._plan``) and ``_empty`` is inlined; what happens to each field is unchanged.
    for name, col, kind, required, labelled, labels in entity._plan:
        raw = row.get(col)
        if raw is None or (isinstance(raw, (str, bytes)) and not raw.strip()):
            if required:
                raise BadRecord(entity.name, key, f"{name} ({col}) is missing")
            values[name] = None
            continue
        try:
            value = _PARSERS[kind](raw)
        except _Placeholder as exc:
            if required or col == entity.cursor.column:
                raise BadRecord(entity.name, key, f"{name} ({col}): placeholder date {exc}") from None
            values[name] = None
            continue
        except ValueError as exc:
            raise BadRecord(entity.name, key, f"{name} ({col}): {exc}") from None
        if kind == "str" and labelled:
            value = labels.get(value, value)
        values[name] = value
    cursor_value = values.get(entity._cursor_field)
    if cursor_value is None:
        raise BadRecord(entity.name, key, f"cursor column {entity.cursor.column} is missing")
    version = version_hash({f: values.get(f) for f in entity.version_fields})
    return Record(entity.source, company, entity.name, key, version, cursor_value, values)


# --- cursor values as text (how the store keeps watermarks) ---------------------------------


def cursor_to_text(kind: CursorKind, value: CursorValue) -> str:
    """Serialise a cursor value for the watermarks table."""
    if kind == "rowversion":
        return str(int(value))  # type: ignore[arg-type]
    return value.isoformat()


def cursor_from_text(kind: CursorKind, text: str) -> CursorValue:
    """Inverse of ``cursor_to_text``."""
    if kind == "rowversion":
        return int(text)
    if kind == "date":
        return date.fromisoformat(text)
    return _parse_datetime(text)


def readable_watermark(value: Any) -> str:
    """A watermark as a person reads it: a rowversion in hex (as SYSPRO shows it), a time to
    the minute in UTC, a date as it is."""
    if value is None or value == "":
        return "—"
    text = str(value)
    if text.isdigit():
        return f"rowversion 0x{int(text):016X}"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return text
    return when.strftime("%Y-%m-%d %H:%M UTC") if "T" in text else text


def is_rowversion_text(text: str) -> bool:
    """Whether a bound a person wrote is a rowversion (a plain number or 0x… hex), not a date."""
    t = text.strip().lower()
    return t.lstrip("-").isdigit() or (t.startswith("0x") and len(t) > 2)


def parse_cursor(kind: CursorKind, value: Any) -> CursorValue:
    """Parse a cursor value given by a person (backfill ``since``/``until``)."""
    if kind == "rowversion":
        return _parse_int(value)
    if kind == "date":
        return _parse_date(str(value)[:10])
    return _parse_datetime(value)


def lower_bound(cursor: Cursor, watermark: CursorValue | None) -> CursorValue | None:
    """Where a poll starts (closed, ``>=``): the watermark minus the lookback, or for a
    rowversion the value after it — each rowversion is used by one row version only, so the
    row that set the watermark is not read again, and a quiet poll reads nothing."""
    if watermark is None:
        return None
    if cursor.kind == "rowversion":
        return watermark + 1  # type: ignore[operator]
    return watermark - cursor.lookback  # type: ignore[operator]
