"""Values and parsing: normalise turns raw rows into typed records or names the problem."""

from __future__ import annotations

import base64
import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from erp_slack.errors import BadRecord
from erp_slack.model import Cursor, Entity, check_entities, cursor_from_text, cursor_to_text, lower_bound, normalise
from erp_slack.slack.templates import TEMPLATES

INV = Entity(
    source="gp", name="payables_invoice", title="Payables invoice", table="Purchasing/PayablesInvoices",
    key=("VendorId", "DocNo"), cursor=Cursor("ModifiedDate", "timestamp", timedelta(minutes=10)),
    fields={"supplier": "VendorId", "invoice": "DocNo", "amount": "Amount", "due_date": "DueDate",
            "modified": "ModifiedDate", "hold": "Hold", "status": "Status", "remarks": "Note"},
    types={"amount": "decimal", "due_date": "date", "modified": "datetime", "hold": "bool"},
    required=("amount",), labels={"status": {"1": "Open", "2": "Paid"}}, template="supplier_invoice",
    status_field="status",
)


def row(**kw):
    base = {"VendorId": "ACME", "DocNo": "INV-1", "Amount": "1,250.50", "DueDate": "2026-12-01T00:00:00",
            "ModifiedDate": "2026-11-20T10:00:00Z", "Hold": "false", "Status": "1", "Note": "ok"}
    base.update(kw)
    return base


def test_a_good_row_is_typed():
    r = normalise(INV, "Fabrikam", row())
    assert r.key == "ACME|INV-1"
    assert r.fields["amount"] == Decimal("1250.50")
    assert r.fields["due_date"] == date(2026, 12, 1)
    assert r.cursor == datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
    assert r.fields["hold"] is False and r.fields["status"] == "Open"


def test_padded_keys_and_naive_timestamps():
    a = normalise(INV, "F", row(VendorId="  ACME ", ModifiedDate="2026-11-20T10:00:00"))
    b = normalise(INV, "F", row())
    assert a.key == b.key and a.cursor == b.cursor and a.version == b.version


def test_version_changes_with_watched_fields_only():
    base = normalise(INV, "F", row())
    assert normalise(INV, "F", row(ModifiedDate="2026-11-21T00:00:00Z")).version == base.version
    assert normalise(INV, "F", row(Amount="99")).version != base.version


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"VendorId": None}, "key column VendorId is missing"),
        ({"DocNo": "   "}, "key column DocNo is missing"),
        ({"Amount": None}, "amount (Amount) is missing"),
        ({"Amount": "12,x"}, "amount (Amount): not a number"),
        ({"Amount": "1e20"}, "amount out of range"),
        ({"Amount": "NaN"}, "not a finite number"),
        ({"DueDate": "2026-02-30"}, "invalid date"),
        ({"DueDate": "1899-12-31"}, "date out of range"),
        ({"DueDate": "31/12/2026"}, "not a date"),
        ({"ModifiedDate": "yesterday"}, "not a timestamp"),
        ({"ModifiedDate": None}, "cursor column ModifiedDate is missing"),
        ({"Hold": "maybe"}, "not a yes/no value"),
        ({"DocNo": "X" * 300}, "key is longer than 200 characters"),
    ],
)
def test_bad_rows_name_the_problem(changes, reason):
    with pytest.raises(BadRecord, match=re.escape(reason)) as info:
        normalise(INV, "F", row(**changes))
    assert info.value.entity == "payables_invoice"


@pytest.mark.parametrize("placeholder", ["1900-01-01", "1900-01-01T00:00:00", "9999-12-31"])
def test_placeholder_dates_mean_empty_in_optional_fields(placeholder):
    assert normalise(INV, "F", row(DueDate=placeholder)).fields["due_date"] is None


def test_text_is_cleaned_not_trusted():
    r = normalise(INV, "F", row(Note="a\x00b\u202eevil\u202c \r\nnext" + "x" * 10_000, Status="7"))
    assert r.fields["remarks"].startswith("abevil \nnext") and len(r.fields["remarks"]) <= 4000
    assert r.fields["status"] == "7"  # unknown codes stay as they are
    assert normalise(INV, "F", row(Note="Müller".encode("cp1252"))).fields["remarks"] == "Müller"


@pytest.mark.parametrize("raw, expected", [("0x0A", 10), ("12", 12), (12, 12), ("0000000000100003", 100003)])
def test_integers_are_decimal_unless_written_as_hex(raw, expected):
    ent = Entity(source="syspro", name="x", title="x", table="T", key=("K",), cursor=Cursor("TS", "rowversion"),
                 fields={"k": "K", "ts": "TS"}, types={"ts": "int"}, template="supplier_invoice")
    assert normalise(ent, "C", {"K": "1", "TS": raw}).cursor == expected


@pytest.mark.parametrize("raw", ["00000000000A1B2C", base64.b64encode((2000).to_bytes(8, "big")).decode()])
def test_integers_are_never_guessed_from_hex_or_base64_characters(raw):
    ent = Entity(source="syspro", name="x", title="x", table="T", key=("K",), cursor=Cursor("TS", "rowversion"),
                 fields={"k": "K", "ts": "TS"}, types={"ts": "int"}, template="supplier_invoice")
    with pytest.raises(BadRecord, match="not an integer"):
        normalise(ent, "C", {"K": "1", "TS": raw})


def test_cursor_text_round_trip_and_lower_bound():
    ts = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert cursor_from_text("timestamp", cursor_to_text("timestamp", ts)) == ts
    assert cursor_from_text("rowversion", cursor_to_text("rowversion", 2**63)) == 2**63
    assert lower_bound(Cursor("D", "date", timedelta(days=3)), date(2026, 1, 10)) == date(2026, 1, 7)
    assert lower_bound(Cursor("T", "rowversion"), None) is None
    assert lower_bound(Cursor("T", "rowversion"), 0x0A21F7) == 0x0A21F8  # the row that set it is not re-read


def test_entity_tables_are_checked_and_errors_name_entity_and_field():
    bad = Entity(source="gp", name="x", title="x", table="T", key=("Missing",), cursor=Cursor("M", "timestamp"),
                 fields={"m": "M"}, types={"m": "datetime"}, template="supplier_invoice")
    with pytest.raises(ValueError, match=r"entity gp.x: key column 'Missing' is not in fields"):
        check_entities((bad,), TEMPLATES)
    with pytest.raises(ValueError, match="duplicate name"):
        check_entities((INV, INV), TEMPLATES)
    wrong_type = Entity(source="gp", name="y", title="y", table="T", key=("M",), cursor=Cursor("M", "timestamp"),
                        fields={"m": "M"}, template="supplier_invoice")
    with pytest.raises(ValueError, match="cursor field must have type 'datetime'"):
        check_entities((wrong_type,), TEMPLATES)
