"""What the simulated GP company holds: resources, tables of JSON documents (stored and virtual), value formats, and the seed styled on the sample company "Fabrikam, Inc.".
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Iterator, Mapping, Sequence

DEFAULT_TENANT = "DefaultTenant"  # the tenant name of a single-tenant install

DEFAULT_COMPANY = "Fabrikam, Inc."  # the GP sample company

CURRENCY = "Z-US$"  # GP currency ID of the sample company's functional currency

# PurchaseOrderStatus codes.
PO_STATUS: Mapping[int, str] = {1: "New", 2: "Released", 3: "Change Order", 4: "Received", 5: "Closed", 6: "Canceled"}

# Allowed moves (1→2→4→5 / 6; editing a Released PO makes it a Change Order).
_PO_MOVES: Mapping[int, frozenset[int]] = {
    1: frozenset({2, 6}),
    2: frozenset({3, 4, 5, 6}),
    3: frozenset({2, 4, 5, 6}),
    4: frozenset({5}),
    5: frozenset(),
    6: frozenset(),
}

# PayablesDocumentType codes.
_DOC_TYPES: Mapping[int, str] = {
    1: "Invoice", 2: "Finance Charge", 3: "Miscellaneous Charge", 4: "Return", 5: "Credit Memo", 6: "Payment",
}

_DOC_TYPE_CODES = {name.lower(): code for code, name in _DOC_TYPES.items()}

# ApprovalWorkflowStatus codes; purchase orders carry the number, like the POP10100 column.
_APPROVAL: Mapping[int, str] = {
    1: "Not Submitted", 2: "Submitted", 3: "No Approval Needed", 4: "Pending Approval", 5: "Pending Changes",
    6: "Approved", 7: "Rejected", 8: "Workflow Ended", 9: "Not Enabled", 10: "Disabled",
}

_APPROVAL_CODES = {name.lower(): code for code, name in _APPROVAL.items()}

# Segments that may follow the company key; they mark the balanced closing parenthesis when the
# company name itself contains raw parentheses ( "Key parsing").
_SERIES = ("Purchasing", "Sales", "Financials", "System", "Inventory", "Administration", "help")

# Above this many rows an unpaged list would be one giant body; refuse instead.
MAX_UNPAGED_ROWS = 100_000


@dataclass(frozen=True)
class _Resource:
    name: str
    path: str
    key_parts: int
    switch: str | None = None  # attribute that hides the resource (404) when False


RESOURCES: tuple[_Resource, ...] = (
    _Resource("vendors", "Purchasing/Vendors", 1),
    _Resource("payables", "Purchasing/Payables/Transactions", 2),
    _Resource("purchase_orders", "Purchasing/Transactions", 1),
    _Resource("receipts", "Purchasing/Receipts", 1, "expose_receipts"),
    _Resource("gl", "Financials/GeneralLedger/Transactions", 2, "expose_gl"),
    # Currency setup (system-wide in GP: every company reads the same). In the documented catalog;
    # its field names are not documented, so the ISO code's name is a setting (``currency_iso_field``).
    _Resource("currencies", "Administration/Currencies", 1, "expose_currencies"),
)

# GP's sample currency ids and the ISO 4217 codes their setup holds.
CURRENCIES = (("Z-US$", "US Dollars", "$", "USD"), ("Z-C$", "Canadian Dollars", "C$", "CAD"),
              ("Z-EURO", "Euro", "€", "EUR"), ("Z-UK", "Pound Sterling", "£", "GBP"))

_BY_NAME = {r.name: r for r in RESOURCES}


def _ts(dt: datetime) -> str:
    """A UTC timestamp as the simulator serialises ``ModifiedDate`` (UTC with ``Z``)."""
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _day(d: date | datetime) -> str:
    """A GP calendar date: midnight, no offset."""
    return f"{d:%Y-%m-%d}T00:00:00"


def _money(value: Any, currency: str = CURRENCY) -> dict[str, Any]:
    # MoneyAmount = {Currency, DecimalDigits, Value}.
    return {"Value": Decimal(str(value)).quantize(Decimal("0.01")), "Currency": currency, "DecimalDigits": 2}


# Amounts are kept as Decimal and written as JSON numbers with their scale ("1287.50", like the
# sample bodies). The json module cannot emit raw number text, so a Decimal is first written
# as a marked string and the marks are removed afterwards.
_NUM_MARK = "\u0000#"

_NUM_RE = re.compile(r'"\\u0000#(-?[0-9]+(?:\.[0-9]+)?)"')


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return f"{_NUM_MARK}{obj:f}"
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def _dumps(obj: Any) -> bytes:
    text = json.dumps(obj, default=_json_default, ensure_ascii=False, separators=(",", ":"))
    return _NUM_RE.sub(r"\1", text).encode("utf-8")


def _parse_day(value: Any, default: date) -> date:
    if value is None or value == "":
        return default
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _status_code(value: Any, names: Mapping[str, int], what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        code = value
    elif str(value).strip().isdigit():
        code = int(str(value).strip())
    else:
        try:
            code = names[str(value).strip().lower()]
        except KeyError:
            raise ValueError(f"unknown {what} {value!r}") from None
    if code not in names.values():
        raise ValueError(f"unknown {what} {value!r}")
    return code


class _Table:
    """Rows of one resource in one company, kept in key order for stable keyset paging."""

    def __init__(self, order: Callable[[Mapping[str, Any]], tuple]) -> None:
        self._order = order
        self._keys: list[tuple] = []
        self._rows: dict[tuple, dict[str, Any]] = {}

    def put(self, row: dict[str, Any]) -> tuple:
        key = self._order(row)
        if key not in self._rows:
            bisect.insort(self._keys, key)
        self._rows[key] = row
        return key

    def get(self, key: tuple) -> dict[str, Any] | None:
        return self._rows.get(key)

    def rows(self) -> Iterator[dict[str, Any]]:
        for k in self._keys:
            yield self._rows[k]

    def after(self, key: tuple | None) -> Iterator[tuple[tuple, dict[str, Any]]]:
        i = 0 if key is None else bisect.bisect_right(self._keys, key)
        while i < len(self._keys):
            k = self._keys[i]
            yield k, self._rows[k]
            i += 1

    def __len__(self) -> int:
        return len(self._keys)


@dataclass(frozen=True)
class _Bulk:
    """``count`` synthetic rows numbered from ``first``, made on demand (benchmarks)."""

    first: int
    count: int
    base: datetime


def _order_for(resource: str) -> Callable[[Mapping[str, Any]], tuple]:
    if resource == "payables":
        return lambda r: (r["_type_code"], r["Key"]["Id"])
    if resource == "gl":
        return lambda r: (int(r["Key"]["JournalId"]), int(r["Key"]["Year"]))
    return lambda r: (r["Key"]["Id"],)


class _Company:
    def __init__(self, company_id: int, name: str) -> None:
        self.id = company_id
        self.name = name
        self.tables: dict[str, _Table] = {r.name: _Table(_order_for(r.name)) for r in RESOURCES}
        self.bulk: dict[str, list[_Bulk]] = {r.name: [] for r in RESOURCES}
        for cid, name, symbol, iso in CURRENCIES:
            self.tables["currencies"].put({"Key": {"Id": cid}, "Name": name, "Symbol": symbol, "ISOCode": iso})
        self.next_voucher = 700
        self.next_po = 2110
        self.next_receipt = 1188
        self.next_journal = 3419


def _strip(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row without internal ``_`` fields; shares nested values, so serialise under the lock."""
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _public(row: Mapping[str, Any]) -> dict[str, Any]:
    """The body of a stored row: internal ``_`` fields dropped, nested values copied."""
    return json.loads(_dumps({k: v for k, v in row.items() if not k.startswith("_")}), parse_float=Decimal)


def _vendor_row(
    vid: str, name: str, cls: str, city: str, state: str, country: str, phone: str, terms: str, currency: str,
    hold: bool, active: bool, approval: str, *, created: str, modified: str,
) -> dict[str, Any]:
    return {
        "Key": {"Id": vid}, "Name": name, "ClassKey": {"Id": cls}, "IsActive": bool(active), "IsOnHold": bool(hold),
        "IsOneTime": False, "City": city, "State": state, "CountryRegion": country,
        "PhoneNumbers": [{"Value": phone}] if phone else [], "PaymentTermsKey": {"Id": terms},
        "CurrencyKey": {"Id": currency}, "CreatedDate": created, "ModifiedDate": modified,
        "WorkflowApprovalStatus": approval,
    }


def _vendor_stub(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"Key": {"Id": row["VendorKey"]["Id"]}, "Name": row.get("VendorName", ""), "CurrencyKey": {"Id": CURRENCY}}


def _payables_row(
    voucher: str, doc_type: int, vendor: Mapping[str, Any], docno: str, amount: Decimal, doc_date: date,
    due: date | None, *, state: str, batch: str, on_hold: bool, workflow: str, po_number: str,
    posted_date: str | None, modified: str, currency: str | None = None,
) -> dict[str, Any]:
    cur = currency or vendor.get("CurrencyKey", {}).get("Id", CURRENCY)
    source = "PM_Payment" if doc_type == 6 else "PM_Trxent"
    return {
        "_type_code": doc_type,
        "Key": {"Id": voucher}, "Type": _DOC_TYPES[doc_type], "TransactionState": state,
        "VendorKey": {"Id": vendor["Key"]["Id"]}, "VendorName": vendor.get("Name", ""),
        "VendorDocumentNumber": docno, "BatchKey": {"Id": batch, "Source": source},
        "Date": _day(doc_date), "GeneralLedgerPostingDate": _day(doc_date),
        "DueDate": _day(due) if due else None,
        "DocumentAmount": _money(amount, cur), "CurrentTrxAmount": _money(amount, cur),
        "PONumber": po_number, "IsVoided": False, "OnHold": bool(on_hold),
        "PostedDate": posted_date, "PostedBy": "sa" if posted_date else "", "ModifiedBy": "sa",
        "ModifiedDate": modified, "WorkflowStatus": workflow,
    }


def _line_tuple(x: Any) -> tuple[str, str, Decimal, Decimal, str]:
    if isinstance(x, Mapping):
        return (str(x["item"]), str(x.get("description", "")), Decimal(str(x["quantity"])),
                Decimal(str(x["unit_cost"])), str(x.get("site", "WAREHOUSE")))
    item, desc, qty, cost, *rest = x
    return str(item), str(desc), Decimal(str(qty)), Decimal(str(cost)), str(rest[0] if rest else "WAREHOUSE")


def _po_row(
    number: str, vendor: Mapping[str, Any], status: int, approval: int, order_date: date, required: date,
    buyer: str, lines: Sequence[tuple[str, str, Decimal, Decimal, str]], *, created: str, modified: str,
) -> dict[str, Any]:
    cur = vendor.get("CurrencyKey", {}).get("Id", CURRENCY)
    body_lines = []
    for i, (item, desc, qty, cost, site) in enumerate(lines, start=1):
        body_lines.append({
            "LineSequenceNumber": 16384 * i, "ItemKey": {"Id": item}, "ItemDescription": desc,
            "QuantityOrdered": qty, "UnitCost": _money(cost, cur), "ExtendedCost": _money(qty * cost, cur),
            "SiteKey": {"Id": site}, "RequiredDate": _day(required),
        })
    subtotal = sum((qty * cost for _, _, qty, cost, _ in lines), Decimal(0))
    return {
        "Key": {"Id": number}, "Type": "Standard", "Status": status, "TransactionState": "Work",
        "VendorKey": {"Id": vendor["Key"]["Id"]}, "VendorName": vendor.get("Name", ""),
        "Date": _day(order_date), "RequestedDate": _day(required), "BuyerKey": {"Id": buyer},
        "Subtotal": _money(subtotal, cur), "RemainingSubtotal": _money(subtotal, cur), "IsOnHold": False,
        "RevisionNumber": 0, "WorkflowApprovalStatus": approval, "Lines": body_lines,
        "CreatedDate": created, "ModifiedDate": modified,
    }


def _receipt_row(
    number: str, vendor: Mapping[str, Any], vendor_doc: str, receipt_date: date, state: str,
    lines: Sequence[tuple[str, str, str, Decimal, Decimal, str]], *, voucher: str, type_name: str = "Shipment",
) -> dict[str, Any]:
    cur = vendor.get("CurrencyKey", {}).get("Id", CURRENCY)
    body_lines = [
        {
            "LineNumber": 16384 * i, "PONumber": po, "ItemKey": {"Id": item}, "ItemDescription": desc,
            "QuantityShipped": qty, "UnitCost": _money(cost, cur), "ExtendedCost": _money(qty * cost, cur),
            "SiteKey": {"Id": site},
        }
        for i, (po, item, desc, qty, cost, site) in enumerate(lines, start=1)
    ]
    return {
        "Key": {"Id": number}, "Type": type_name, "TransactionState": state,
        "VendorKey": {"Id": vendor["Key"]["Id"]}, "VendorName": vendor.get("Name", ""),
        "VendorDocumentNumber": vendor_doc, "ReceiptDate": _day(receipt_date),
        "GeneralLedgerPostingDate": _day(receipt_date), "VoucherNumber": voucher,
        "Subtotal": _money(sum((ln[3] * ln[4] for ln in lines), Decimal(0)), cur),
        "Lines": body_lines, "CreatedDate": _day(receipt_date),
        # POP receipt tables have no DEX_ROW_TS, so the only change date is the day-granular
        # MODIFDT, without an offset: a poller must look back a whole day.
        "ModifiedDate": _day(receipt_date),
    }


def _gl_line(x: Any) -> tuple[str, Decimal, Decimal, str]:
    if isinstance(x, Mapping):
        acct, dr, cr, desc = x["account"], x.get("debit", 0), x.get("credit", 0), x.get("description", "")
    else:
        acct, dr, cr, *rest = x
        desc = rest[0] if rest else ""
    dr_d, cr_d = Decimal(str(dr or 0)), Decimal(str(cr or 0))
    if dr_d < 0 or cr_d < 0 or (dr_d and cr_d) or not (dr_d or cr_d):
        raise ValueError(f"line {acct}: exactly one of debit or credit must be a positive amount")
    if not str(acct).strip():
        raise ValueError("every line needs an account")
    return str(acct), dr_d, cr_d, str(desc)


def _gl_row(
    jid: int, trx_date: date, source: str, reference: str, state: str,
    lines: Sequence[tuple[str, Decimal, Decimal, str]], *, modified: str, posted_date: date | None,
) -> dict[str, Any]:
    return {
        "Key": {"JournalId": jid, "Year": trx_date.year}, "TransactionState": state, "LedgerType": "Base",
        "SourceDocumentKey": {"Id": source}, "Reference": reference, "TransactionDate": _day(trx_date),
        "FiscalPeriod": f"{trx_date:%Y-%m}", "OriginatingPostedDate": _day(posted_date) if posted_date else None,
        "BatchKey": {"Id": "", "Source": "GL_Normal"}, "IsVoided": False, "BackOutJournalId": None,
        "OriginalJournalId": None, "CurrencyKey": {"Id": CURRENCY},
        "Lines": [
            {
                "SequenceNumber": 16384 * i, "GLAccountKey": {"Id": acct}, "Description": desc or reference,
                "DebitAmount": _money(dr), "CreditAmount": _money(cr),
            }
            for i, (acct, dr, cr, desc) in enumerate(lines, start=1)
        ],
        "ModifiedDate": modified,
    }


_BULK_VENDORS = ("ACETRAVE0001", "ADVANCED0001", "CENTRALC0001", "SMITHSON0001")


def _bulk_row(kind: str, co: _Company, n: int, modified: datetime) -> dict[str, Any]:
    """Synthetic row number ``n`` of ``kind``, the same every time it is asked for."""
    stamp = _ts(modified)
    vid = _BULK_VENDORS[n % len(_BULK_VENDORS)]
    vendor = co.tables["vendors"].get((vid,)) or {"Key": {"Id": vid}, "Name": f"Vendor {vid}"}
    amount = Decimal(1000 + (n * 7919) % 2_500_000) / 100
    day = modified.date()
    if kind == "vendors":
        return _vendor_row(
            f"BULK{n:08d}", f"Bulk Vendor {n}", "USA-US-I", "Chicago", "IL", "USA", "", "Net 30", CURRENCY,
            False, True, "Approved", created=_day(day), modified=stamp,
        )
    if kind == "payables":
        return _payables_row(
            f"9{n:016d}", 1, vendor, f"BLK-{n:08d}", amount, day, day + timedelta(30), state="Open",
            batch="AP-BULK", on_hold=False, workflow="Approved", po_number="", posted_date=_day(day), modified=stamp,
        )
    if kind == "purchase_orders":
        return _po_row(
            f"PB{n:08d}", vendor, 1 + n % 4, 6, day, day + timedelta(14), "BULK",
            [("100XLG", "Green Phone", Decimal(1 + n % 20), Decimal("119.00"), "WAREHOUSE")],
            created=_day(day), modified=stamp,
        )
    if kind == "receipts":
        return _receipt_row(
            f"RB{n:08d}", vendor, f"PS-B{n:08d}", day, "History",
            [(f"PB{n:08d}", "100XLG", "Green Phone", Decimal(1 + n % 20), Decimal("119.00"), "WAREHOUSE")],
            voucher="",
        )
    return _gl_row(
        1_000_000 + n, day, "GJ", f"Bulk entry {n}", "Open",
        [("000-6170-00", amount, Decimal(0), ""), ("000-2100-00", Decimal(0), amount, "")],
        modified=stamp, posted_date=day,
    )


def _aware(value: Any) -> datetime:
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
