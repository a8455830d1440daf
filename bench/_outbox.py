"""Filling an outbox with realistic supplier-invoice deliveries, and reading back what Slack showed."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Iterable, Sequence

from erp_slack.model import normalise
from erp_slack.sources.syspro.entities import ENTITIES_ENET
from erp_slack.store import NewDelivery, Store

__all__ = ["fill", "channel_names", "visible_deliveries"]

_AP_INVOICE = next(e for e in ENTITIES_ENET if e.name == "ap_invoice")
_SUPPLIERS = (("0000001", "Bike Parts Wholesale Ltd"), ("0000002", "Acme <Bearings> & Co"),
              ("0000004", "Northwind Fasteners"), ("0000005", "Contoso Steel Supplies"))


def channel_names(n: int) -> list[str]:
    """``bench-00`` … : the channels a benchmark spreads its backlog over."""
    return [f"bench-{i:02d}" for i in range(n)]


def _raw(i: int) -> dict[str, Any]:
    """One ApInvoice row as e.net returns it (strings), number ``i``."""
    supplier, name = _SUPPLIERS[i % len(_SUPPLIERS)]
    day = date(2024, 5, 1) + timedelta(days=i % 28)
    amount = (Decimal(1000 + (i * 7919) % 2_500_000) / 100).quantize(Decimal("0.01"))
    return {
        "Supplier": supplier, "Invoice": f"BENCH-{i:07d}", "@SupplierName": name, "OrigInvValue": str(amount),
        "MthInvBal1": str(amount), "Currency": "$", "InvoiceDate": day.isoformat(),
        "DueDate": (day + timedelta(days=30)).isoformat(), "JournalDate": day.isoformat(), "InvoiceStatus": "",
        "Reference": f"PO {400000 + i}", "Journal": str(1000 + i // 100), "Branch": "10",
        "TimeStamp": 0x0B000000 + i,  # as the client hands it over: the rowversion decoded
    }


def fill(store: Store, n: int, channels: Sequence[str], *, start: int = 0) -> dict[str, int]:
    """Queue ``n`` pending invoice deliveries round-robin over ``channels``; returns records per channel."""
    items = []
    per_channel: Counter[str] = Counter()
    for i in range(start, start + n):
        rec = normalise(_AP_INVOICE, "EDU1", _raw(i))
        channel = "#" + channels[(i - start) % len(channels)]
        per_channel[channel] += 1
        items.append(NewDelivery(
            record_key=rec.key, version=rec.version, channel=channel, status="pending", fields=rec.fields,
            cursor=str(rec.cursor), status_field=_AP_INVOICE.status_field, watch=_AP_INVOICE.version_fields,
        ))
    for k in range(0, len(items), 1000):
        store.enqueue(source="syspro", company="EDU1", entity="ap_invoice", items=items[k:k + 1000])
    return dict(per_channel)


def visible_deliveries(messages: Iterable[dict[str, Any]]) -> Counter[str]:
    """How often each delivery uid appears in the metadata of the messages Slack stored."""
    seen: Counter[str] = Counter()
    for m in messages:
        payload = (m.get("metadata") or {}).get("event_payload") or {}
        for uid in payload.get("deliveries") or ():
            seen[uid] += 1
    return seen
