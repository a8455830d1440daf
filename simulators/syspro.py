"""A loopback simulator of SYSPRO's two HTTP APIs, for tests, the demo and benchmarks.

It serves, from one plain object with its state on the instance:

* **e.net Solutions REST** under ``/SYSPROWCFService/Rest`` (``Logon``, ``Logoff``,
  ``GetVersion``, ``GetLogonProfile``, ``Query/Query`` with the ``COMFND`` business object), with
  SYSPRO's habits: every application error is an HTTP 200 body starting ``ERROR:``, one session
  per operator, an idle timeout on a clock the test controls;
* **SYSPRO OData v4** under ``/SYSPRO8Odata/SYSPROOData/{CompanyId}/{Table}`` with Basic auth,
  ``$filter/$select/$orderby/$top/$skip/$count`` and the 5,000-row cap;
* **test hooks** under ``/__sim/`` and the same controls as Python methods.

Where the reference marks a fact unknown (unknown) the behaviour is a constructor switch, and the
default is the reference's simulator proposal. The two choices that matter most:

* ``comfnd_timestamp=True``: COMFND can select and filter the ``TimeStamp`` rowversion, rendered as
  16 upper-case hex digits.
* ``odata_rowversion_filter=False``: OData returns ``TimeStamp`` as ``Edm.Binary`` (base64) but
  refuses ``gt/ge/lt/le`` on it, as ASP.NET OData over Entity Framework does (LINQ defines no
  ordering operators on ``byte[]``; EF Core issue #5936). ``eq``/``ne`` work.

Data: the seed of (company ``EDU1``) plus a few more suppliers and documents of the same
distributor, every row with a ``TimeStamp`` taken from one global rowversion counter that every
insert and update bumps. ``bulk_generate`` adds millions of *virtual* rows computed from their
index, so a benchmark never holds more than one page of them in memory.

Run it alone with ``python -m simulators.syspro --port 0``. It imports nothing from the project's
core (the import-linter contract in pyproject.toml).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import heapq
import json
import re
import secrets
import threading
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence
from urllib.parse import urlencode
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

from simulators._faults import COMMON_KINDS, Fault, FaultQueue
from simulators._http import Request, Response, json_response, serve_on_loopback

__all__ = ["SysproSimulator", "ENET_PREFIX", "ODATA_PREFIX", "INVALID_SESSION", "main"]

ENET_PREFIX = "/SYSPROWCFService/Rest"
ODATA_PREFIX = "/SYSPRO8Odata/SYSPROOData"

# the text is verified (WCF client); the REST framing "ERROR: " + text at HTTP 200 is.
INVALID_SESSION = (
    "ERROR: The supplied UserID is invalid. Either you were not logged in; or your session has "
    "expired. You will need to logon again."
)
_NOT_LICENSED = "ERROR: e.net exception 100000"  # prefix seen live (RECT); rest
_ENET_HEADERS = {"Content-Type": "application/octet-stream", "Server": "Microsoft-HTTPAPI/2.0"}
_ROOT_ATTRS = (
    "Language='05' Language2='EN' CssStyle='' DecFormat='1' DateFormat='01' Role='01' "
    "Version='{version}' OperatorPrimaryRole='   '"
)
_UTC = timezone.utc


# --- schema ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Col:
    """One column: ``kind`` is ``str``, ``dec`` (with ``scale``), ``date`` or ``ts`` (rowversion)."""

    name: str
    kind: str = "str"
    scale: int = 0


def _s(*names: str) -> list[_Col]:
    return [_Col(n) for n in names]


def _d(scale: int, *names: str) -> list[_Col]:
    return [_Col(n, "dec", scale) for n in names]


def _dt(*names: str) -> list[_Col]:
    return [_Col(n, "date") for n in names]


_TS = [_Col("TimeStamp", "ts")]

# Column names and types as SYSPRO's data dictionary and open-source integrations give them; only
# the columns the seed uses, in the order SYSPRO lists them, each table ending with TimeStamp.
_SCHEMA: dict[str, tuple[tuple[str, ...], list[_Col]]] = {
    "ApSupplier": (
        ("Supplier",),
        _s("Supplier", "SupplierName", "SupShortName", "Currency", "TermsCode", "Branch", "OnHold",
           "GrnMatchReqd") + _dt("DateSuppAdded") + _d(2, "CurrentBalance")
        + _s("Telephone", "Email") + _TS,
    ),
    "ApInvoice": (
        ("Supplier", "Invoice"),
        _s("Supplier", "Invoice", "Branch") + _dt("InvoiceDate", "JournalDate") + _d(0, "Journal")
        + _dt("DueDate") + _s("Reference")
        + _d(2, "OrigInvValue", "OrigDiscValue", "MthInvBal1", "MthInvBal2", "MthInvBal3")
        + _s("InvoiceStatus", "Currency", "PostCurrency") + _d(6, "ConvRate") + _s("MulDiv")
        + _d(6, "ExchangeRate") + _d(0, "InvoiceYear", "InvoiceMonth", "EntryNumber") + _TS,
    ),
    "ApInvoicePay": (
        ("Supplier", "Invoice", "EntryNumber"),
        _s("Supplier", "Invoice") + _d(0, "EntryNumber") + _s("TrnType") + _dt("JournalDate")
        + _d(0, "Journal") + _s("PaymentReference") + _d(2, "TrnValue") + _d(0, "TrnYear", "TrnMonth")
        + _d(2, "PostValue") + _s("PostCurrency", "PaymentNumber") + _TS,
    ),
    "PorMasterHdr": (
        ("PurchaseOrder",),
        _s("PurchaseOrder", "Supplier") + _dt("OrderEntryDate", "OrderDueDate")
        + _s("OrderStatus", "CancelledFlag") + _dt("DatePoCompleted")
        + _s("Buyer", "Warehouse", "Currency", "OrderType") + _d(6, "ExchangeRate") + _TS,
    ),
    "PorMasterDetail": (
        ("PurchaseOrder", "Line"),
        _s("PurchaseOrder") + _d(0, "Line") + _s("LineType", "MStockCode", "MStockDes", "MWarehouse",
                                                 "MOrderUom") + _d(6, "MOrderQty", "MReceivedQty")
        + _d(5, "MPrice") + _dt("MLatestDueDate", "MLastReceiptDat") + _s("MCompleteFlag", "MGlCode")
        + _TS,
    ),
    "SorMaster": (
        ("SalesOrder",),
        _s("SalesOrder", "Customer", "CustomerName", "OrderStatus") + _dt("OrderDate", "ReqShipDate")
        + _s("Currency", "CustomerPoNumber", "Salesperson", "Branch", "Warehouse") + _TS,
    ),
    "SorDetail": (
        ("SalesOrder", "SalesOrderLine"),
        _s("SalesOrder") + _d(0, "SalesOrderLine") + _s("MStockCode", "MStockDes", "MWarehouse")
        + _d(6, "MOrderQty", "MShipQty") + _d(5, "MPrice") + _TS,
    ),
    "GrnDetails": (
        ("Supplier", "Grn", "GrnSource", "Journal", "JournalEntry"),
        _s("Supplier", "Grn", "GrnSource") + _d(0, "Journal", "JournalEntry") + _s("PurchaseOrder")
        + _d(0, "PurchaseOrderLin") + _s("StockCode", "StockDescription", "Warehouse")
        + _d(6, "QtyReceived") + _d(2, "OrigGrnValue") + _s("DebitRecGlCode")
        + _d(0, "GrnYear", "GrnMonth") + _dt("OrigReceiptDate") + _s("PostCurrency")
        + _d(6, "ConvRate") + _s("MulDiv") + _TS,
    ),
    "GrnMatching": (
        ("Supplier", "Grn", "TransactionType", "Journal", "EntryNumber"),
        _s("Supplier", "Grn", "TransactionType") + _d(0, "Journal", "EntryNumber") + _s("Invoice")
        + _d(2, "MatchedValue") + _d(0, "MatchedYear", "MatchedMonth") + _TS,
    ),
    "ApJnlSummary": (
        ("TrnYear", "TrnMonth", "Journal", "EntryNumber"),
        _d(0, "TrnYear", "TrnMonth", "Journal", "EntryNumber") + _s("Supplier", "Invoice")
        + _dt("TrnDate") + _s("TransactionCode") + _d(2, "InvoiceValue") + _s("SupplierGlCode")
        + _d(0, "AnalysisEntry") + _TS,
    ),
    "ApJnlDistrib": (
        ("TrnYear", "TrnMonth", "Journal", "EntryNumber", "SubEntry"),
        _d(0, "TrnYear", "TrnMonth", "Journal", "EntryNumber", "SubEntry") + _s("ExpenseGlCode")
        + _d(2, "DistrValue") + _s("ExpenseType", "Reference") + _d(0, "AnalysisEntry") + _TS,
    ),
    "GenMaster": (
        ("Company", "GlCode"),
        _s("Company", "GlCode", "Description", "AccountType", "GlGroup")
        + _d(2, "CurrentBalance", "PtdDrValue", "PtdCrValue", "PrevPerEndBal") + _TS,
    ),
    "GenJournalDetail": (
        ("GlYear", "GlPeriod", "Journal", "EntryNumber"),
        _d(0, "GlYear", "GlPeriod", "Journal", "EntryNumber") + _s("EntryType", "GlCode", "Reference",
                                                                   "Comment")
        + _d(2, "EntryValue") + _dt("EntryDate") + _s("EntryPosted", "Company")
        + _dt("TransactionDate", "DocumentDate") + _d(0, "SubModJournal", "AnalysisEntry") + _TS,
    ),
    "InvWarehouse": (
        ("StockCode", "Warehouse"),
        _s("StockCode", "Warehouse") + _d(6, "QtyOnHand", "QtyAllocated", "QtyOnOrder")
        + _d(5, "UnitCost") + _dt("DateLastStockMove", "DateLastPurchase", "DateLastSale") + _TS,
    ),
}

# PO status codes, used for the bulk generator only.
_PO_STATUSES = ("0", "1", "4", "9")


# --- values ---------------------------------------------------------------------------------


def _to_date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if text in ("", "0000-00-00"):
        return None
    return date.fromisoformat(text[:10])


def _coerce(col: _Col, value: Any) -> Any:
    """A Python value for ``col`` from what a test or a JSON hook gave."""
    if col.kind == "str":
        return "" if value is None else str(value)
    if col.kind == "date":
        return _to_date(value)
    if col.kind == "ts":
        return int(value)
    if value is None or value == "":
        return None
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-col.scale), rounding=ROUND_HALF_UP)


def _sortable(value: Any) -> Any:
    # SQL Server ignores trailing spaces when it compares char values; NULL sorts first.
    if value is None:
        return (0,)
    if isinstance(value, str):
        return (1, value.rstrip())
    return (1, value)


class _Desc:
    """Reverses the order of a sort key (for ``Orderby="D"`` and ``desc``)."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: "_Desc") -> bool:
        return other.v < self.v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and self.v == other.v


# How COMFND may render a TimeStamp rowversion: the real rendering is not documented, so every
# plausible form is a switch (``timestamp_format``). All are hexadecimal; most real values have
# no hex letter in them at all (0000000000100003).
TIMESTAMP_FORMATS = {
    "hex": lambda v: f"{v:016X}",
    "hex-lower": lambda v: f"{v:016x}",
    "0x": lambda v: f"0x{v:016X}",
    "hex-short": lambda v: f"{v:X}",
}


def _render_enet(col: _Col, value: Any, pad: bool, ts_format: str = "hex") -> str:
    """How COMFND renders a value: dates CCYY-MM-DD, decimals at the column scale."""
    if value is None:
        return ""
    if col.kind == "date":
        return value.isoformat()
    if col.kind == "ts":
        return TIMESTAMP_FORMATS[ts_format](value)
    if col.kind == "dec":
        text = f"{value:.{col.scale}f}"
        return f"{text:>14}" if pad else text  # padding is unknown for COMFND
    return value


def _render_json(col: _Col, value: Any) -> str:
    """One OData JSON value; decimals stay exact numbers, dates carry Z."""
    if value is None:
        return "null"
    if col.kind == "date":
        return f'"{value.isoformat()}T00:00:00Z"'
    if col.kind == "ts":
        return '"' + base64.b64encode(value.to_bytes(8, "big")).decode() + '"'
    if col.kind == "dec":
        return f"{value:.{col.scale}f}"
    return json.dumps(value, ensure_ascii=False)


_EDM = {"str": "Edm.String", "dec": "Edm.Decimal", "date": "Edm.DateTimeOffset", "ts": "Edm.Binary"}


# --- tables and virtual (bulk) rows ----------------------------------------------------------


@dataclass
class _Bulk:
    """``count`` rows computed from their index: row ``i`` is ``make(i)``.

    ``monotone`` columns never decrease with ``i`` (so a range filter on them is a bisect), and
    the rows are already sorted by each sequence in ``orders`` (so a query in that order streams
    without sorting). ``gone`` holds indexes that were updated (now real rows) or deleted.
    """

    first_ts: int
    count: int
    make: Callable[[int], tuple]
    monotone: frozenset[str]
    orders: tuple[tuple[str, ...], ...]
    index_of: Callable[[tuple], int | None]
    gone: set[int] = field(default_factory=set)


class _Table:
    def __init__(self, name: str, key: tuple[str, ...], cols: list[_Col]) -> None:
        self.name = name
        self.key = key
        self.cols = cols
        self.pos = {c.name: i for i, c in enumerate(cols)}
        self.by_lower = {c.name.lower(): c for c in cols}
        self.key_pos = tuple(self.pos[k] for k in key)
        self.ts_pos = self.pos["TimeStamp"]
        self.rows: dict[tuple, tuple] = {}
        self.blocks: list[_Bulk] = []

    def col(self, name: str) -> _Col | None:
        # Column names resolve without regard to case, like SQL Server's default collation.
        return self.by_lower.get(name.lower())

    def key_of(self, row: Sequence[Any]) -> tuple:
        return tuple(_sortable(row[p]) for p in self.key_pos)

    def find(self, key: tuple) -> tuple[tuple | None, _Bulk | None, int | None]:
        """The row with this (sortable) key: (row, block, index) - block set for a virtual row."""
        row = self.rows.get(key)
        if row is not None:
            return row, None, None
        for blk in self.blocks:
            i = blk.index_of(key)
            if i is not None and i not in blk.gone:
                return blk.make(i), blk, i
        return None, None, None

    def count(self) -> int:
        return len(self.rows) + sum(b.count - len(b.gone) for b in self.blocks)

    def as_dict(self, row: Sequence[Any]) -> dict[str, Any]:
        return {c.name: row[i] for i, c in enumerate(self.cols)}


# --- filters: one tree for COMFND <Where> and OData $filter ----------------------------------

# A filter is a nested tuple: ("and", a, b) | ("or", a, b) | ("not", a) | ("true",)
# | ("cmp", column, op, value) with op in eq ne gt ge lt le | ("like", column, regex).


class _QueryError(Exception):
    """A query the simulator refuses; the message is what the API says."""


def _compile(node: tuple, table: _Table) -> Callable[[Sequence[Any]], bool]:
    kind = node[0]
    if kind == "true":
        return lambda row: True
    if kind == "and":
        a, b = _compile(node[1], table), _compile(node[2], table)
        return lambda row: a(row) and b(row)
    if kind == "or":
        a, b = _compile(node[1], table), _compile(node[2], table)
        return lambda row: a(row) or b(row)
    if kind == "not":
        a = _compile(node[1], table)
        return lambda row: not a(row)
    if kind == "like":
        pos, rx = table.pos[node[1]], node[2]
        return lambda row: row[pos] is not None and rx.fullmatch(str(row[pos]).rstrip()) is not None
    _, column, op, value = node
    pos = table.pos[column]
    conv = _row_converter(table.cols[pos], value)
    want = None if value is None else _sortable(value)[1]
    if want is None:
        # SQL: only "eq null" / "ne null" mean anything; other comparisons with NULL are false.
        if op == "eq":
            return lambda row: row[pos] is None
        if op == "ne":
            return lambda row: row[pos] is not None
        return lambda row: False
    test = _OPS[op]

    def check(row: Sequence[Any]) -> bool:
        v = row[pos]
        if v is None:
            return False
        return test(conv(v), want)

    return check


def _row_converter(col: _Col, value: Any) -> Callable[[Any], Any]:
    """How to bring a stored value to the literal's type (a date compared with a timestamp)."""
    if col.kind == "date" and isinstance(value, datetime):
        return lambda v: datetime(v.year, v.month, v.day, tzinfo=_UTC)
    if col.kind == "str":
        return lambda v: v.rstrip()
    return lambda v: v


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


def _index_range(node: tuple, table: _Table, blk: _Bulk) -> tuple[int, int]:
    """Indexes of ``blk`` that can match ``node`` (a superset), by bisecting monotone columns."""
    n = blk.count
    kind = node[0]
    if kind == "and":
        a, b = _index_range(node[1], table, blk), _index_range(node[2], table, blk)
        return max(a[0], b[0]), min(a[1], b[1])
    if kind == "or":
        a, b = _index_range(node[1], table, blk), _index_range(node[2], table, blk)
        spans = [s for s in (a, b) if s[0] < s[1]]
        if not spans:
            return 0, 0
        return min(s[0] for s in spans), max(s[1] for s in spans)
    if kind != "cmp" or node[1] not in blk.monotone or node[3] is None or node[2] == "ne":
        return 0, n
    _, column, op, value = node
    pos = table.pos[column]
    conv = _row_converter(table.cols[pos], value)
    want = _sortable(value)[1]
    if column == "TimeStamp":

        def at(i: int) -> Any:
            return blk.first_ts + i

    else:

        def at(i: int) -> Any:
            return conv(_sortable(blk.make(i)[pos])[1])

    lo = bisect.bisect_left(range(n), want, key=at)
    hi = bisect.bisect_right(range(n), want, key=at)
    return {"eq": (lo, hi), "ge": (lo, n), "gt": (hi, n), "lt": (0, lo), "le": (0, hi)}[op]


# --- COMFND ---------------------------------------------------------------------------------

_CONDITIONS = {"EQ": "eq", "NE": "ne", "LT": "lt", "LE": "le", "GT": "gt", "GE": "ge", "LIKE": "like"}


def _child(elem: ET.Element, name: str) -> ET.Element | None:
    for c in elem:
        if isinstance(c.tag, str) and c.tag.lower() == name.lower():
            return c
    return None


def _children(elem: ET.Element | None, name: str) -> list[ET.Element]:
    if elem is None:
        return []
    return [c for c in elem if isinstance(c.tag, str) and c.tag.lower() == name.lower()]


def _text(elem: ET.Element | None) -> str:
    return "" if elem is None or elem.text is None else elem.text


@dataclass
class _Comfnd:
    table: _Table
    columns: list[_Col]
    where: tuple
    order: list[tuple[str, bool]]
    order_echo: list[str]
    return_rows: int


def _like_regex(pattern: str) -> re.Pattern[str]:
    parts = [".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern.rstrip()]
    return re.compile("".join(parts), re.S)


def _parse_literal(col: _Col, text: str) -> Any:
    """A COMFND <Value> typed by its column; raises ValueError on a bad value."""
    if col.kind == "str":
        return text
    if col.kind == "date":
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            raise ValueError(text)
        return date.fromisoformat(text.strip())
    if col.kind == "ts":
        t = text.strip()
        if t.lower().startswith("0x"):
            t = t[2:]
        return int(t, 16)
    return Decimal(text.strip())


# --- the simulator --------------------------------------------------------------------------


@dataclass
class _Session:
    user_id: str
    operator: str
    company: str
    created: float
    last_active: float
    origin: str = "e.net"
    token: str = ""  # as handed out, trailing spaces included


FAULTS = (*COMMON_KINDS, "error_text")


class SysproSimulator:
    """SYSPRO e.net REST + OData on one object; state lives on the instance, guarded by a lock.

    Args:
        operators: Operator code -> ``{"password", "companies", "max_sessions", "odata_password"}``
            (defaults:, operator ``ENET01``).
        companies: Company id -> ``{"password", "name"}`` (default ``EDU1`` with no password).
        idle_timeout_seconds: Idle time after which a session is invalid (the real default is unknown).
        licence_seats_total: e.net seats across operators (unknown).
        clock: Monotonic seconds; ``advance()`` adds to it so tests never sleep.
        token_style: ``syspro7`` (32 hex + ``00`` + two spaces) or ``long``.
        accept_untrimmed_token: Accept the token with its trailing spaces (one open-source client relies on it).
        require_company_password: Refuse a Logon without the ``CompanyPassword`` parameter.
        version_string: ``GetVersion`` body. ``xml_version``: the ``Version`` attribute of replies.
        pad_numbers: Left-pad COMFND decimals (unknown).
        comfnd_conditions: Condition codes COMFND accepts (only EQ/NE are).
        comfnd_timestamp: COMFND exposes ``TimeStamp`` (unknown on a real system).
        odata_max_rows: OData page cap. ``odata_next_link``: emit ``@odata.nextLink``
            at the cap (unknown).
        odata_rowversion_filter: Allow ``gt/ge/lt/le`` on ``TimeStamp`` in ``$filter``.
        timestamp_format: How COMFND renders ``TimeStamp`` (``TIMESTAMP_FORMATS``: 16 upper-case
            hex digits, lower-case, ``0x``-prefixed, or without leading zeros); undocumented.
        first_rowversion: The rowversion counter's start; ``0x100000`` gives values with no hex
            letter, as most real ones are.
        comfnd_max_rows: A server-side cap below ``ReturnRows`` (undocumented whether one exists).
        business_date: "Today" for documents the control methods create.
        seed: Load the seed data.
    """

    def __init__(
        self,
        *,
        operators: Mapping[str, Mapping[str, Any]] | None = None,
        companies: Mapping[str, Mapping[str, Any]] | None = None,
        idle_timeout_seconds: float = 1200.0,
        licence_seats_total: int = 5,
        clock: Callable[[], float] = time.monotonic,
        token_style: str = "syspro7",
        accept_untrimmed_token: bool = True,
        require_company_password: bool = False,
        version_string: str = "8.0.0.0",
        xml_version: str = "8.0.021",
        pad_numbers: bool = False,
        comfnd_conditions: Iterable[str] = ("EQ", "NE", "LT", "LE", "GT", "GE", "LIKE"),
        comfnd_timestamp: bool = True,
        odata_max_rows: int = 5000,
        odata_next_link: bool = False,
        odata_rowversion_filter: bool = False,
        business_date: date = date(2024, 5, 31),
        seed: bool = True,
        timestamp_format: str = "hex",
        first_rowversion: int = 0x0A1F00,
        comfnd_max_rows: int | None = None,
    ) -> None:
        self._lock = threading.RLock()
        default_ops = {
            "ENET01": {"password": "secret", "companies": ["EDU1"], "max_sessions": 1,
                       "odata_password": "odata-secret"},
        }
        self.operators: dict[str, dict[str, Any]] = {
            k.upper(): dict(v) for k, v in (operators or default_ops).items()
        }
        self.companies: dict[str, dict[str, Any]] = {
            k.upper(): dict(v) for k, v in (companies or {"EDU1": {"password": "", "name": "EDU1 Outdoors"}}).items()
        }
        self.idle_timeout_seconds = idle_timeout_seconds
        self.licence_seats_total = licence_seats_total
        self._clock = clock
        self._skew = 0.0
        self.token_style = token_style
        self.accept_untrimmed_token = accept_untrimmed_token
        self.require_company_password = require_company_password
        self.version_string = version_string
        self.xml_version = xml_version
        self.pad_numbers = pad_numbers
        self.comfnd_conditions = {c.upper() for c in comfnd_conditions}
        self.comfnd_timestamp = comfnd_timestamp
        self.odata_max_rows = odata_max_rows
        self.odata_next_link = odata_next_link
        self.odata_rowversion_filter = odata_rowversion_filter
        self.business_date = business_date
        if timestamp_format not in TIMESTAMP_FORMATS:
            raise ValueError(f"timestamp_format must be one of {sorted(TIMESTAMP_FORMATS)}")
        self.timestamp_format = timestamp_format
        self.first_rowversion = first_rowversion
        self.comfnd_max_rows = comfnd_max_rows
        self.public_scheme = "http"  # set to "https" when served with TLS (absolute nextLinks)
        self._seed = seed
        self._sessions: dict[str, _Session] = {}
        self._faults: FaultQueue[Fault] = FaultQueue(FAULTS)
        self.counters: Counter[str] = Counter()
        self.request_log: deque[dict[str, Any]] = deque(maxlen=2000)
        self._streams: OrderedDict[tuple, tuple[int, Iterator[tuple]]] = OrderedDict()
        self._reset_data()

    # -- clock ------------------------------------------------------------------------------

    def now(self) -> float:
        """The simulator's monotonic clock (seconds), including ``advance()``."""
        return self._clock() + self._skew

    def advance(self, seconds: float) -> None:
        """Move the clock forward, e.g. past the idle timeout, without sleeping."""
        with self._lock:
            self._skew += seconds

    # -- data --------------------------------------------------------------------------------

    def _reset_data(self) -> None:
        self.tables = {name: _Table(name, key, cols) for name, (key, cols) in _SCHEMA.items()}
        self._rowversion = self.first_rowversion
        self._version = 0  # bumps on every write; invalidates cached OData streams
        self._next_invoice = 90001
        self._next_journal = 400
        self._next_grn = 200
        self._next_gl_journal = 20
        self._next_payment = 46
        self._bulk_serial = 0
        self._streams.clear()
        if self._seed:
            _load_seed(self)

    def reset(self) -> None:
        """Reload the seed, drop every session, fault and counter (``POST /__sim/reset``)."""
        with self._lock:
            self._sessions.clear()
            self._faults.clear()
            self.counters.clear()
            self.request_log.clear()
            self._skew = 0.0
            self._reset_data()

    @property
    def rowversion(self) -> int:
        """The last rowversion handed out (the database's ``@@DBTS``)."""
        return self._rowversion

    def _table(self, name: str) -> _Table:
        for t in self.tables.values():
            if t.name.lower() == name.lower():
                return t
        raise KeyError(f"unknown table {name!r}")

    def _key_tuple(self, table: _Table, key: Any) -> tuple:
        parts = key if isinstance(key, (tuple, list)) else (key,)
        if len(parts) != len(table.key):
            raise ValueError(f"{table.name} key is {table.key}, got {parts!r}")
        return tuple(_sortable(_coerce(table.cols[p], v)) for p, v in zip(table.key_pos, parts))

    def _write(self, table: _Table, values: dict[str, Any], *, ts: int | None = None) -> dict[str, Any]:
        """Insert or replace one row; every write takes the next rowversion."""
        if ts is None:
            self._rowversion += 1
            ts = self._rowversion
        else:
            self._rowversion = max(self._rowversion, ts)
        values = dict(values)
        values["TimeStamp"] = ts
        row = tuple(_coerce(c, values.get(c.name)) for c in table.cols)
        key = table.key_of(row)
        if any(k == (1, "") or k == (0,) for k in key):
            raise ValueError(f"{table.name}: key columns {table.key} must not be blank")
        _, blk, i = table.find(key)
        if blk is not None and i is not None:
            blk.gone.add(i)  # the virtual row becomes a real one
        table.rows.pop(key, None)
        table.rows[key] = row
        self._version += 1
        return table.as_dict(row)

    def upsert(self, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """Insert a row, or update the row with the same key (merging the given columns)."""
        with self._lock:
            t = self._table(table)
            given = {t.col(k).name if t.col(k) else k: v for k, v in row.items()}
            unknown = [k for k in given if k not in t.pos]
            if unknown:
                raise KeyError(f"{t.name} has no column(s) {unknown}")
            key = tuple(_sortable(_coerce(t.cols[t.pos[k]], given.get(k))) for k in t.key)
            existing, _, _ = t.find(key)
            merged = t.as_dict(existing) if existing is not None else {}
            merged.update(given)
            merged.pop("TimeStamp", None)
            return self._write(t, merged)

    def update(self, table: str, key: Any, **changes: Any) -> dict[str, Any]:
        """Change columns of one row (by key value or tuple); its TimeStamp moves on."""
        with self._lock:
            t = self._table(table)
            existing, _, _ = t.find(self._key_tuple(t, key))
            if existing is None:
                raise KeyError(f"{t.name}: no row with key {key!r}")
            merged = t.as_dict(existing)
            for k, v in changes.items():
                col = t.col(k)
                if col is None:
                    raise KeyError(f"{t.name} has no column {k!r}")
                merged[col.name] = v
            merged.pop("TimeStamp", None)
            return self._write(t, merged)

    def delete(self, table: str, key: Any) -> bool:
        """Remove one row, as a purge would (rowversion does not see deletes)."""
        with self._lock:
            t = self._table(table)
            k = self._key_tuple(t, key)
            existing, blk, i = t.find(k)
            if existing is None:
                return False
            if blk is not None and i is not None:
                blk.gone.add(i)
            else:
                del t.rows[k]
            self._version += 1
            return True

    def get(self, table: str, key: Any) -> dict[str, Any] | None:
        """One row as a dict, or None."""
        with self._lock:
            t = self._table(table)
            row, _, _ = t.find(self._key_tuple(t, key))
            return None if row is None else t.as_dict(row)

    def rows(self, table: str) -> list[dict[str, Any]]:
        """The real (non-virtual) rows of a table, in rowversion order."""
        with self._lock:
            t = self._table(table)
            return [t.as_dict(r) for r in sorted(t.rows.values(), key=lambda r: r[t.ts_pos])]

    def count(self, table: str) -> int:
        """Rows in a table, virtual ones included."""
        with self._lock:
            return self._table(table).count()

    # -- business events (what happens in a real company) --------------------------------------

    def insert_invoice(
        self,
        *,
        supplier: str = "0000001",
        invoice: str | None = None,
        amount: Any = "100.00",
        invoice_date: Any = None,
        journal_date: Any = None,
        due_date: Any = None,
        reference: str = "",
        post_journal: bool = True,
        **columns: Any,
    ) -> dict[str, Any]:
        """Capture a supplier invoice; also posts its AP journal entry (ApJnlSummary).

        Dates default to ``business_date``; the currency and branch come from the supplier.
        Returns the ApInvoice row.
        """
        with self._lock:
            sup = self.get("ApSupplier", supplier) or {}
            jdate = _to_date(journal_date) or self.business_date
            idate = _to_date(invoice_date) or jdate
            terms = int(str(sup.get("TermsCode") or "30").strip() or 30)
            if invoice is None:
                invoice = f"INV-{self._next_invoice:05d}"
                self._next_invoice += 1
            self._next_journal += 1
            journal = self._next_journal
            currency = sup.get("Currency") or "$"
            rate = "1.000000" if currency == "$" else "0.920000"
            row = {
                "Supplier": supplier, "Invoice": invoice, "Branch": sup.get("Branch", "10"),
                "InvoiceDate": idate, "JournalDate": jdate, "Journal": journal,
                "DueDate": _to_date(due_date) or idate + timedelta(days=terms),
                "Reference": reference, "OrigInvValue": amount, "OrigDiscValue": 0,
                "MthInvBal1": amount, "MthInvBal2": 0, "MthInvBal3": 0, "InvoiceStatus": "",
                "Currency": currency, "PostCurrency": currency, "ConvRate": rate, "MulDiv": "M",
                "ExchangeRate": rate, "InvoiceYear": jdate.year, "InvoiceMonth": jdate.month,
                "EntryNumber": 1,
            }
            row.update(columns)
            out = self.upsert("ApInvoice", row)
            if post_journal:
                self.upsert("ApJnlSummary", {
                    "TrnYear": jdate.year, "TrnMonth": jdate.month, "Journal": journal,
                    "EntryNumber": 1, "Supplier": supplier, "Invoice": invoice, "TrnDate": jdate,
                    "TransactionCode": "I", "InvoiceValue": amount, "SupplierGlCode": "20-2100",
                    "AnalysisEntry": 0,
                })
            return out

    def insert_invoices_on(self, day: Any, n: int, **kwargs: Any) -> list[dict[str, Any]]:
        """Capture ``n`` invoices that all carry the same journal date (same-date cursor ties)."""
        d = _to_date(day)
        with self._lock:
            return [self.insert_invoice(journal_date=d, **kwargs) for _ in range(n)]

    def insert_backdated_invoice(self, days_back: int = 10, **kwargs: Any) -> dict[str, Any]:
        """Capture an invoice dated ``days_back`` days before ``business_date`` (back-dated supplier documents are common)."""
        d = self.business_date - timedelta(days=days_back)
        kwargs.setdefault("invoice_date", d)
        kwargs.setdefault("journal_date", d)
        return self.insert_invoice(**kwargs)

    def pay_invoice(self, supplier: str, invoice: str, amount: Any = None, *,
                    on: Any = None) -> dict[str, Any]:
        """Pay an invoice: MthInvBal1 goes down (an update only TimeStamp sees)."""
        with self._lock:
            inv = self.get("ApInvoice", (supplier, invoice))
            if inv is None:
                raise KeyError(f"no invoice {supplier}/{invoice}")
            balance = inv["MthInvBal1"] or Decimal(0)
            pay = balance if amount is None else Decimal(str(amount))
            day = _to_date(on) or self.business_date
            entry = max([r["EntryNumber"] for r in self.rows("ApInvoicePay")
                         if r["Supplier"] == supplier and r["Invoice"] == invoice] or [Decimal(1)]) + 1
            self._next_journal += 1
            self.upsert("ApInvoicePay", {
                "Supplier": supplier, "Invoice": invoice, "EntryNumber": entry, "TrnType": "P",
                "JournalDate": day, "Journal": self._next_journal,
                "PaymentReference": f"EFT{self._next_payment:06d}", "TrnValue": -pay,
                "TrnYear": day.year, "TrnMonth": day.month, "PostValue": -pay,
                "PostCurrency": inv["Currency"], "PaymentNumber": f"{self._next_payment:06d}",
            })
            self._next_payment += 1
            return self.update("ApInvoice", (supplier, invoice), MthInvBal1=balance - pay)

    def set_po_status(self, po: str, status: str) -> dict[str, Any]:
        """Move a purchase order to another OrderStatus code."""
        changes: dict[str, Any] = {"OrderStatus": status}
        if status == "9":
            changes["DatePoCompleted"] = self.business_date
        if status == "*":
            changes["CancelledFlag"] = "Y"
        return self.update("PorMasterHdr", po, **changes)

    def add_po_line(self, po: str, *, stock_code: str, description: str, qty: Any, price: Any,
                    warehouse: str = "FG") -> dict[str, Any]:
        """Add a merchandise line; the header is touched too (NextDetailLine), so it moves on."""
        with self._lock:
            hdr = self.get("PorMasterHdr", po)
            if hdr is None:
                raise KeyError(f"no purchase order {po}")
            lines = [r["Line"] for r in self.rows("PorMasterDetail") if r["PurchaseOrder"] == po]
            row = self.upsert("PorMasterDetail", {
                "PurchaseOrder": po, "Line": max(lines or [Decimal(0)]) + 1, "LineType": "1",
                "MStockCode": stock_code, "MStockDes": description, "MWarehouse": warehouse,
                "MOrderUom": "EA", "MOrderQty": qty, "MReceivedQty": 0, "MPrice": price,
                "MLatestDueDate": hdr["OrderDueDate"], "MLastReceiptDat": None,
                "MCompleteFlag": "", "MGlCode": "",
            })
            self.update("PorMasterHdr", po)
            return row

    def receive_goods(self, po: str, line: int, qty: Any, *, grn: str | None = None,
                      on: Any = None) -> dict[str, Any]:
        """Receive stock against a PO line: a GrnDetails row and the line's MReceivedQty."""
        with self._lock:
            hdr = self.get("PorMasterHdr", po)
            det = self.get("PorMasterDetail", (po, line))
            if hdr is None or det is None:
                raise KeyError(f"no purchase order line {po}/{line}")
            day = _to_date(on) or self.business_date
            qty_d = Decimal(str(qty))
            if grn is None:
                grn = f"{self._next_grn:06d}"
                self._next_grn += 1
            self._next_journal += 1
            self.update("PorMasterDetail", (po, line), MReceivedQty=det["MReceivedQty"] + qty_d,
                        MLastReceiptDat=day)
            return self.upsert("GrnDetails", {
                "Supplier": hdr["Supplier"], "Grn": grn, "GrnSource": "P", "Journal": self._next_journal,
                "JournalEntry": 1, "PurchaseOrder": po, "PurchaseOrderLin": line,
                "StockCode": det["MStockCode"], "StockDescription": det["MStockDes"],
                "Warehouse": det["MWarehouse"], "QtyReceived": qty_d,
                "OrigGrnValue": (qty_d * det["MPrice"]), "DebitRecGlCode": "20-1300",
                "GrnYear": day.year, "GrnMonth": day.month, "OrigReceiptDate": day,
                "PostCurrency": hdr["Currency"], "ConvRate": hdr["ExchangeRate"], "MulDiv": "M",
            })

    def insert_gl_journal(self, entries: Sequence[tuple[str, Any, str]], *, on: Any = None,
                          reference: str = "JNL", posted: bool = True) -> list[dict[str, Any]]:
        """Post a GL journal: ``entries`` are (GlCode, EntryValue, Comment); debits positive."""
        with self._lock:
            day = _to_date(on) or self.business_date
            self._next_gl_journal += 1
            out = []
            for n, (gl, value, comment) in enumerate(entries, start=1):
                out.append(self.upsert("GenJournalDetail", {
                    "GlYear": day.year, "GlPeriod": day.month, "Journal": self._next_gl_journal,
                    "EntryNumber": n, "EntryType": "N", "GlCode": gl, "Reference": reference,
                    "Comment": comment, "EntryValue": value, "EntryDate": day,
                    "EntryPosted": "Y" if posted else "N", "Company": "EDU1", "TransactionDate": day,
                    "DocumentDate": day, "SubModJournal": 0, "AnalysisEntry": 0,
                }))
            return out

    # -- benchmarks: virtual rows --------------------------------------------------------------

    def bulk_generate(self, table: str, n: int, *, start: Any = date(2024, 6, 1),
                      per_day: int = 1000) -> dict[str, Any]:
        """Add ``n`` virtual rows to ApInvoice, PorMasterHdr, GrnDetails, ApJnlSummary or
        GenJournalDetail, ``per_day`` of them per date from ``start``.

        The rows are computed from their index when a query reaches them, so a million rows
        cost a few hundred bytes. They take a contiguous block of rowversions. Bulk purchase
        orders have no detail lines. Returns the block's first and last TimeStamp.
        """
        with self._lock:
            t = self._table(table)
            maker = _BULK_MAKERS.get(t.name)
            if maker is None:
                raise KeyError(f"bulk_generate does not support {t.name}")
            self._bulk_serial += 1
            first = self._rowversion + 1
            self._rowversion += n
            blk = maker(t, self._bulk_serial, first, n, _to_date(start) or date(2024, 6, 1),
                        max(1, per_day), self)
            t.blocks.append(blk)
            self._version += 1
            return {"table": t.name, "rows": n, "first_timestamp": first, "last_timestamp": first + n - 1}

    # -- sessions ------------------------------------------------------------------------------

    def sessions(self) -> list[dict[str, Any]]:
        """Open sessions (lets tests assert that a client always logs off)."""
        with self._lock:
            now = self.now()
            return [
                {"user_id": s.user_id, "operator": s.operator, "company": s.company,
                 "origin": s.origin, "idle_seconds": round(now - s.last_active, 3)}
                for s in self._sessions.values()
            ]

    def expire_sessions(self, user_id: str | None = None) -> int:
        """Forget one session (by UserId) or all of them: the next call gets "UserID is invalid"."""
        with self._lock:
            if user_id is None:
                n = len(self._sessions)
                self._sessions.clear()
                return n
            return 1 if self._sessions.pop(user_id.rstrip(), None) else 0

    def evict(self, operator: str) -> str:
        """A person logs on at the desktop as ``operator``: the integration's session dies."""
        with self._lock:
            op = operator.upper()
            s = self._open_session(op, (self.operators.get(op, {}).get("companies") or ["EDU1"])[0],
                                   origin="desktop")
            return s.user_id

    def set_password(self, operator: str, password: str | None = None, *,
                     odata_password: str | None = None) -> None:
        """Change an operator's e.net and/or OData password."""
        with self._lock:
            op = self.operators.setdefault(operator.upper(), {"companies": list(self.companies),
                                                              "max_sessions": 1})
            if password is not None:
                op["password"] = password
            if odata_password is not None:
                op["odata_password"] = odata_password

    def set_company_password(self, company: str, password: str) -> None:
        """Change a company's password."""
        with self._lock:
            self.companies.setdefault(company.upper(), {})["password"] = password

    def _new_token(self) -> str:
        if self.token_style == "long":
            return "SYS" + secrets.token_hex(32).upper()
        # 32 upper-case hex digits, then "00", then two spaces.
        return secrets.token_hex(16).upper() + "00  "

    def _open_session(self, operator: str, company: str, *, origin: str = "e.net") -> _Session:
        now = self.now()
        max_sessions = int(self.operators.get(operator, {}).get("max_sessions", 1))
        mine = sorted((s for s in self._sessions.values() if s.operator == operator),
                      key=lambda s: s.created)
        # one session per operator; the new logon kills the oldest.
        while len(mine) >= max_sessions:
            self._sessions.pop(mine.pop(0).user_id, None)
        if len(self._sessions) >= self.licence_seats_total:
            idle = [s for s in self._sessions.values() if now - s.last_active > self.idle_timeout_seconds]
            if not idle:
                raise _QueryError("ERROR: The maximum number of e.net licensed users has been exceeded")
            self._sessions.pop(max(idle, key=lambda s: now - s.last_active).user_id)
        token = self._new_token()
        s = _Session(token.rstrip(), operator, company, now, now, origin, token)
        self._sessions[s.user_id] = s
        return s

    def _session(self, user_id: str | None) -> _Session:
        if user_id is None:
            raise _QueryError(INVALID_SESSION)
        uid = user_id.rstrip() if self.accept_untrimmed_token else user_id
        s = self._sessions.get(uid)
        if s is None or (not self.accept_untrimmed_token and user_id != s.token):
            raise _QueryError(INVALID_SESSION)
        now = self.now()
        if now - s.last_active > self.idle_timeout_seconds:
            del self._sessions[uid]
            raise _QueryError(INVALID_SESSION)
        s.last_active = now  # every business-object call refreshes the idle clock
        return s

    # -- faults ---------------------------------------------------------------------------------

    def inject(self, kind: str, *, times: int = 1, path: str | None = None, status: int = 503,
               text: str = "ERROR: e.net exception 100000", seconds: float = 1.0) -> None:
        """Make the next ``times`` matching calls fail (``simulators/_faults.py`` says what each
        kind does): ``status``, ``html``, ``truncated``, ``drop``, ``delay``, or ``error_text``
        (HTTP 200 with ``text``, e.net's way of failing). ``path`` matches an endpoint name such
        as ``Logon``, ``Query/Query`` or ``odata`` (case-insensitive); None matches every call.
        """
        self._faults.add(Fault(kind, times, path, status, seconds, text))

    def clear_faults(self) -> None:
        """Remove every pending fault."""
        self._faults.clear()

    def _take_fault(self, endpoint: str) -> Fault | None:
        return self._faults.take(lambda f: f.path is None or f.path.lower() == endpoint.lower()
                                 or (f.path.lower() == "odata" and endpoint.startswith("odata")))

    def reset_counters(self) -> None:
        """Zero the per-endpoint request counters and the request log."""
        with self._lock:
            self.counters.clear()
            self.request_log.clear()

    # -- HTTP entry point -------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one HTTP request (called by ``serve_on_loopback`` or ``mock_transport``)."""
        path = request.path
        low = path.lower()
        with self._lock:
            if low.startswith("/__sim"):
                try:
                    return self._control(request, path[len("/__sim"):])
                except (KeyError, ValueError, TypeError) as exc:
                    return json_response({"error": str(exc)}, 400)
            if low.startswith(ENET_PREFIX.lower()):
                endpoint = _enet_endpoint(path[len(ENET_PREFIX):])
                handler: Callable[[], Response] = lambda: self._enet(request, endpoint)  # noqa: E731
            elif low.startswith(ODATA_PREFIX.lower()):
                rest = path[len(ODATA_PREFIX):].strip("/")
                endpoint = "odata:" + (rest.split("/", 1)[1] if "/" in rest else rest)
                handler = lambda: self._odata(request, rest)  # noqa: E731
            else:
                return Response(404, b"Endpoint not found.", {"Content-Type": "text/html"})
            self.counters[endpoint] += 1
            self.request_log.append({"method": request.method, "endpoint": endpoint,
                                     "query": _redact(request.query)})
            fault = self._take_fault(endpoint)
            if fault is None:
                return handler()
            return self._faulty(fault, handler)

    def _faulty(self, fault: Fault, handler: Callable[[], Response]) -> Response:
        if fault.kind == "error_text":
            return Response(200, fault.text.encode("cp1252", "replace"), dict(_ENET_HEADERS))
        if fault.kind == "status":
            body = (f"<html><head><title>{fault.status} Service Unavailable</title></head>"
                    f"<body><h1>HTTP Error {fault.status}</h1></body></html>").encode()
            return Response(fault.status, body, {"Content-Type": "text/html"})
        if fault.kind == "html":
            body = (b"<!DOCTYPE html>\r\n<html><head><title>IIS 10.0 Detailed Error</title></head>"
                    b"<body><h3>The page cannot be displayed because an internal server error has "
                    b"occurred.</h3></body></html>")
            return Response(200, body, {"Content-Type": "text/html"})
        if fault.kind == "drop":
            return Response(drop=True)
        resp = handler()
        if fault.kind == "delay":
            resp.delay = fault.seconds
        elif fault.kind == "truncated":
            resp.body = resp.body[: max(1, len(resp.body) // 2)]
        return resp

    # -- e.net REST -------------------------------------------------------------------------------

    def _enet(self, request: Request, endpoint: str) -> Response:
        if endpoint == "?":
            return Response(404, b"Endpoint not found.", {"Content-Type": "text/html"})
        if request.method not in ("GET", "HEAD") and endpoint != "Transaction/PostLD":
            return Response(405, b"Method not allowed.", {"Content-Type": "text/html"})
        # query parameter names match without regard to case.
        q = {k.lower(): v for k, v in request.query.items()}
        try:
            if endpoint == "Logon":
                body = self._logon(q)
            elif endpoint == "Logoff":
                self._session(q.get("userid"))
                self._sessions.pop(q["userid"].rstrip(), None)
                body = "0"
            elif endpoint == "GetVersion":
                body = self.version_string
            elif endpoint == "GetLogonProfile":
                body = self._logon_profile(self._session(q.get("userid")))
            elif endpoint == "Query/Query":
                self._session(q.get("userid"))
                if (q.get("businessobject") or "").upper() != "COMFND":
                    raise _QueryError(_NOT_LICENSED)
                body = self._comfnd(q.get("xmlin") or "")
            else:
                # Browse/Fetch/Transaction/Setup: not needed for polling.
                self._session(q.get("userid"))
                raise _QueryError(_NOT_LICENSED)
        except _QueryError as exc:
            body = str(exc)
        encoded = body.encode("cp1252", "xmlcharrefreplace")
        return Response(200, encoded, dict(_ENET_HEADERS))

    def _logon(self, q: Mapping[str, str]) -> str:
        op_code = (q.get("operator") or "").strip().upper()
        company = (q.get("companyid") or "").strip().upper()
        if not op_code or not company:
            raise _QueryError("ERROR: Operator code cannot be blank")
        op = self.operators.get(op_code)
        if op is None:
            raise _QueryError(f"ERROR: Invalid operator '{op_code}'")
        if q.get("operatorpassword", "") != op.get("password", ""):
            raise _QueryError("ERROR: Invalid operator password")
        comp = self.companies.get(company)
        if comp is None or company not in {c.upper() for c in op.get("companies", self.companies)}:
            raise _QueryError(f"ERROR: Invalid company '{company}'")
        if "companypassword" not in q and self.require_company_password:
            raise _QueryError("ERROR: Company password parameter missing")  # [S RECT]
        if q.get("companypassword", "") != comp.get("password", ""):
            raise _QueryError("ERROR: Invalid company password")
        return self._open_session(op_code, company).token

    def _logon_profile(self, s: _Session) -> str:
        comp = self.companies.get(s.company, {})
        fields = {
            "CompanyName": comp.get("name", s.company), "OperatorCode": s.operator,
            "OperatorGroup": "ENET", "OperatorEmailAddress": "", "OperatorLanguageCode": "EN",
            "AccountingDate": self.business_date.isoformat(), "CompanyDate": self.business_date.isoformat(),
            "DefaultApBranch": "10", "DefaultWarehouse": "FG", "LocalCurrencyCode": "$",
            "CurrencyDescription": "Dollar", "DecimalFormat": "1", "DateFormat": "01",
            "DatabaseType": "SQL", "SysproVersion": self.xml_version, "EnetVersion": self.version_string,
        }
        inner = "".join(f"<{k}>{escape(str(v))}</{k}>\n" for k, v in fields.items())
        return f'<?xml version="1.0" encoding="Windows-1252"?>\n<LogonProfile>\n{inner}</LogonProfile>\n '

    def _comfnd(self, xml_in: str) -> str:
        query = self._parse_comfnd(xml_in)
        t = query.table
        pred = _compile(query.where, t)
        rows = self._stream(t, query.where, pred, query.order)
        out = [f'<?xml version="1.0" encoding="Windows-1252"?>\n<{t.name} '
               f"{_ROOT_ATTRS.format(version=self.xml_version)}>\n<HeaderDetails>\n"
               f"<TableName>{t.name}</TableName>\n<Columns>\n"]
        out.extend(f"<Column>{c.name}</Column>\n" for c in query.columns)
        out.append("</Columns>\n")
        if query.order_echo:
            out.append("<OrderBy>\n")
            out.extend(f"<Column>{c}</Column>\n" for c in query.order_echo)
            out.append("</OrderBy>\n")
        out.append("</HeaderDetails>\n")
        idx = [(c, t.pos[c.name]) for c in query.columns]
        n = 0
        cap = min(query.return_rows, self.comfnd_max_rows or query.return_rows)
        for row in rows:
            if n >= cap:
                break
            n += 1
            out.append("<Row>\n")
            for col, p in idx:
                value = _render_enet(col, row[p], self.pad_numbers, self.timestamp_format)
                # No DTD or CDATA tricks: text is escaped, control characters pass through as
                # SQL holds them (which makes the reply ill-formed, as a real one would be).
                out.append(f"<{col.name}>{escape(value)}</{col.name}>\n" if value != ""
                           else f"<{col.name}/>\n")
            out.append("</Row>\n")
        out.append(f"<RowsReturned>{n:8d}</RowsReturned>\n</{t.name}>\n ")  # ends "\n "
        return "".join(out)

    def _parse_comfnd(self, xml_in: str) -> _Comfnd:
        if re.search(r"<!DOCTYPE|<!ENTITY", xml_in, re.I):
            raise _QueryError("ERROR: XML Parse error")
        try:
            root = ET.fromstring(xml_in)
        except ET.ParseError:
            raise _QueryError("ERROR: XML Parse error") from None
        table_name = _text(_child(root, "TableName")).strip()
        try:
            t = self._table(table_name)
        except KeyError:
            raise _QueryError(f"ERROR: Table '{table_name}' not found") from None

        def column(name: str) -> _Col:
            col = t.col(name.strip())
            if col is None or (col.kind == "ts" and not self.comfnd_timestamp):
                raise _QueryError(f"ERROR: Column '{name.strip()}' not found on table '{t.name}'")
            return col

        rr = _text(_child(root, "ReturnRows")).strip()
        return_rows = int(rr) if rr.isdigit() else 1000  # default 1000 when absent
        names = [_text(c) for c in _children(_child(root, "Columns"), "Column")]
        all_cols = _text(_child(root, "AllColumns")).strip().upper() == "Y" or not names
        columns = [c for c in t.cols if c.kind != "ts" or self.comfnd_timestamp] if all_cols \
            else [column(n) for n in names]
        where = self._comfnd_where(_children(_child(root, "Where"), "Expression"), column)
        order_echo = [column(_text(c)).name for c in _children(_child(root, "OrderBy"), "Column")]
        order = [(c, False) for c in order_echo]
        seq = _children(_child(root, "Sequence"), "Column")
        if seq:
            order = [(column(c.get("Name", "")).name, (c.get("Orderby") or "A").upper() == "D") for c in seq]
        if not order:
            order = [(k, False) for k in t.key]
        return _Comfnd(t, columns, where, order, order_echo, return_rows)

    def _comfnd_where(self, expressions: list[ET.Element], column: Callable[[str], _Col]) -> tuple:
        """Expressions -> filter tree: brackets as written, AND before OR (as SQL does)."""
        tokens: list[Any] = []
        for n, expr in enumerate(expressions):
            if n:
                andor = _text(_child(expr, "AndOr")).strip().lower() or "and"
                if andor not in ("and", "or"):
                    raise _QueryError(f"ERROR: Invalid AndOr '{andor}'")
                tokens.append(andor)
            tokens.extend("(" * _text(_child(expr, "OpenBracket")).count("("))
            col = column(_text(_child(expr, "Column")))
            cond = _text(_child(expr, "Condition")).strip().upper() or "EQ"
            if cond not in self.comfnd_conditions or cond not in _CONDITIONS:
                raise _QueryError(f"ERROR: Invalid condition '{cond}'")
            raw = _text(_child(expr, "Value"))
            if cond == "LIKE":
                tokens.append(("like", col.name, _like_regex(raw)))
            else:
                try:
                    value = _parse_literal(col, raw)
                except (ValueError, InvalidOperation):
                    raise _QueryError(f"ERROR: Invalid value '{raw}' for column '{col.name}'") from None
                tokens.append(("cmp", col.name, _CONDITIONS[cond], value))
            tokens.extend(")" * _text(_child(expr, "CloseBracket")).count(")"))
        if not tokens:
            return ("true",)
        try:
            tree, rest = _parse_bool(tokens)
        except (IndexError, ValueError):
            raise _QueryError("ERROR: Invalid Where clause: unbalanced brackets") from None
        if rest:
            raise _QueryError("ERROR: Invalid Where clause: unbalanced brackets")
        return tree

    # -- queries ---------------------------------------------------------------------------------

    def _stream(self, t: _Table, where: tuple, pred: Callable[[Sequence[Any]], bool],
                order: list[tuple[str, bool]]) -> Iterator[tuple]:
        """Rows matching ``pred`` in ``order`` (key columns break ties), lazily over bulk rows."""
        eff = list(order) + [(k, False) for k in t.key if k not in {c for c, _ in order}]
        positions = [(t.pos[c], desc) for c, desc in eff]

        def sort_key(row: Sequence[Any]) -> tuple:
            return tuple(_Desc(_sortable(row[p])) if desc else _sortable(row[p]) for p, desc in positions)

        real = sorted((r for r in t.rows.values() if pred(r)), key=sort_key)
        streams: list[Iterable[tuple]] = [real]
        names = tuple(c for c, _ in eff)
        ascending = not any(desc for _, desc in eff)
        for blk in t.blocks:
            if ascending and any(names[: len(o)] == o or o[: len(names)] == names for o in blk.orders):
                lo, hi = _index_range(where, t, blk)
                streams.append(_block_rows(blk, lo, hi, pred))
            else:  # an order the block is not stored in: sort (slow, fine for small tests)
                streams.append(sorted(_block_rows(blk, 0, blk.count, pred), key=sort_key))
        return heapq.merge(*streams, key=sort_key) if len(streams) > 1 else iter(real)

    # -- OData ------------------------------------------------------------------------------------

    def _odata(self, request: Request, rest: str) -> Response:
        parts = [p for p in rest.split("/") if p]
        if request.method not in ("GET", "HEAD"):
            return _odata_error(405, "The requested resource does not support http method "
                                     f"'{request.method}'.")
        if not parts:
            return _odata_error(404, "No company in the path.")
        company = parts[0].upper()
        denied = self._odata_auth(request, company)
        if denied is not None:
            return denied
        base = f"{self._origin(request)}{ODATA_PREFIX}/{parts[0]}"
        if len(parts) == 1:
            sets = [{"name": n, "kind": "EntitySet", "url": n} for n in self.tables]
            return _odata_json({"@odata.context": f"{base}/$metadata", "value": sets})
        if parts[1] == "$metadata":
            return Response(200, self._metadata().encode(), {"Content-Type": "application/xml",
                                                              "OData-Version": "4.0"})
        t = self.tables.get(parts[1])  # entity sets are case-sensitive in ASP.NET OData
        if t is None or len(parts) > 2:
            return _odata_error(404, f"The path template '{'/'.join(parts[1:])}' on the action "
                                     f"'Get' in controller 'SYSPROOData' is not a valid OData path template.")
        try:
            return self._odata_query(request, t, base)
        except _QueryError as exc:
            return _odata_error(400, str(exc))

    def _odata_auth(self, request: Request, company: str) -> Response | None:
        header = request.headers.get("authorization", "")
        ok = False
        if header[:6].lower() == "basic ":
            try:
                user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", ""
            op = self.operators.get(user.upper())
            # only operators configured for OData (an OData password) get in.
            ok = bool(op and op.get("odata_password") and password == op["odata_password"]
                      and company in {c.upper() for c in op.get("companies", self.companies)})
        if ok:
            if company not in self.companies:
                return _odata_error(404, f"Company '{company}' is not configured.")
            return None
        resp = _odata_error(401, "Authorization has been denied for this request.")
        resp.headers["WWW-Authenticate"] = 'Basic realm="SYSPRO OData"'
        return resp

    def _origin(self, request: Request) -> str:
        return f"{self.public_scheme}://{request.headers.get('host', 'localhost')}"

    def _odata_query(self, request: Request, t: _Table, base: str) -> Response:
        q = request.query
        select = [s.strip() for s in (q.get("$select") or "").split(",") if s.strip()]
        for s in select:
            if s not in t.pos:
                raise _QueryError(f"Could not find a property named '{s}' on type 'SYSPRO.{t.name}'.")
        cols = [t.cols[t.pos[s]] for s in select] if select else list(t.cols)
        where = _parse_odata_filter(q.get("$filter") or "", t, self.odata_rowversion_filter)
        order: list[tuple[str, bool]] = []
        for item in (q.get("$orderby") or "").split(","):
            bits = item.split()
            if not bits:
                continue
            if bits[0] not in t.pos or len(bits) > 2 or (len(bits) == 2 and bits[1] not in ("asc", "desc")):
                raise _QueryError(f"Could not find a property named '{bits[0]}' on type 'SYSPRO.{t.name}'.")
            order.append((bits[0], len(bits) == 2 and bits[1] == "desc"))
        try:
            top = int(q["$top"]) if "$top" in q else None
            skip = int(q.get("$skip") or 0)
        except ValueError:
            raise _QueryError("Invalid value for $top or $skip.") from None
        if (top is not None and top < 0) or skip < 0:
            raise _QueryError("Invalid value for $top or $skip.")
        page = self.odata_max_rows if top is None else min(top, self.odata_max_rows)
        key = (t.name, q.get("$filter") or "", tuple(order), self._version)
        cached = self._streams.pop(key, None)
        if cached is not None and cached[0] == skip:
            rows = cached[1]  # continue where the previous page stopped ($skip paging is O(page))
        else:
            rows = self._stream(t, where, _compile(where, t), order)
            for _ in range(skip):
                if next(rows, None) is None:
                    break
        taken = [r for _, r in zip(range(page), rows)]
        more = next(rows, None)
        if more is not None:
            self._streams[key] = (skip + len(taken), _prepend(more, rows))
            while len(self._streams) > 16:
                self._streams.popitem(last=False)
        context = f"{base}/$metadata#{t.name}" + (f"({','.join(select)})" if select else "")
        pieces = [f'{{"@odata.context":{json.dumps(context)}']
        if (q.get("$count") or "").lower() == "true":
            pieces.append(f',"@odata.count":{sum(1 for _ in self._stream(t, where, _compile(where, t), []))}')
        idx = [(c, t.pos[c.name]) for c in cols]
        body_rows = ",".join(
            "{" + ",".join(f'"{c.name}":{_render_json(c, r[p])}' for c, p in idx) + "}" for r in taken
        )
        pieces.append(f',"value":[{body_rows}]')
        want_more = top is None or top > len(taken)
        if self.odata_next_link and more is not None and want_more and len(taken) == page:
            params = dict(q)
            params["$skip"] = str(skip + len(taken))
            if top is not None:
                params["$top"] = str(top - len(taken))
            link = f"{base}/{t.name}?{urlencode(params)}"
            pieces.append(f',"@odata.nextLink":{json.dumps(link)}')
        pieces.append("}")
        return Response(200, "".join(pieces).encode("utf-8"), {
            "Content-Type": "application/json; odata.metadata=minimal; charset=utf-8",
            "OData-Version": "4.0",
        })

    def _metadata(self) -> str:
        types = []
        for t in self.tables.values():
            keys = "".join(f'<PropertyRef Name="{k}"/>' for k in t.key)
            props = "".join(
                f'<Property Name="{c.name}" Type="{_EDM[c.kind]}"'
                + (f' Scale="{c.scale}"' if c.kind == "dec" else "")
                + (' Nullable="false"' if c.name in t.key else "") + "/>"
                for c in t.cols
            )
            types.append(f'<EntityType Name="{t.name}"><Key>{keys}</Key>{props}</EntityType>')
        sets = "".join(f'<EntitySet Name="{n}" EntityType="SYSPRO.{n}"/>' for n in self.tables)
        return ('<?xml version="1.0" encoding="utf-8"?><edmx:Edmx Version="4.0" '
                'xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>'
                '<Schema Namespace="SYSPRO" xmlns="http://docs.oasis-open.org/odata/ns/edm">'
                + "".join(types) + f'<EntityContainer Name="Container">{sets}</EntityContainer>'
                '</Schema></edmx:DataServices></edmx:Edmx>')

    # -- /__sim/ control hooks ------------------------------------------------------------------

    def _control(self, request: Request, path: str) -> Response:
        body = request.json() or {}
        m, p = request.method, path.rstrip("/")
        if (m, p) == ("POST", "/reset"):
            self.reset()
            return json_response({"ok": True})
        if (m, p) == ("GET", "/sessions"):
            return json_response({"sessions": self.sessions()})
        if (m, p) == ("POST", "/sessions/expire"):
            n = self.expire_sessions(None if body.get("all") else body.get("userId"))
            return json_response({"expired": n})
        if (m, p) == ("POST", "/sessions/evict"):
            self.evict(body["operator"])
            return json_response({"ok": True})
        if (m, p) == ("POST", "/clock"):
            self.advance(float(body.get("advance", 0)))
            return json_response({"now": self.now()})
        if (m, p) == ("POST", "/faults"):
            self.inject(body.pop("kind"), **body)
            return json_response({"ok": True})
        if (m, p) == ("DELETE", "/faults"):
            self.clear_faults()
            return json_response({"ok": True})
        if (m, p) == ("GET", "/requests"):
            return json_response({"counters": dict(self.counters), "log": list(self.request_log)})
        if (m, p) == ("DELETE", "/requests"):
            self.reset_counters()
            return json_response({"ok": True})
        if (m, p) == ("GET", "/rowversion"):
            return json_response({"rowversion": self.rowversion})
        if (m, p) == ("POST", "/invoices"):
            return json_response(_jsonable(self.insert_invoice(**body)))
        if (m, p) == ("POST", "/invoices/batch"):
            rows = self.insert_invoices_on(body.pop("date"), int(body.pop("count")), **body)
            return json_response([_jsonable(r) for r in rows])
        if (m, p) == ("POST", "/invoices/backdated"):
            return json_response(_jsonable(self.insert_backdated_invoice(**body)))
        if (m, p) == ("POST", "/invoices/pay"):
            return json_response(_jsonable(self.pay_invoice(**body)))
        if (m, p) == ("POST", "/po/status"):
            return json_response(_jsonable(self.set_po_status(body["po"], body["status"])))
        if (m, p) == ("POST", "/bulk"):
            return json_response(self.bulk_generate(body.pop("table"), int(body.pop("count")), **body))
        if (m, p) == ("POST", "/password"):
            self.set_password(body["operator"], body.get("password"), odata_password=body.get("odata_password"))
            return json_response({"ok": True})
        tm = re.fullmatch(r"/tables/(\w+)(/rows)?", p)
        if tm:
            table = tm.group(1)
            if m in ("PUT", "POST"):
                rows = body if isinstance(body, list) else [body]
                return json_response([_jsonable(self.upsert(table, r)) for r in rows])
            if m == "PATCH":
                return json_response(_jsonable(self.update(table, tuple(body["key"]), **body["changes"])))
            if m == "DELETE":
                key = tuple((request.query.get("key") or "").split("|"))
                return json_response({"deleted": self.delete(table, key)})
            if m == "GET":
                return json_response([_jsonable(r) for r in self.rows(table)])
        return json_response({"error": f"no hook {m} {path}"}, 404)


# --- helpers ------------------------------------------------------------------------------------


def _enet_endpoint(sub: str) -> str:
    """The canonical endpoint name for a path under /SYSPROWCFService/Rest (case-insensitive)."""
    names = ("Logon", "Logoff", "GetVersion", "GetLogonProfile", "Query/Query", "Query/Browse",
             "Query/Fetch", "Transaction/Post", "Transaction/PostLD", "Setup/Add", "Setup/Update",
             "Setup/Delete", "Utilities/Run")
    low = sub.strip("/").lower()
    for n in names:
        if n.lower() == low:
            return n
    return "?"


def _redact(query: Mapping[str, str]) -> dict[str, str]:
    secret = {"operatorpassword", "companypassword", "userid"}
    return {k: ("***" if k.lower() in secret and v else v) for k, v in query.items()}


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if isinstance(v, (date, datetime)):
            v = v.isoformat()
        elif isinstance(v, Decimal):
            v = str(v)
        elif k == "TimeStamp":
            v = f"{v:016X}"
        out[k] = v
    return out


def _prepend(first: tuple, rest: Iterator[tuple]) -> Iterator[tuple]:
    yield first
    yield from rest


def _block_rows(blk: _Bulk, lo: int, hi: int, pred: Callable[[Sequence[Any]], bool]) -> Iterator[tuple]:
    for i in range(lo, hi):
        if i in blk.gone:
            continue
        row = blk.make(i)
        if pred(row):
            yield row


def _parse_bool(tokens: list[Any]) -> tuple[tuple, list[Any]]:
    """or-expression over tokens: leaves, "and", "or", "(", ")"; AND binds tighter than OR."""

    def parse_or(ts: list[Any]) -> tuple[tuple, list[Any]]:
        left, ts = parse_and(ts)
        while ts and ts[0] == "or":
            right, ts = parse_and(ts[1:])
            left = ("or", left, right)
        return left, ts

    def parse_and(ts: list[Any]) -> tuple[tuple, list[Any]]:
        left, ts = parse_atom(ts)
        while ts and ts[0] == "and":
            right, ts = parse_atom(ts[1:])
            left = ("and", left, right)
        return left, ts

    def parse_atom(ts: list[Any]) -> tuple[tuple, list[Any]]:
        if ts[0] == "(":
            inner, ts = parse_or(ts[1:])
            if not ts or ts[0] != ")":
                raise ValueError("unbalanced")
            return inner, ts[1:]
        if isinstance(ts[0], tuple):
            return ts[0], ts[1:]
        raise ValueError(f"unexpected {ts[0]!r}")

    return parse_or(tokens)


_ODATA_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<str>'(?:[^']|'')*')"
    r"|(?P<bin>binary'[A-Za-z0-9+/=_-]*')"
    r"|(?P<dto>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))"
    r"|(?P<date>\d{4}-\d{2}-\d{2})"
    r"|(?P<num>-?\d+(?:\.\d+)?(?:[mMdD])?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<punct>[(),])"
    r")"
)
_OP_NAMES = {"eq": "Equal", "ne": "NotEqual", "gt": "GreaterThan", "ge": "GreaterThanOrEqual",
             "lt": "LessThan", "le": "LessThanOrEqual"}


def _parse_odata_filter(text: str, t: _Table, rowversion_ordering: bool) -> tuple:
    """``$filter`` -> filter tree. Supports comparisons, and/or/not and brackets."""
    if not text.strip():
        return ("true",)
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        m = _ODATA_TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise _QueryError(f"Syntax error at position {pos} in '{text}'.")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()

    def literal(tok: tuple[str, str, int]) -> tuple[str, Any]:
        kind, raw, _ = tok
        if kind == "str":
            return "Edm.String", raw[1:-1].replace("''", "'")
        if kind == "bin":
            try:
                return "Edm.Binary", int.from_bytes(base64.b64decode(raw[7:-1]), "big")
            except binascii.Error:
                raise _QueryError(f"Unrecognized 'Edm.Binary' literal '{raw}'.") from None
        if kind == "dto":
            return "Edm.DateTimeOffset", datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(_UTC)
        if kind == "date":
            return "Edm.Date", date.fromisoformat(raw)
        if kind == "num":
            return "Edm.Decimal", Decimal(raw.rstrip("mMdD"))
        if kind == "name" and raw == "null":
            return "null", None
        raise _QueryError(f"Syntax error at position {tok[2]} in '{text}'.")

    def comparison(ts: list[tuple[str, str, int]]) -> tuple[tuple, list]:
        if len(ts) < 3 or ts[1][0] != "name" or ts[1][1] not in _OPS:
            at = ts[1][2] if len(ts) > 1 else len(text)
            raise _QueryError(f"Syntax error at position {at} in '{text}'.")
        left, op, right = ts[0], ts[1][1], ts[2]
        if left[0] == "name" and left[1] in t.pos:
            col_tok, lit_tok = left, right
        elif right[0] == "name" and right[1] in t.pos:
            col_tok, lit_tok = right, left
            op = {"gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}.get(op, op)
        else:
            name = left[1] if left[0] == "name" else right[1]
            raise _QueryError(f"Could not find a property named '{name}' on type 'SYSPRO.{t.name}'.")
        col = t.cols[t.pos[col_tok[1]]]
        edm, value = literal(lit_tok)
        ok = {"str": ("Edm.String",), "dec": ("Edm.Decimal",), "ts": ("Edm.Binary",),
              "date": ("Edm.DateTimeOffset", "Edm.Date")}[col.kind]
        if edm != "null" and edm not in ok:
            raise _QueryError(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'{_EDM[col.kind]}' and '{edm}' for operator kind '{_OP_NAMES[op]}'.")
        if col.kind == "ts" and op not in ("eq", "ne") and not rowversion_ordering:
            raise _QueryError(f"The binary operator {_OP_NAMES[op]} is not defined for the types "
                              "'System.Byte[]' and 'System.Byte[]'.")
        return ("cmp", col.name, op, value), ts[3:]

    def parse_or(ts: list) -> tuple[tuple, list]:
        left, ts = parse_and(ts)
        while ts and ts[0][:2] == ("name", "or"):
            right, ts = parse_and(ts[1:])
            left = ("or", left, right)
        return left, ts

    def parse_and(ts: list) -> tuple[tuple, list]:
        left, ts = parse_not(ts)
        while ts and ts[0][:2] == ("name", "and"):
            right, ts = parse_not(ts[1:])
            left = ("and", left, right)
        return left, ts

    def parse_not(ts: list) -> tuple[tuple, list]:
        if not ts:
            raise _QueryError(f"Syntax error: unexpected end of '{text}'.")
        if ts[0][:2] == ("name", "not"):
            inner, ts = parse_not(ts[1:])
            return ("not", inner), ts
        if ts[0][:2] == ("punct", "("):
            inner, ts = parse_or(ts[1:])
            if not ts or ts[0][:2] != ("punct", ")"):
                raise _QueryError(f"Syntax error: ')' expected in '{text}'.")
            return inner, ts[1:]
        return comparison(ts)

    tree, rest = parse_or(tokens)
    if rest:
        raise _QueryError(f"Syntax error at position {rest[0][2]} in '{text}'.")
    return tree


def _odata_error(status: int, message: str) -> Response:
    return json_response({"error": {"code": "", "message": message}}, status, {"OData-Version": "4.0"})


def _odata_json(payload: Any) -> Response:
    return json_response(payload, 200, {"OData-Version": "4.0",
                                        "Content-Type": "application/json; odata.metadata=minimal"})


# --- seed data (plus more of the same distributor) -------------------------------------------------


def _load_seed(sim: SysproSimulator) -> None:
    """Load the seed rows with their TimeStamps, then more documents for a realistic month."""

    later: list[tuple[_Table, dict[str, Any]]] = []

    def put(table: str, rows: list[dict[str, Any]]) -> None:
        # The seed rows keep their TimeStamps; rows without one are written after all of them, so
        # an auto-assigned rowversion can never collide with a listed one.
        t = sim.tables[table]
        for r in rows:
            ts = r.pop("TimeStamp", None)
            if ts is None:
                later.append((t, r))
            else:
                sim._write(t, r, ts=ts)

    sup = ["Supplier", "SupplierName", "SupShortName", "Currency", "TermsCode", "Branch", "OnHold",
           "GrnMatchReqd", "DateSuppAdded", "TimeStamp"]
    put("ApSupplier", [dict(zip(sup, r)) for r in [
        ("0000001", "Bike Parts Wholesale Ltd", "BIKE PARTS", "$", "30", "10", "N", "Y", "2019-03-04", 0x0A1F3C),
        ("0000002", "Accessories Unlimited", "ACCESS UNL", "$", "60", "10", "N", "N", "2020-07-15", 0x0A1F41),
        ("0000003", "Eurotube GmbH", "EUROTUBE", "EUR", "30", "20", "N", "Y", "2022-11-01", 0x0A2003),
        # The distributor's bearing suppliers (not in): non-ASCII cp1252 names and an
        # ampersand, because real supplier names carry them.
        ("0000004", "Müller Wälzlager GmbH", "MUELLER", "EUR", "30", "20", "N", "Y", "2023-02-13", None),
        ("0000005", "Bearings & Seals Ltd", "BEAR&SEAL", "$", "30", "10", "N", "Y", "2023-06-01", None),
        ("0000006", "Nordic Roller Supply AB", "NORDIC", "$", "45", "10", "Y", "N", "2024-01-09", None),
    ]])

    hdr = ["PurchaseOrder", "Supplier", "OrderEntryDate", "OrderDueDate", "OrderStatus", "CancelledFlag",
           "DatePoCompleted", "Buyer", "Warehouse", "Currency", "OrderType", "ExchangeRate", "TimeStamp"]
    put("PorMasterHdr", [dict(zip(hdr, r)) for r in [
        ("000419", "0000001", "2024-05-02", "2024-05-16", "4", "", None, "JDS", "FG", "$", "L", "1.000000", 0x0A2101),
        ("000420", "0000002", "2024-05-03", "2024-05-10", "9", "", "2024-05-10", "JDS", "FG", "$", "L", "1.000000", 0x0A2155),
        ("000421", "0000003", "2024-05-06", "2024-06-20", "*", "Y", None, "MKT", "RM", "EUR", "I", "0.920000", 0x0A2160),
        ("000422", "0000004", "2024-05-20", "2024-06-14", "1", "", None, "MKT", "RM", "EUR", "I", "0.920000", None),
        ("000423", "0000005", "2024-05-27", "2024-06-07", "0", "", None, "JDS", "FG", "$", "L", "1.000000", None),
    ]])

    det = ["PurchaseOrder", "Line", "LineType", "MStockCode", "MStockDes", "MWarehouse", "MOrderUom",
           "MOrderQty", "MReceivedQty", "MPrice", "MLatestDueDate", "MLastReceiptDat", "MCompleteFlag", "MGlCode"]
    put("PorMasterDetail", [dict(zip(det, r)) for r in [
        ("000419", 1, "1", "B100", "Bicycle frame, alloy", "FG", "EA", "50", "20", "125.00000", "2024-05-16", "2024-05-09", "", ""),
        ("000419", 2, "1", "B200", "Brake set, disc", "FG", "EA", "40", "0", "18.75000", "2024-05-16", None, "", ""),
        ("000420", 1, "1", "A100", "Water bottle 750ml", "FG", "EA", "200", "200", "2.40000", "2024-05-10", "2024-05-10", "Y", ""),
        ("000421", 1, "1", "T300", "Chromoly tube 28.6mm", "RM", "M", "120", "0", "9.80000", "2024-06-20", None, "", ""),
        ("000422", 1, "1", "6204-2RS", "Deep groove ball bearing 20x47x14", "RM", "EA", "500", "0", "1.92000", "2024-06-14", None, "", ""),
        ("000422", 2, "1", "UCP208", "Pillow block Ø40mm", "RM", "EA", "24", "0", "14.50000", "2024-06-14", None, "", ""),
        ("000423", 1, "1", "6001-ZZ", "Ball bearing 12x28x8, shielded", "FG", "EA", "1000", "0", "0.61000", "2024-06-07", None, "", ""),
    ]])

    so = ["SalesOrder", "Customer", "CustomerName", "OrderStatus", "OrderDate", "ReqShipDate", "Currency",
          "CustomerPoNumber", "Salesperson", "Branch", "Warehouse"]
    put("SorMaster", [dict(zip(so, r)) for r in [
        ("000512", "0000010", "Cycle World Retail", "1", "2024-05-06", "2024-05-13", "$", "CW-7781", "SMP", "10", "FG"),
        ("000513", "0000011", "Fahrrad & Sport Köln", "4", "2024-05-08", "2024-05-20", "EUR", "FSK-2024-118", "MKT", "20", "FG"),
    ]])
    sod = ["SalesOrder", "SalesOrderLine", "MStockCode", "MStockDes", "MWarehouse", "MOrderQty", "MShipQty", "MPrice"]
    put("SorDetail", [dict(zip(sod, r)) for r in [
        ("000512", 1, "B100", "Bicycle frame, alloy", "FG", "4", "0", "189.00000"),
        ("000512", 2, "A100", "Water bottle 750ml", "FG", "24", "0", "4.95000"),
        ("000513", 1, "6204-2RS", "Deep groove ball bearing 20x47x14", "FG", "100", "0", "3.10000"),
    ]])

    grn = ["Supplier", "Grn", "GrnSource", "Journal", "JournalEntry", "PurchaseOrder", "PurchaseOrderLin",
           "StockCode", "StockDescription", "Warehouse", "QtyReceived", "OrigGrnValue", "DebitRecGlCode",
           "GrnYear", "GrnMonth", "OrigReceiptDate", "PostCurrency", "ConvRate", "MulDiv"]
    put("GrnDetails", [dict(zip(grn, r)) for r in [
        ("0000001", "000123", "P", 1542, 1, "000419", 1, "B100", "Bicycle frame, alloy", "FG", "20", "2500.00", "20-1300", 2024, 5, "2024-05-09", "$", "1.000000", "M"),
        ("0000002", "000124", "P", 1545, 1, "000420", 1, "A100", "Water bottle 750ml", "FG", "200", "480.00", "20-1300", 2024, 5, "2024-05-10", "$", "1.000000", "M"),
    ]])
    put("GrnMatching", [{"Supplier": "0000001", "Grn": "000123", "TransactionType": "P", "Journal": 1542,
                         "EntryNumber": 1, "Invoice": "INV-88213", "MatchedValue": "2500.00",
                         "MatchedYear": 2024, "MatchedMonth": 5}])
    put("InvWarehouse", [
        {"StockCode": "B100", "Warehouse": "FG", "QtyOnHand": 120, "QtyAllocated": 10, "QtyOnOrder": 30,
         "UnitCost": "118.50", "DateLastStockMove": "2024-05-09", "DateLastPurchase": "2024-05-09",
         "DateLastSale": "2024-05-07", "TimeStamp": 0x0A2110},
        {"StockCode": "A100", "Warehouse": "FG", "QtyOnHand": 640, "QtyAllocated": 0, "QtyOnOrder": 0,
         "UnitCost": "2.38", "DateLastStockMove": "2024-05-10", "DateLastPurchase": "2024-05-10",
         "DateLastSale": "2024-05-03", "TimeStamp": 0x0A2158},
    ])

    inv = ["Supplier", "Invoice", "Branch", "InvoiceDate", "JournalDate", "Journal", "DueDate", "Reference",
           "OrigInvValue", "OrigDiscValue", "MthInvBal1", "MthInvBal2", "MthInvBal3", "InvoiceStatus",
           "Currency", "PostCurrency", "ConvRate", "MulDiv", "ExchangeRate", "InvoiceYear", "InvoiceMonth",
           "TimeStamp"]
    put("ApInvoice", [dict(zip(inv, r), EntryNumber=1) for r in [
        ("0000001", "INV-88213", "10", "2024-05-08", "2024-05-10", 311, "2024-06-07", "PO 000419", "2875.00", 0, "2875.00", 0, 0, "", "$", "$", "1.000000", "M", "1.000000", 2024, 5, 0x0A2171),
        ("0000002", "55-0192", "10", "2024-05-11", "2024-05-13", 312, "2024-07-10", "PO 000420", "552.00", 0, "0.00", 0, 0, "", "$", "$", "1.000000", "M", "1.000000", 2024, 5, 0x0A21C9),
        ("0000003", "RE2024-0456", "20", "2024-04-29", "2024-05-14", 313, "2024-05-29", "Tubing sample", "1840.00", 0, "1840.00", 0, 0, "", "EUR", "EUR", "0.920000", "M", "0.920000", 2024, 5, 0x0A21D0),
        ("0000004", "RG-24-1187", "20", "2024-05-21", "2024-05-22", 314, "2024-06-20", "Wälzlager Mai", "1296.40", 0, "1296.40", 0, 0, "", "EUR", "EUR", "0.920000", "M", "0.920000", 2024, 5, None),
        ("0000005", "BS/0981", "10", "2024-05-24", "2024-05-27", 315, "2024-06-26", "Seals & bearings", "742.15", 0, "742.15", 0, 0, "", "$", "$", "1.000000", "M", "1.000000", 2024, 5, None),
        ("0000005", "BS/0982", "10", "2024-05-24", "2024-05-27", 316, "2024-06-26", "Freight", "85.00", 0, "85.00", 0, 0, "", "$", "$", "1.000000", "M", "1.000000", 2024, 5, None),
    ]])
    put("ApInvoicePay", [{"Supplier": "0000002", "Invoice": "55-0192", "EntryNumber": 2, "TrnType": "P",
                          "JournalDate": "2024-05-31", "Journal": 330, "PaymentReference": "EFT000871",
                          "TrnValue": "-552.00", "TrnYear": 2024, "TrnMonth": 5, "PostValue": "-552.00",
                          "PostCurrency": "$", "PaymentNumber": "000045"}])

    jnl = ["TrnYear", "TrnMonth", "Journal", "EntryNumber", "Supplier", "Invoice", "TrnDate", "TransactionCode",
           "InvoiceValue", "SupplierGlCode", "AnalysisEntry"]
    put("ApJnlSummary", [dict(zip(jnl, r)) for r in [
        (2024, 5, 311, 1, "0000001", "INV-88213", "2024-05-10", "I", "2875.00", "20-2100", 0),
        (2024, 5, 312, 1, "0000002", "55-0192", "2024-05-13", "I", "552.00", "20-2100", 0),
        (2024, 5, 313, 1, "0000003", "RE2024-0456", "2024-05-14", "I", "1840.00", "20-2100", 0),
        (2024, 5, 314, 1, "0000004", "RG-24-1187", "2024-05-22", "I", "1296.40", "20-2100", 0),
        (2024, 5, 315, 1, "0000005", "BS/0981", "2024-05-27", "I", "742.15", "20-2100", 0),
        (2024, 5, 316, 1, "0000005", "BS/0982", "2024-05-27", "I", "85.00", "20-2100", 0),
    ]])
    dist = ["TrnYear", "TrnMonth", "Journal", "EntryNumber", "SubEntry", "ExpenseGlCode", "DistrValue",
            "ExpenseType", "Reference", "AnalysisEntry"]
    put("ApJnlDistrib", [dict(zip(dist, r)) for r in [
        (2024, 5, 311, 1, 1, "20-1300", "2500.00", "M", "000123", 0),
        (2024, 5, 311, 1, 2, "20-2400", "375.00", "T", "VAT 15%", 0),
    ]])
    gm = ["Company", "GlCode", "Description", "AccountType", "GlGroup", "CurrentBalance", "PtdDrValue",
          "PtdCrValue", "PrevPerEndBal"]
    put("GenMaster", [dict(zip(gm, r)) for r in [
        ("EDU1", "20-1300", "GRN suspense", "L", "CURLIAB", "-480.00", "2500.00", "-2980.00", "0.00"),
        ("EDU1", "20-2100", "Trade creditors control", "L", "CURLIAB", "-4715.00", "552.00", "-5267.00", "-1200.00"),
        ("EDU1", "20-2400", "VAT input", "A", "CURASS", "375.00", "375.00", "0.00", "0.00"),
    ]])
    gj = ["GlYear", "GlPeriod", "Journal", "EntryNumber", "EntryType", "GlCode", "Reference", "Comment",
          "EntryValue", "EntryDate", "EntryPosted", "Company", "TransactionDate", "DocumentDate",
          "SubModJournal", "AnalysisEntry"]
    put("GenJournalDetail", [dict(zip(gj, r)) for r in [
        (2024, 5, 12, 1, "N", "20-2400", "VATADJ-05", "VAT correction", "15.00", "2024-05-28", "Y", "EDU1", "2024-05-28", "2024-05-28", 0, 0),
        (2024, 5, 12, 2, "N", "20-2100", "VATADJ-05", "VAT correction", "-15.00", "2024-05-28", "Y", "EDU1", "2024-05-28", "2024-05-28", 0, 0),
        (2024, 5, 13, 1, "N", "20-1300", "ACCR-05", "GRN accrual reversal", "-480.00", "2024-05-31", "N", "EDU1", "2024-05-31", "2024-05-31", 0, 0),
        (2024, 5, 13, 2, "N", "20-2100", "ACCR-05", "GRN accrual reversal", "480.00", "2024-05-31", "N", "EDU1", "2024-05-31", "2024-05-31", 0, 0),
    ]])
    for t, r in later:
        sim._write(t, r)


# --- bulk row makers ----------------------------------------------------------------------------------

_BULK_SUPPLIERS = ("0000001", "0000002", "0000004", "0000005")


def _bulk_common(t: _Table, first_ts: int, n: int, fill: Callable[[int], dict[str, Any]],
                 monotone: Iterable[str], orders: Iterable[tuple[str, ...]],
                 index_of: Callable[[tuple], int | None]) -> _Bulk:
    cols = t.cols
    ts_pos = t.ts_pos

    def make(i: int) -> tuple:
        values = fill(i)
        row = [values.get(c.name, "" if c.kind == "str" else None) for c in cols]
        row[ts_pos] = first_ts + i
        return tuple(row)

    return _Bulk(first_ts, n, make, frozenset(monotone) | {"TimeStamp"},
                 (("TimeStamp",), *orders), index_of)


def _serial_index(prefix: str, n: int, width: int = 9) -> Callable[[str], int | None]:
    def index(text: str) -> int | None:
        if not text.startswith(prefix) or not text[len(prefix):].isdigit():
            return None
        i = int(text[len(prefix):])
        return i if 0 <= i < n and text == f"{prefix}{i:0{width}d}" else None

    return index


def _bulk_ap_invoice(t: _Table, serial: int, first_ts: int, n: int, start: date, per_day: int,
                     sim: SysproSimulator) -> _Bulk:
    prefix = f"B{serial:02d}-"
    index = _serial_index(prefix, n)
    q2 = Decimal("0.01")

    def fill(i: int) -> dict[str, Any]:
        day = start + timedelta(days=i // per_day)
        # Suppliers step up within a day, so (JournalDate, Supplier, Invoice) follows i.
        supplier = _BULK_SUPPLIERS[(i % per_day) * len(_BULK_SUPPLIERS) // per_day]
        amount = (Decimal(1000 + (i * 7919) % 250000) / 100).quantize(q2)
        return {
            "Supplier": supplier, "Invoice": f"{prefix}{i:09d}", "Branch": "10",
            "InvoiceDate": day - timedelta(days=2), "JournalDate": day, "Journal": Decimal(1000 + i // 100),
            "DueDate": day + timedelta(days=30), "Reference": f"Bulk {i}", "OrigInvValue": amount,
            "OrigDiscValue": Decimal("0.00"), "MthInvBal1": amount, "MthInvBal2": Decimal("0.00"),
            "MthInvBal3": Decimal("0.00"), "Currency": "$", "PostCurrency": "$",
            "ConvRate": Decimal("1.000000"), "MulDiv": "M", "ExchangeRate": Decimal("1.000000"),
            "InvoiceYear": Decimal(day.year), "InvoiceMonth": Decimal(day.month), "EntryNumber": Decimal(1),
        }

    def index_of(key: tuple) -> int | None:
        i = index(key[1][1]) if key[1][0] == 1 else None
        return i if i is not None and fill(i)["Supplier"] == key[0][1] else None

    return _bulk_common(t, first_ts, n, fill, ("JournalDate", "InvoiceDate", "DueDate", "Invoice"),
                        [("JournalDate", "Supplier", "Invoice"), ("InvoiceDate", "Supplier", "Invoice"),
                         ("Invoice",)], index_of)


def _bulk_po(t: _Table, serial: int, first_ts: int, n: int, start: date, per_day: int,
             sim: SysproSimulator) -> _Bulk:
    prefix = f"B{serial:02d}"
    index = _serial_index(prefix, n)

    def fill(i: int) -> dict[str, Any]:
        day = start + timedelta(days=i // per_day)
        return {
            "PurchaseOrder": f"{prefix}{i:09d}", "Supplier": _BULK_SUPPLIERS[i % len(_BULK_SUPPLIERS)],
            "OrderEntryDate": day, "OrderDueDate": day + timedelta(days=14),
            "OrderStatus": _PO_STATUSES[i % len(_PO_STATUSES)], "CancelledFlag": "", "Buyer": "JDS",
            "Warehouse": "FG", "Currency": "$", "OrderType": "L", "ExchangeRate": Decimal("1.000000"),
        }

    return _bulk_common(t, first_ts, n, fill, ("OrderEntryDate", "OrderDueDate", "PurchaseOrder"),
                        [("OrderEntryDate", "PurchaseOrder"), ("PurchaseOrder",)],
                        lambda key: index(key[0][1]) if key[0][0] == 1 else None)


def _bulk_grn(t: _Table, serial: int, first_ts: int, n: int, start: date, per_day: int,
              sim: SysproSimulator) -> _Bulk:
    prefix = f"B{serial:02d}"
    index = _serial_index(prefix, n)

    def fill(i: int) -> dict[str, Any]:
        day = start + timedelta(days=i // per_day)
        qty = Decimal(1 + i % 50)
        return {
            "Supplier": _BULK_SUPPLIERS[(i % per_day) * len(_BULK_SUPPLIERS) // per_day],
            "Grn": f"{prefix}{i:09d}", "GrnSource": "P", "Journal": Decimal(serial * 10_000_000 + i // 100),
            "JournalEntry": Decimal(i % 100 + 1), "PurchaseOrder": "000419", "PurchaseOrderLin": Decimal(1),
            "StockCode": "6204-2RS", "StockDescription": "Deep groove ball bearing 20x47x14",
            "Warehouse": "FG", "QtyReceived": qty.quantize(Decimal("0.000001")),
            "OrigGrnValue": (qty * Decimal("1.92")).quantize(Decimal("0.01")), "DebitRecGlCode": "20-1300",
            "GrnYear": Decimal(day.year), "GrnMonth": Decimal(day.month), "OrigReceiptDate": day,
            "PostCurrency": "$", "ConvRate": Decimal("1.000000"), "MulDiv": "M",
        }

    def index_of(key: tuple) -> int | None:
        i = index(key[1][1]) if key[1][0] == 1 else None
        return i if i is not None and t.key_of(_bulk_row(fill(i), t)) == key else None

    return _bulk_common(t, first_ts, n, fill, ("OrigReceiptDate", "Grn", "Journal", "GrnYear"),
                        [("OrigReceiptDate", "Supplier", "Grn")], index_of)


def _bulk_row(values: Mapping[str, Any], t: _Table) -> tuple:
    return tuple(values.get(c.name) for c in t.cols)


def _bulk_journal(year_col: str, month_col: str, date_col: str, value_col: str,
                  extra: Callable[[int, date], dict[str, Any]]) -> Callable[..., _Bulk]:
    def maker(t: _Table, serial: int, first_ts: int, n: int, start: date, per_day: int,
              sim: SysproSimulator) -> _Bulk:
        base = serial * 10_000_000

        def fill(i: int) -> dict[str, Any]:
            day = start + timedelta(days=i // per_day)
            values = {
                year_col: Decimal(day.year), month_col: Decimal(day.month),
                "Journal": Decimal(base + i // 100), "EntryNumber": Decimal(i % 100 + 1),
                date_col: day, value_col: (Decimal(500 + (i * 7919) % 99000) / 100).quantize(Decimal("0.01")),
                "AnalysisEntry": Decimal(0),
            }
            values.update(extra(i, day))
            return values

        def index_of(key: tuple) -> int | None:
            try:
                journal, entry = int(key[2][1]), int(key[3][1])
            except (TypeError, ValueError, IndexError):
                return None
            i = (journal - base) * 100 + entry - 1
            if not (0 <= i < n) or not (1 <= entry <= 100):
                return None
            return i if t.key_of(_bulk_row(fill(i), t)) == key else None

        key_order = tuple(t.key)
        return _bulk_common(t, first_ts, n, fill, (date_col, year_col, "Journal"),
                            [(date_col, *key_order), key_order], index_of)

    return maker


_BULK_MAKERS: dict[str, Callable[..., _Bulk]] = {
    "ApInvoice": _bulk_ap_invoice,
    "PorMasterHdr": _bulk_po,
    "GrnDetails": _bulk_grn,
    "ApJnlSummary": _bulk_journal(
        "TrnYear", "TrnMonth", "TrnDate", "InvoiceValue",
        lambda i, day: {"Supplier": _BULK_SUPPLIERS[i % len(_BULK_SUPPLIERS)], "Invoice": f"BJ-{i:09d}",
                        "TransactionCode": "I", "SupplierGlCode": "20-2100"}),
    "GenJournalDetail": _bulk_journal(
        "GlYear", "GlPeriod", "EntryDate", "EntryValue",
        lambda i, day: {"EntryType": "N", "GlCode": ("20-2100", "20-1300", "20-2400")[i % 3],
                        "Reference": f"BULK-{i // 100}", "Comment": "Bulk journal line", "EntryPosted": "Y",
                        "Company": "EDU1", "TransactionDate": day, "DocumentDate": day,
                        "SubModJournal": Decimal(0)}),
}


# --- running it alone -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m simulators.syspro --port 0``: serve on loopback and print how to reach it."""
    parser = argparse.ArgumentParser(description="SYSPRO e.net REST + OData simulator (loopback)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--idle-timeout", type=float, default=1200.0, help="session idle timeout (s)")
    parser.add_argument("--next-link", action="store_true", help="emit @odata.nextLink at the cap")
    parser.add_argument("--bulk-invoices", type=int, default=0, help="add N virtual ApInvoice rows")
    args = parser.parse_args(argv)
    sim = SysproSimulator(idle_timeout_seconds=args.idle_timeout, odata_next_link=args.next_link)
    if args.bulk_invoices:
        sim.bulk_generate("ApInvoice", args.bulk_invoices)
    with serve_on_loopback(sim, port=args.port, host=args.host) as served:
        print(f"SYSPRO simulator on {served.url}", flush=True)
        print(f"  e.net REST : {served.url}{ENET_PREFIX}", flush=True)
        print(f"  OData      : {served.url}{ODATA_PREFIX}/EDU1/ApInvoice", flush=True)
        print(f"  controls   : {served.url}/__sim/", flush=True)
        for code, op in sim.operators.items():
            print(f"  operator {code}: password {op.get('password')!r}, OData password "
                  f"{op.get('odata_password')!r}, companies {op.get('companies')}", flush=True)
        for code, comp in sim.companies.items():
            print(f"  company {code}: password {comp.get('password')!r}", flush=True)
        try:
            served.thread.join()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
