"""The SYSPRO documents we watch, as data: one ``Entity`` per document, one tuple per transport.

Tables and columns are SYSPRO's own: ``ApInvoice``,
``PorMasterHdr`` (+ ``PorMasterDetail``), ``GrnDetails``, ``ApJnlSummary`` and
``GenJournalDetail``. There is no ``PostDate``, ``GenBalance`` or ``ApPosting``.

**Why two tuples.** The change watermark depends on the transport:

* ``ENTITIES_ENET`` (e.net REST, ``COMFND``): cursor = the ``TimeStamp`` rowversion, the only
  watermark that also sees updates such as a payment lowering ``MthInvBal1`` or a PO changing
  status. Whether COMFND exposes it on a real system is unknown; the simulator does,
  and this must be checked on a live SYSPRO before production.
* ``ENTITIES_ODATA`` (OData v4): ``TimeStamp`` comes back as ``Edm.Binary`` and ASP.NET OData over
  Entity Framework is not known to range-compare binary values (inferred), so the cursor is each document's date
  column with a 3-day lookback. Date cursors see inserts only; rows re-read in the
  lookback are dropped by the outbox's (key, version) uniqueness.

``ENTITIES`` is the e.net tuple (the primary, high-fidelity API); ``entities_for(transport)``
picks one. Both carry the same entity names and fields, so routes and templates do not care
which transport runs.

**Columns SYSPRO does not hold.** A few fields need another table or arithmetic. They are named
with a leading ``@`` and declared in ``SysproOptions.derive`` as ``Lookup`` (supplier name from
``ApSupplier``), ``Rollup`` (PO line count and total from ``PorMasterDetail``), ``Period``
(``YYYY-MM`` from year and month columns) and ``SignSplit`` (GL debit/credit from the signed
``EntryValue``). The client requests ``source_columns(entity)`` and fills the ``@`` columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Union

from erp_slack.model import Cursor, Entity, check_entities
from erp_slack.slack.templates import TEMPLATES

__all__ = [
    "ENTITIES",
    "ENTITIES_ENET",
    "ENTITIES_ODATA",
    "TRANSPORTS",
    "DATE_LOOKBACK",
    "Lookup",
    "Rollup",
    "Period",
    "SignSplit",
    "Derivation",
    "derivations",
    "SysproOptions",
    "source_columns",
    "entities_for",
]

TRANSPORTS = ("enet", "odata")

# date columns are date-only and can be back-dated by a day or two; re-read 3 days.
DATE_LOOKBACK = timedelta(days=3)

DERIVED_PREFIX = "@"


@dataclass(frozen=True)
class Lookup:
    """Fill ``column`` with ``table.value`` from the row of ``table`` whose ``match`` equals ours.

    The client caches the looked-up values for its lifetime (one flow run), so a page of 500
    invoices from 40 suppliers costs a handful of small queries, once.
    """

    column: str
    table: str
    match: str
    value: str

    @property
    def needs(self) -> tuple[str, ...]:
        return (self.match,)

    @property
    def produces(self) -> tuple[str, ...]:
        return (self.column,)


@dataclass(frozen=True)
class Rollup:
    """Count the child rows of ``table`` per ``match`` value and sum ``quantity`` x ``price``.

    ``order`` is the child table's key, used for paging through the children. ``changes`` names
    the child table's own rowversion column: a child row changed since the watermark (a line's
    quantity or price edited, the header untouched) makes its parent a change too, on a transport
    that watches rowversions. Rowversions come from one counter for the whole database, so the
    parent's cursor becomes the later of its own and its children's, under the same watermark.
    """

    table: str
    match: str
    order: tuple[str, ...]
    quantity: str
    price: str
    count_column: str
    total_column: str
    changes: str | None = None

    @property
    def needs(self) -> tuple[str, ...]:
        return (self.match,)

    @property
    def produces(self) -> tuple[str, ...]:
        return (self.count_column, self.total_column)


@dataclass(frozen=True)
class Period:
    """``column`` = ``YYYY-MM`` from a year and a month (period) column."""

    column: str
    year: str
    month: str

    @property
    def needs(self) -> tuple[str, ...]:
        return (self.year, self.month)

    @property
    def produces(self) -> tuple[str, ...]:
        return (self.column,)


@dataclass(frozen=True)
class SignSplit:
    """Debit (positive ``value``) and credit (minus a negative ``value``) columns (the sign convention is inferred, not documented)."""

    value: str
    debit_column: str
    credit_column: str

    @property
    def needs(self) -> tuple[str, ...]:
        return (self.value,)

    @property
    def produces(self) -> tuple[str, ...]:
        return (self.debit_column, self.credit_column)


Derivation = Union[Lookup, Rollup, Period, SignSplit]


@dataclass(frozen=True)
class SysproOptions:
    """What a SYSPRO entity asks of the client beyond its columns: the derived columns."""

    derive: tuple[Derivation, ...] = ()


def derivations(entity: Entity) -> tuple[Derivation, ...]:
    """The derived columns an entity declares (none for an entity of another source)."""
    return entity.options.derive if isinstance(entity.options, SysproOptions) else ()


def source_columns(entity: Entity) -> tuple[str, ...]:
    """Columns to request from SYSPRO: every mapped column but the derived ones, plus inputs."""
    produced = {c for d in derivations(entity) for c in d.produces}
    cols = [c for c in entity.columns if c not in produced]
    for d in derivations(entity):
        cols.extend(c for c in d.needs if c not in cols)
    return tuple(cols)


def entities_for(transport: str) -> tuple[Entity, ...]:
    """The entity tuple for ``enet`` or ``odata`` (see the module docstring for why they differ)."""
    try:
        return {"enet": ENTITIES_ENET, "odata": ENTITIES_ODATA}[transport]
    except KeyError:
        raise ValueError(f"unknown SYSPRO transport {transport!r}; expected one of {TRANSPORTS}") from None


def _pair(
    *,
    name: str,
    title: str,
    table: str,
    key: tuple[str, ...],
    date_field: str,
    fields: dict[str, str],
    template: str,
    types: dict[str, str],
    required: tuple[str, ...] = (),
    labels: dict[str, dict[str, str]] | None = None,
    status_field: str | None = None,
    currency_field: str | None = None,
    amount_field: str | None = None,
    party_field: str | None = None,
    derive: tuple[Derivation, ...] = (),
    period_field: str | None = None,
) -> tuple[Entity, Entity]:
    """The e.net and the OData variant of one document; they differ only in the cursor.

    Both watch the same fields, so a document hashes to the same version whichever transport
    read it (switching transport re-posts nothing). A column looked up from another table (the
    supplier name from ``ApSupplier``) is not part of the document and is never watched:
    renaming a supplier is no news about its invoices.
    """
    looked_up = {d.column for d in derive if isinstance(d, Lookup)}
    common = dict(
        source="syspro", name=name, title=title, table=table, key=key, template=template,
        required=required, labels=labels or {}, status_field=status_field, currency_field=currency_field,
        amount_field=amount_field, party_field=party_field, options=SysproOptions(derive), period_field=period_field,
        watch=tuple(f for f, column in fields.items() if column not in looked_up),
    )
    odata = Entity(
        cursor=Cursor(fields[date_field], "date", lookback=DATE_LOOKBACK),
        fields=fields,
        types=types,
        **common,  # type: ignore[arg-type]
    )
    enet = Entity(
        cursor=Cursor("TimeStamp", "rowversion"),
        fields={**fields, "row_version": "TimeStamp"},
        types={**types, "row_version": "int"},
        # A backfill given dates reads the same documents by their date column (e.net can).
        by_date=odata,
        **common,  # type: ignore[arg-type]
    )
    return enet, odata


_SUPPLIER_NAME = Lookup(column="@SupplierName", table="ApSupplier", match="Supplier", value="SupplierName")
# SYSPRO keeps no hold flag per supplier invoice: an invoice shows as on hold when its supplier
# is (ApSupplier.OnHold), as the supplier stood when the invoice was read. Looked up, so never
# watched: putting a supplier on hold is news about the supplier (the vendor entity), not a new
# version of each of its invoices.
_SUPPLIER_HOLD = Lookup(column="@SupplierOnHold", table="ApSupplier", match="Supplier", value="OnHold")
_YES_NO = {"Y": "Yes", "N": "No", "": "No"}

# Supplier invoices. The amount is OrigInvValue, the open balance MthInvBal1 (open-source
# SYSPRO integrations read it as the current balance). JournalDate is the posting date - the OData cursor, because
# InvoiceDate is the supplier's document date and is often back-dated.
AP_INVOICE_ENET, AP_INVOICE_ODATA = _pair(
    name="ap_invoice",
    title="Supplier invoice",
    table="ApInvoice",
    key=("Supplier", "Invoice"),
    date_field="posting_date",
    fields={
        "supplier": "Supplier",
        "invoice": "Invoice",
        "supplier_name": _SUPPLIER_NAME.column,
        "amount": "OrigInvValue",
        "balance": "MthInvBal1",
        "currency": "Currency",
        "invoice_date": "InvoiceDate",
        "due_date": "DueDate",
        "posting_date": "JournalDate",
        "status": "InvoiceStatus",  # code meanings are unknown: shown as SYSPRO stores them
        "hold": _SUPPLIER_HOLD.column,
        "reference": "Reference",
        "journal": "Journal",
        "branch": "Branch",
    },
    labels={"hold": _YES_NO},
    template="supplier_invoice",
    period_field="posting_date",
    types={
        "amount": "decimal",
        "balance": "decimal",
        "invoice_date": "date",
        "due_date": "date",
        "posting_date": "date",
        "journal": "int",
    },
    required=("supplier", "invoice", "amount"),
    status_field="status",
    currency_field="currency",
    amount_field="amount",
    party_field="supplier",
    derive=(_SUPPLIER_NAME, _SUPPLIER_HOLD),
)

# Purchase orders. No total column exists: count and value come from the detail lines.
# OrderStatus codes as open-source SYSPRO integrations decode them.
PURCHASE_ORDER_ENET, PURCHASE_ORDER_ODATA = _pair(
    name="purchase_order",
    title="Purchase order",
    table="PorMasterHdr",
    key=("PurchaseOrder",),
    date_field="order_date",
    fields={
        "po": "PurchaseOrder",
        "supplier": "Supplier",
        "supplier_name": _SUPPLIER_NAME.column,
        "status": "OrderStatus",
        "line_count": "@LineCount",
        "total": "@OrderTotal",
        "currency": "Currency",
        "order_date": "OrderEntryDate",
        "due_date": "OrderDueDate",
        "completed_date": "DatePoCompleted",
        "buyer": "Buyer",
        "warehouse": "Warehouse",
        "order_type": "OrderType",
    },
    template="purchase_order",
    period_field="order_date",
    types={
        "line_count": "int",
        "total": "decimal",
        "order_date": "date",
        "due_date": "date",
        "completed_date": "date",
    },
    required=("po", "supplier"),
    labels={
        "status": {"0": "In process", "1": "Ready to print", "4": "Order printed",
                   "9": "Completed", "*": "Cancelled"},
    },
    status_field="status",
    currency_field="currency",
    amount_field="total",
    party_field="supplier",
    derive=(
        _SUPPLIER_NAME,
        Rollup(table="PorMasterDetail", match="PurchaseOrder", order=("PurchaseOrder", "Line"),
               quantity="MOrderQty", price="MPrice", count_column="@LineCount",
               total_column="@OrderTotal", changes="TimeStamp"),
    ),
)

# Sales orders. Like a PO, the order holds no total: count and value come from its lines
# (SorDetail). The customer's name is on the order itself. OrderStatus codes are SYSPRO's
# sales order statuses; the labels below are the common ones, other codes show as stored.
SALES_ORDER_ENET, SALES_ORDER_ODATA = _pair(
    name="sales_order",
    title="Sales order",
    table="SorMaster",
    key=("SalesOrder",),
    date_field="order_date",
    fields={
        "order": "SalesOrder",
        "customer": "Customer",
        "customer_name": "CustomerName",
        "status": "OrderStatus",
        "line_count": "@LineCount",
        "total": "@OrderTotal",
        "currency": "Currency",
        "order_date": "OrderDate",
        "ship_date": "ReqShipDate",
        "customer_po": "CustomerPoNumber",
        "salesperson": "Salesperson",
        "branch": "Branch",
        "warehouse": "Warehouse",
    },
    template="sales_order",
    period_field="order_date",
    types={"line_count": "int", "total": "decimal", "order_date": "date", "ship_date": "date"},
    required=("order", "customer"),
    labels={
        "status": {"0": "In process", "1": "Open order", "2": "Open back order", "3": "Released back order",
                   "4": "In warehouse", "8": "To invoice", "9": "Complete", "S": "Suspense", "*": "Cancelled"},
    },
    status_field="status",
    currency_field="currency",
    amount_field="total",
    party_field="customer",
    derive=(
        Rollup(table="SorDetail", match="SalesOrder", order=("SalesOrder", "SalesOrderLine"),
               quantity="MOrderQty", price="MPrice", count_column="@LineCount",
               total_column="@OrderTotal", changes="TimeStamp"),
    ),
)

# Goods receipts. A GRN has one row per PO line received; the key is the one GrnMatching
# joins on (Supplier, Grn, GrnSource, Journal, JournalEntry). OrigReceiptDate is the date cursor.
GOODS_RECEIPT_ENET, GOODS_RECEIPT_ODATA = _pair(
    name="goods_receipt",
    title="Goods receipt",
    table="GrnDetails",
    key=("Supplier", "Grn", "GrnSource", "Journal", "JournalEntry"),
    date_field="receipt_date",
    fields={
        "grn": "Grn",
        "supplier": "Supplier",
        "supplier_name": _SUPPLIER_NAME.column,
        "source": "GrnSource",
        "journal": "Journal",
        "journal_entry": "JournalEntry",
        "po": "PurchaseOrder",
        "po_line": "PurchaseOrderLin",
        "stock_code": "StockCode",
        "description": "StockDescription",
        "warehouse": "Warehouse",
        "quantity": "QtyReceived",
        "value": "OrigGrnValue",
        "currency": "PostCurrency",
        "receipt_date": "OrigReceiptDate",
    },
    template="goods_receipt",
    period_field="receipt_date",
    types={
        "journal": "int",
        "journal_entry": "int",
        "po_line": "int",
        "quantity": "decimal",
        "value": "decimal",
        "receipt_date": "date",
    },
    required=("grn", "supplier"),
    currency_field="currency",
    amount_field="value",
    party_field="supplier",
    derive=(_SUPPLIER_NAME,),
)

# AP postings: one ApJnlSummary row per posted transaction ("ApPosting" does not exist).
# Journals are numbered per period, so the key carries the year and month.
AP_JOURNAL_ENET, AP_JOURNAL_ODATA = _pair(
    name="ap_journal",
    title="AP posting",
    table="ApJnlSummary",
    key=("TrnYear", "TrnMonth", "Journal", "EntryNumber"),
    date_field="posting_date",
    fields={
        "year": "TrnYear",
        "month": "TrnMonth",
        "journal": "Journal",
        "entry": "EntryNumber",
        "period": "@Period",
        "supplier": "Supplier",
        "supplier_name": _SUPPLIER_NAME.column,
        "reference": "Invoice",
        "amount": "InvoiceValue",
        "posting_date": "TrnDate",
        "kind": "TransactionCode",  # code meanings are unknown; BB excludes 'X'
        "gl_code": "SupplierGlCode",
    },
    template="ap_journal",
    period_field="posting_date",
    types={
        "year": "int",
        "month": "int",
        "journal": "int",
        "entry": "int",
        "amount": "decimal",
        "posting_date": "date",
    },
    required=("journal", "entry", "amount"),
    amount_field="amount",
    party_field="supplier",
    derive=(_SUPPLIER_NAME, Period(column="@Period", year="TrnYear", month="TrnMonth")),
)

# GL journal lines. EntryValue is signed: debit positive, credit negative inferred.
# EntryPosted N -> Y is an update only the rowversion sees.
GL_JOURNAL_ENET, GL_JOURNAL_ODATA = _pair(
    name="gl_journal",
    title="GL journal entry",
    table="GenJournalDetail",
    key=("GlYear", "GlPeriod", "Journal", "EntryNumber"),
    date_field="posting_date",
    fields={
        "year": "GlYear",
        "period_number": "GlPeriod",
        "journal": "Journal",
        "entry": "EntryNumber",
        "period": "@Period",
        "account": "GlCode",
        "description": "Comment",
        "reference": "Reference",
        "amount": "EntryValue",
        "debit": "@Debit",
        "credit": "@Credit",
        "posting_date": "EntryDate",
        "transaction_date": "TransactionDate",
        "status": "EntryPosted",
        "kind": "EntryType",
    },
    template="gl_journal",
    period_field="posting_date",
    types={
        "year": "int",
        "period_number": "int",
        "journal": "int",
        "entry": "int",
        "amount": "decimal",
        "debit": "decimal",
        "credit": "decimal",
        "posting_date": "date",
        "transaction_date": "date",
    },
    required=("journal", "entry", "account", "amount"),
    labels={"status": {"Y": "Posted", "N": "Not posted"}},
    status_field="status",
    amount_field="amount",
    derive=(
        Period(column="@Period", year="GlYear", month="GlPeriod"),
        SignSplit(value="EntryValue", debit_column="@Debit", credit_column="@Credit"),
    ),
)

ENTITIES_ENET: tuple[Entity, ...] = (
    AP_INVOICE_ENET, PURCHASE_ORDER_ENET, GOODS_RECEIPT_ENET, AP_JOURNAL_ENET, GL_JOURNAL_ENET, SALES_ORDER_ENET,
)
ENTITIES_ODATA: tuple[Entity, ...] = (
    AP_INVOICE_ODATA, PURCHASE_ORDER_ODATA, GOODS_RECEIPT_ODATA, AP_JOURNAL_ODATA, GL_JOURNAL_ODATA,
    SALES_ORDER_ODATA,
)
ENTITIES: tuple[Entity, ...] = ENTITIES_ENET


def _check_derived(entities: tuple[Entity, ...]) -> None:
    """Every ``@`` column is produced by a derivation, and no real column starts with ``@``."""
    for e in entities:
        produced = {c for d in derivations(e) for c in d.produces}
        for f, col in e.fields.items():
            if col.startswith(DERIVED_PREFIX) and col not in produced:
                raise ValueError(f"entity {e.source}.{e.name}: field {f!r} maps {col!r}, which no derivation produces")
        for c in produced:
            if not c.startswith(DERIVED_PREFIX):
                raise ValueError(f"entity {e.source}.{e.name}: derived column {c!r} must start with {DERIVED_PREFIX!r}")


check_entities(ENTITIES, TEMPLATES)
check_entities(ENTITIES_ODATA, TEMPLATES)
_check_derived(ENTITIES_ENET + ENTITIES_ODATA)
