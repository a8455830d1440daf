"""Message templates as data: which record fields a message shows, in what order, how.

Both ERPs map their columns onto these field names in their entity tables, so one template
serves SYSPRO and GP alike. A slot whose field is missing or empty is left out of the message.

Formats: ``text`` (escaped), ``money`` (amount + the record's currency), ``date``, ``int``,
``qty`` (a decimal quantity without trailing zeros).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Slot", "Template", "TEMPLATES"]


@dataclass(frozen=True)
class Slot:
    label: str
    field: str
    format: str = "text"


@dataclass(frozen=True)
class Template:
    """How one kind of document is shown.

    ``headline`` is a format string over fields (missing ones render as ``?``); ``summary``
    is the digest line for one record, naming it so that no two lines of a digest read the same;
    ``plural`` heads a digest of several; ``slots`` are the section fields (at most 10).
    """

    noun: str
    plural: str
    emoji: str
    headline: str
    summary: str
    slots: tuple[Slot, ...]


TEMPLATES: dict[str, Template] = {
    "supplier_invoice": Template(
        noun="Supplier invoice",
        plural="supplier invoices",
        emoji=":receipt:",
        headline="Supplier invoice {invoice} from {supplier_name}",
        summary="{invoice} · {supplier_name} · {amount}",
        slots=(
            Slot("Supplier", "supplier_name"),
            Slot("Supplier code", "supplier"),
            Slot("Invoice", "invoice"),
            Slot("Amount", "amount", "money"),
            Slot("Invoice date", "invoice_date", "date"),
            Slot("Due date", "due_date", "date"),
            Slot("Balance", "balance", "money"),
            Slot("Status", "status"),
            Slot("Approval", "approval"),
            Slot("Hold", "hold"),
        ),
    ),
    "purchase_order": Template(
        noun="Purchase order",
        plural="purchase orders",
        emoji=":clipboard:",
        headline="Purchase order {po} for {supplier_name}",
        summary="PO {po} · {supplier_name} · {total} · {status}",
        slots=(
            Slot("Supplier", "supplier_name"),
            Slot("Supplier code", "supplier"),
            Slot("PO number", "po"),
            Slot("Status", "status"),
            Slot("Lines", "line_count", "int"),
            Slot("Total", "total", "money"),
            Slot("Order date", "order_date", "date"),
            Slot("Due date", "due_date", "date"),
            Slot("Approval", "approval"),
            Slot("Buyer", "buyer"),
        ),
    ),
    "sales_order": Template(
        noun="Sales order",
        plural="sales orders",
        emoji=":shopping_trolley:",
        headline="Sales order {order} for {customer_name}",
        summary="SO {order} · {customer_name} · {total} · {status}",
        slots=(
            Slot("Customer", "customer_name"),
            Slot("Customer code", "customer"),
            Slot("Sales order", "order"),
            Slot("Status", "status"),
            Slot("Lines", "line_count", "int"),
            Slot("Total", "total", "money"),
            Slot("Order date", "order_date", "date"),
            Slot("Ship by", "ship_date", "date"),
            Slot("Customer PO", "customer_po"),
            Slot("Salesperson", "salesperson"),
        ),
    ),
    "goods_receipt": Template(
        noun="Goods receipt",
        plural="goods receipts",
        emoji=":package:",
        headline="Goods received on {grn} against PO {po}",
        summary="GRN {grn} · PO {po} · {stock_code} × {quantity}",
        slots=(
            Slot("Supplier", "supplier_name"),
            Slot("Supplier code", "supplier"),
            Slot("GRN", "grn"),
            Slot("PO number", "po"),
            Slot("Item", "stock_code"),
            Slot("Description", "description"),
            Slot("Quantity", "quantity", "qty"),
            Slot("Value", "value", "money"),
            Slot("Received", "receipt_date", "date"),
            Slot("Warehouse", "warehouse"),
        ),
    ),
    "ap_journal": Template(
        noun="AP posting",
        plural="AP postings",
        emoji=":ledger:",
        headline="AP journal {journal} posted for {period}",
        summary="AP journal {journal} entry {entry} ({period}) · {supplier_name} · {amount}",
        slots=(
            Slot("Journal", "journal"),
            Slot("Period", "period"),
            Slot("Entry", "entry"),
            Slot("Supplier", "supplier_name"),
            Slot("Supplier code", "supplier"),
            Slot("Amount", "amount", "money"),
            Slot("Posting date", "posting_date", "date"),
            Slot("Type", "kind"),
            Slot("Status", "status"),
            Slot("Reference", "reference"),
        ),
    ),
    "gl_journal": Template(
        noun="GL journal entry",
        plural="GL journal entries",
        emoji=":books:",
        headline="GL journal {journal} posted for {period}",
        summary="GL journal {journal} entry {entry} ({period}) · account {account} · {amount}",
        slots=(
            Slot("Journal", "journal"),
            Slot("Period", "period"),
            Slot("Entry", "entry"),
            Slot("Account", "account"),
            Slot("Description", "description"),
            Slot("Amount", "amount", "money"),
            Slot("Debit", "debit", "money"),
            Slot("Credit", "credit", "money"),
            Slot("Posting date", "posting_date", "date"),
            Slot("Status", "status"),
        ),
    ),
    "vendor": Template(
        noun="Vendor",
        plural="vendor changes",
        emoji=":busts_in_silhouette:",
        headline="Vendor {vendor} {vendor_name}",
        summary="{vendor} · {vendor_name} · {status}",
        slots=(
            Slot("Vendor", "vendor_name"),
            Slot("Vendor ID", "vendor"),
            Slot("Status", "status"),
            Slot("Class", "class_id"),
            Slot("Payment terms", "terms"),
            Slot("Phone", "phone"),
            Slot("City", "city"),
            Slot("Country", "country"),
            Slot("Hold", "hold"),
            Slot("Currency", "currency"),
        ),
    ),
}
