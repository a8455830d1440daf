"""Routing rules: first match wins; filters; every decision has a reason."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from erp_slack.model import Cursor, Entity, Record
from erp_slack.routing import DEFAULT_ROUTES, Route, Rule, route

INVOICE = Entity(
    source="syspro", name="ap_invoice", title="Supplier invoice", table="ApInvoice", key=("Supplier", "Invoice"),
    cursor=Cursor("TimeStamp", "rowversion"),
    fields={"supplier": "Supplier", "invoice": "Invoice", "amount": "OrigInvValue", "status": "Status", "ts": "TimeStamp"},
    types={"amount": "decimal", "ts": "int"}, template="supplier_invoice", status_field="status",
)


def rec(supplier="ACME", amount="100", status="Open", entity="ap_invoice", source="syspro") -> Record:
    return Record(source, "EDU1", entity, f"{supplier}|1", "v", 1,
                  {"supplier": supplier, "invoice": "1", "amount": Decimal(amount), "status": status})


@pytest.mark.parametrize(
    "record, channel, reason",
    [
        (rec(amount="49999.99"), "#ap-invoices", "routed by supplier invoices"),
        (rec(amount="50000"), "#ap-large", "routed by large supplier invoices"),
        (rec(entity="purchase_order"), "#purchasing", "routed by purchase orders"),
        (rec(entity="customer"), None, "no route"),
    ],
)
def test_default_routes(record, channel, reason):
    assert route(record, INVOICE, DEFAULT_ROUTES) == Route(channel, reason)


def test_filters_and_order():
    rules = [
        Rule(entity="ap_invoice", suppliers=["INTERCO"], skip=True, name="intercompany"),
        Rule(entity="ap_invoice", statuses=["Open"], exclude_suppliers=["NOISY"], channel="#ap"),
        Rule(source="gp", channel="#gp-only"),
    ]
    assert route(rec(supplier="INTERCO"), INVOICE, rules).reason == "filtered by intercompany"
    assert route(rec(), INVOICE, rules).channel == "#ap"
    assert route(rec(supplier="NOISY"), INVOICE, rules).reason == "no route"
    assert route(rec(status="Paid"), INVOICE, rules).reason == "no route"
    assert route(rec(source="gp", status="Paid"), INVOICE, rules).channel == "#gp-only"


def test_amount_bounds_are_half_open_and_missing_amount_never_matches():
    rules = [Rule(min_amount=10, max_amount=20, channel="#mid")]
    assert route(rec(amount="10"), INVOICE, rules).channel == "#mid"
    assert route(rec(amount="20"), INVOICE, rules).channel is None
    no_amount = Record("syspro", "EDU1", "ap_invoice", "A|1", "v", 1, {"supplier": "A", "amount": None})
    assert route(no_amount, INVOICE, rules).channel is None


@pytest.mark.parametrize(
    "data, message",
    [
        ({"entity": "ap_invoice"}, "needs a channel"),
        ({"channel": "#a", "min_amount": 5, "max_amount": 1}, "min_amount is above max_amount"),
        ({"channel": "#a", "source": "sap"}, "must be 'syspro', 'gp' or '*'"),
        ({"channel": "#a b"}, "must be a channel name"),
        ({"channel": "#a", "colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_rules_are_rejected(data, message):
    with pytest.raises(ValidationError, match=message):
        Rule.model_validate(data)
