"""The simulated SYSPRO tables: schema, typed values, rows (stored and virtual) and the filter compiler both APIs share.
"""

from __future__ import annotations

import base64
import bisect
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable, Iterator, Mapping, Sequence

_UTC = timezone.utc


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
