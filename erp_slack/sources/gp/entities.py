"""The Dynamics GP entities we watch, as data: one frozen ``Entity`` per document kind.

Columns are the *flattened* JSON paths ``GpClient`` produces from an SBA body: nested objects
join with dots (``VendorKey.Id``, ``DocumentAmount.Value``), list items get their index
(``PhoneNumbers.0.Value``), and for line-level entities the exploded list keeps its name as a
prefix (``Lines.ItemKey.Id``). Field names are the template names of
``erp_slack.slack.templates`` so one template serves SYSPRO and GP alike.

Every entity uses ``ModifiedDate`` (UTC, DEX_ROW_TS semantics) as a timestamp cursor with a
lookback. The SBA service is not known to filter, so
the client filters on it; deletions never show up.

What an entity asks of ``GpClient`` beyond its columns is its ``GpOptions``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Literal, Mapping

from erp_slack.model import Cursor, Entity, check_entities
from erp_slack.slack.templates import TEMPLATES

__all__ = [
    "GpOptions",
    "SoapCalls",
    "ENTITIES",
    "PAYABLES_INVOICE",
    "PURCHASE_ORDER",
    "GOODS_RECEIPT",
    "GL_JOURNAL",
    "VENDOR",
    "LOOKBACK",
    "RECEIPT_LOOKBACK",
    "PO_STATUS_LABELS",
    "APPROVAL_LABELS",
]

# Re-read this far behind the watermark: DEX_ROW_TS is stamped by triggers on commit, so a
# transaction that commits late can carry a stamp older than rows already seen.
LOOKBACK = timedelta(minutes=10)
# POP receipts have no DEX_ROW_TS; their only change date is the day-granular, server-local
# MODIFDT, so re-read two whole days to cover the day boundary and time zones.
RECEIPT_LOOKBACK = timedelta(days=2)

_CURSOR = Cursor("ModifiedDate", kind="timestamp", lookback=LOOKBACK)


@dataclass(frozen=True)
class GpOptions:
    """What a GP entity asks of the client beyond its columns.

    Attributes:
        explode: A list field split into one row per element (receipt and journal lines).
        match: Column -> accepted values; other rows are dropped (only invoices, say).
        unposted: Column -> values that mark unposted work documents; dropped unless the client
            was built with ``include_unposted=True`` (GP keeps work, open and history tables).
        derive: New column -> ``("count", list field)``, ``("minus", column_a, column_b)`` or
            ``("posting", column)`` ("Unposted" for an unposted work document, else the column).
        aliases: Column -> other shapes of the same fact, tried in order where GP's JSON is not
            documented: ``(column, how)`` with ``how`` None (as is) or ``"year"`` (of a date).
    """

    explode: str | None = None
    match: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    unposted: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    derive: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    aliases: Mapping[str, tuple[tuple[str, Literal["year"] | None], ...]] = field(default_factory=dict)
    soap: "SoapCalls | None" = None


@dataclass(frozen=True)
class SoapCalls:
    """How the Web Services transport reads an entity: a list operation with ``ModifiedDate``
    criteria, then each listed document that changed in full by its key.

    Attributes:
        list_op: ``Get<X>List``; its summaries carry ``Key`` and ``ModifiedDate``.
        get_op: ``Get<X>ByKey``, called with a summary's ``Key``; the row is the summary and the
            document merged (the document wins).
        states: ``(enumeration, posted states, unposted states)`` for the ``TransactionState``
            criterion; unposted ones are asked for only when unposted documents are enabled.
        lists: Other list criteria: field -> ``(enumeration, values)`` (payables ``Type``).
    """

    list_op: str
    get_op: str
    states: tuple[str, tuple[str, ...], tuple[str, ...]] | None = None
    lists: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)


def _labels(pairs: Mapping[int, str]) -> Mapping[str, str]:
    """Code -> label, accepting the code as a number or the label itself (the SBA wire form is unknown)."""
    out = {str(code): label for code, label in pairs.items()}
    out.update({label: label for label in pairs.values()})
    return MappingProxyType(out)


# PurchaseOrderStatus.
PO_STATUS_LABELS = _labels({1: "New", 2: "Released", 3: "Change Order", 4: "Received", 5: "Closed", 6: "Canceled"})
# ApprovalWorkflowStatus.
APPROVAL_LABELS = _labels({
    1: "Not Submitted", 2: "Submitted", 3: "No Approval Needed", 4: "Pending Approval", 5: "Pending Changes",
    6: "Approved", 7: "Rejected", 8: "Workflow Ended", 9: "Not Enabled", 10: "Disabled",
})
# JSON booleans reach ``normalise`` as Python bools and are cleaned to "True"/"False".
_YES_NO = MappingProxyType({"True": "Yes", "False": "No", "true": "Yes", "false": "No", "1": "Yes", "0": "No"})
# Payables TransactionState: work = unposted, open = posted and not fully applied,
# history = fully applied; for invoices that means paid.
_PAYABLES_STATE = MappingProxyType({
    "Work": "Unposted", "1": "Unposted", "Open": "Posted", "2": "Posted", "History": "Paid", "3": "Paid",
})
_RECEIPT_STATE = MappingProxyType({"Work": "Unposted", "1": "Unposted", "History": "Posted", "3": "Posted"})
_GL_STATE = MappingProxyType({
    "Work": "Unposted", "1": "Unposted", "Open": "Open year", "2": "Open year", "History": "History year",
    "3": "History year",
})
_GL_STATUS = MappingProxyType({"True": "Voided", "False": "Posted", "Unposted": "Unposted"})
_UNPOSTED = MappingProxyType({"TransactionState": ("Work", "1")})


PAYABLES_INVOICE = Entity(
    source="gp",
    name="payables_invoice",
    title="Payables invoice",
    table="Purchasing/Payables/Transactions",
    # Keyed by voucher and document type, never by table: a document keeps its voucher as it
    # moves work -> open -> history.
    key=("Type", "Key.Id"),
    cursor=_CURSOR,
    fields={
        "doc_type": "Type",
        "voucher": "Key.Id",
        "invoice": "VendorDocumentNumber",
        "supplier": "VendorKey.Id",
        "supplier_name": "VendorName",
        "amount": "DocumentAmount.Value",
        "balance": "CurrentTrxAmount.Value",
        "currency": "DocumentAmount.Currency",
        "invoice_date": "Date",
        "due_date": "DueDate",
        "status": "TransactionState",
        "approval": "WorkflowStatus",
        "hold": "OnHold",
        "po": "PONumber",
        "batch": "BatchKey.Id",
        "modified": "ModifiedDate",
    },
    types={
        "amount": "decimal",
        "balance": "decimal",
        "invoice_date": "date",
        "due_date": "date",
        "modified": "datetime",
    },
    required=("voucher", "supplier"),
    labels={"status": _PAYABLES_STATE, "approval": APPROVAL_LABELS, "hold": _YES_NO},
    template="supplier_invoice",
    period_field="invoice_date",
    status_field="status",
    currency_field="currency",
    # The batch a draft sits in says nothing to readers; a new batch number is not a new version.
    watch=(
        "invoice", "supplier", "supplier_name", "amount", "balance", "currency", "invoice_date", "due_date",
        "status", "approval", "hold", "po",
    ),
    amount_field="amount",
    party_field="supplier",
    options=GpOptions(
        match={"Type": ("Invoice", "1")}, unposted=_UNPOSTED,
        aliases={"WorkflowStatus": (("Workflows.0.Status", None),)},
        soap=SoapCalls("GetPayablesDocumentList", "GetPayablesInvoiceByKey",
                       states=("PayablesTransactionState", ("Open", "History"), ("Work",)),
                       lists={"Type": ("PayablesDocumentType", ("Invoice",))}),
    ),
)

PURCHASE_ORDER = Entity(
    source="gp",
    name="purchase_order",
    title="Purchase order",
    table="Purchasing/Transactions",  # "Purchasing Transactions" in the catalog; POs there is inferred
    key=("Key.Id",),
    cursor=_CURSOR,
    fields={
        "po": "Key.Id",
        "supplier": "VendorKey.Id",
        "supplier_name": "VendorName",
        "status": "Status",
        "line_count": "LineCount",
        "total": "Subtotal.Value",
        "remaining": "RemainingSubtotal.Value",
        "currency": "Subtotal.Currency",
        "order_date": "Date",
        "due_date": "RequestedDate",
        "approval": "WorkflowApprovalStatus",
        "buyer": "BuyerKey.Id",
        "modified": "ModifiedDate",
    },
    types={
        "line_count": "int",
        "total": "decimal",
        "remaining": "decimal",
        "order_date": "date",
        "due_date": "date",
        "modified": "datetime",
    },
    required=("po", "supplier"),
    labels={"status": PO_STATUS_LABELS, "approval": APPROVAL_LABELS},
    template="purchase_order",
    period_field="order_date",
    status_field="status",
    currency_field="currency",
    amount_field="total",
    party_field="supplier",
    options=GpOptions(
        derive={"LineCount": ("count", "Lines")},
        # The Web Services schema lists a document's approval workflows instead of one status.
        aliases={"WorkflowApprovalStatus": (("Workflows.0.Status", None),)},
        soap=SoapCalls("GetPurchaseOrderList", "GetPurchaseOrderByKey"),
    ),
)

GOODS_RECEIPT = Entity(
    source="gp",
    name="goods_receipt",
    title="Goods receipt",
    # Not in the documented SBA catalog: a site may not expose it, so a 404 skips.
    table="Purchasing/Receipts",
    key=("Key.Id", "Lines.LineNumber"),
    cursor=Cursor("ModifiedDate", kind="timestamp", lookback=RECEIPT_LOOKBACK),
    fields={
        "grn": "Key.Id",
        "line": "Lines.LineNumber",
        "po": "Lines.PONumber",
        "supplier": "VendorKey.Id",
        "supplier_name": "VendorName",
        "stock_code": "Lines.ItemKey.Id",
        "description": "Lines.ItemDescription",
        "quantity": "Lines.QuantityShipped",
        "value": "Lines.ExtendedCost.Value",
        "currency": "Lines.ExtendedCost.Currency",
        "receipt_date": "ReceiptDate",
        "warehouse": "Lines.SiteKey.Id",
        "status": "TransactionState",
        "modified": "ModifiedDate",
    },
    types={
        "line": "int",
        "quantity": "decimal",
        "value": "decimal",
        "receipt_date": "date",
        "modified": "datetime",
    },
    required=("grn", "supplier"),
    labels={"status": _RECEIPT_STATE},
    template="goods_receipt",
    period_field="receipt_date",
    status_field="status",
    currency_field="currency",
    optional=True,
    amount_field="value",
    party_field="supplier",
    options=GpOptions(
        explode="Lines", unposted=_UNPOSTED,
        # The receipt line number may sit under the line's own Key, as PO lines have it.
        aliases={"Lines.LineNumber": (("Lines.Key.LineNumber", None), ("Lines.Key.SequenceNumber", None))},
        soap=SoapCalls("GetPurchaseReceiptList", "GetPurchaseReceiptByKey",
                       states=("PurchaseTransactionState", ("History",), ("Work",))),
    ),
)

GL_JOURNAL = Entity(
    source="gp",
    name="gl_journal",
    title="GL journal entry",
    # Not in the documented SBA catalog at all: optional, a 404 skips the entity.
    table="Financials/GeneralLedger/Transactions",
    # JRNENTRY is unique within a year; one row per line (GL20000/GL30000 are line tables).
    key=("Key.JournalId", "Key.Year", "Lines.SequenceNumber"),
    cursor=_CURSOR,
    fields={
        "journal": "Key.JournalId",
        "year": "Key.Year",
        "period": "FiscalPeriod",
        "entry": "Lines.SequenceNumber",
        "account": "Lines.GLAccountKey.Id",
        "description": "Lines.Description",
        "reference": "Reference",
        "source_doc": "SourceDocumentKey.Id",
        "amount": "Lines.NetAmount",
        "debit": "Lines.DebitAmount.Value",
        "credit": "Lines.CreditAmount.Value",
        "currency": "Lines.DebitAmount.Currency",
        "posting_date": "TransactionDate",
        "status": "PostingStatus",
        "state": "TransactionState",
        "reverses": "OriginalJournalId",
        "modified": "ModifiedDate",
    },
    types={
        "journal": "int",
        "year": "int",
        "entry": "int",
        "amount": "decimal",
        "debit": "decimal",
        "credit": "decimal",
        "posting_date": "date",
        "modified": "datetime",
    },
    required=("journal", "account"),
    labels={"status": _GL_STATUS, "state": _GL_STATE},
    template="gl_journal",
    period_field="posting_date",
    status_field="status",
    currency_field="currency",
    # Posted entries are content-immutable; void and back-out arrive as *new* entries and flag
    # the original (status becomes Voided). Year-end close only moves the lines to history, so
    # ``state`` is left out of the version: that move is not news.
    watch=(
        "journal", "year", "period", "entry", "account", "description", "reference", "source_doc", "amount",
        "debit", "credit", "currency", "posting_date", "status", "reverses",
    ),
    optional=True,
    amount_field="amount",
    options=GpOptions(
        # GP's published Web Services schema keys a journal by JournalId and Date, with no Year.
        aliases={"Key.Year": (("Key.Date", "year"), ("TransactionDate", "year")),
                 "Lines.SequenceNumber": (("Lines.Key.SequenceNumber", None),)},
        explode="Lines",
        # Work (GL10000) entries are unposted: announced only when unposted documents are enabled,
        # and their posting is then news (status Unposted -> Posted).
        unposted=_UNPOSTED,
        derive={"Lines.NetAmount": ("minus", "Lines.DebitAmount.Value", "Lines.CreditAmount.Value"),
                "PostingStatus": ("posting", "IsVoided")},
        soap=SoapCalls("GetGLTransactionList", "GetGLTransactionByKey",
                       states=("GLTransactionState", ("Open", "History"), ("Work",))),
    ),
)

VENDOR = Entity(
    source="gp",
    name="vendor",
    title="Vendor",
    table="Purchasing/Vendors",
    key=("Key.Id",),
    cursor=_CURSOR,
    fields={
        "vendor": "Key.Id",
        "vendor_name": "Name",
        "status": "IsActive",
        "class_id": "ClassKey.Id",
        "terms": "PaymentTermsKey.Id",
        "phone": "PhoneNumbers.0.Value",
        "city": "City",
        "state": "State",
        "country": "CountryRegion",
        "hold": "IsOnHold",
        "currency": "CurrencyKey.Id",
        "approval": "WorkflowApprovalStatus",
        "modified": "ModifiedDate",
    },
    types={"modified": "datetime"},
    required=("vendor",),
    labels={
        "status": MappingProxyType({"True": "Active", "False": "Inactive"}),
        "hold": _YES_NO,
        "approval": APPROVAL_LABELS,
    },
    template="vendor",
    status_field="status",
    currency_field="currency",
    party_field="vendor",
    options=GpOptions(
        aliases={"WorkflowApprovalStatus": (("Workflows.0.Status", None),)},
        soap=SoapCalls("GetVendorList", "GetVendorByKey"),
    ),
)

ENTITIES: tuple[Entity, ...] = (PAYABLES_INVOICE, PURCHASE_ORDER, GOODS_RECEIPT, GL_JOURNAL, VENDOR)

check_entities(ENTITIES, TEMPLATES)
