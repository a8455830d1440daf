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
    amount_field="amount", party_field="supplier",
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


def test_party_and_amount_filters_read_the_fields_the_entity_declares():
    # A customer document: its party is the customer, its amount the order value.
    order = Entity(
        source="syspro", name="sales_order", title="Sales order", table="SorMaster", key=("SalesOrder",),
        cursor=Cursor("TimeStamp", "rowversion"),
        fields={"order": "SalesOrder", "customer": "Customer", "value": "OrderValue", "ts": "TimeStamp"},
        types={"value": "decimal", "ts": "int"}, template="supplier_invoice", amount_field="value",
        party_field="customer",
    )
    record = Record("syspro", "EDU1", "sales_order", "100", "v", 1,
                    {"order": "100", "customer": "BIGCO", "value": Decimal("75000")})
    rules = [Rule(entity="sales_order", suppliers=["BIGCO"], min_amount=50000, channel="#big-customers"),
             Rule(entity="sales_order", channel="#sales")]
    assert route(record, order, rules).channel == "#big-customers"
    assert route(record, order, [Rule(exclude_suppliers=["BIGCO"], channel="#sales")]).channel is None
    undeclared = Entity(**{**order.__dict__, "amount_field": None, "party_field": None})
    assert route(record, undeclared, rules).channel == "#sales"  # nothing to compare: the filters never match


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


def test_notify_takes_only_slack_ids_and_here_and_names_the_field():
    from erp_slack.config import parse_config
    from erp_slack.errors import ConfigError

    base = {"slack": {"token": "xoxb-t"}, "syspro": {"base_url": "https://s.example", "operator": "OP",
                                                      "operator_password": "pw", "company_id": "EDU1"}}
    ok = parse_config({**base, "routes": [{"entity": "ap_invoice", "min_amount": 50000, "channel": "#ap-large",
                                           "notify": ["S0614TZR7", "U012AB3CD", "@here", "U012AB3CD"]}]})
    assert ok.routes[0].notify == ["S0614TZR7", "U012AB3CD", "@here"]
    for bad in (["@jane"], ["<!channel>"], ["u012ab3cd"], ["#ap"]):
        with pytest.raises(ConfigError) as err:
            parse_config({**base, "routes": [{"channel": "#ap", "notify": bad}]})
        assert err.value.path.startswith("routes.0.notify"), err.value.path
    with pytest.raises(ConfigError):
        parse_config({**base, "routes": [{"skip": True, "notify": ["@here"]}]})
