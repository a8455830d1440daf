"""The renderer: escaping, Block Kit limits at N and N+1, digests, metadata."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Mapping, Sequence

import pytest

from erp_slack.model import Cursor, Entity
from erp_slack.slack import render as R
from erp_slack.slack.templates import TEMPLATES

INVOICE = Entity(
    source="syspro", name="ap_invoice", title="Supplier invoice", table="ApInvoice", key=("Supplier", "Invoice"),
    cursor=Cursor("TimeStamp", "rowversion"),
    fields={"supplier": "Supplier", "invoice": "Invoice", "supplier_name": "SupplierName", "amount": "OrigInvValue",
            "invoice_date": "InvoiceDate", "currency": "Currency", "remarks": "Remarks", "ts": "TimeStamp"},
    types={"amount": "decimal", "invoice_date": "date", "ts": "int"}, template="supplier_invoice",
    currency_field="currency", default_currency="USD",
)
ENTITIES = {("syspro", "ap_invoice"): INVOICE}
HOSTILE = "ACME <!channel> <@U123> <https://evil|click> & co"


@dataclass
class N:
    uid: str = "u1"
    source: str = "syspro"
    company: str = "EDU1"
    entity: str = "ap_invoice"
    record_key: str = "ACME|INV-1"
    event: str = "created"
    fields: dict[str, Any] = field(default_factory=dict)
    changes: tuple = ()
    mentions: tuple = ()


def _strings(node: Any) -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        for v in node.values():
            out += _strings(v)
    elif isinstance(node, list):
        for v in node:
            out += _strings(v)
    elif isinstance(node, str):
        out.append(node)
    return out


def _invoice(**kw: Any) -> N:
    fields = {"supplier": "ACME", "invoice": "INV-1", "supplier_name": "Acme Bearings", "amount": "12400.5",
              "invoice_date": "2026-11-20", "currency": "EUR"}
    fields.update(kw)
    return N(fields=fields)


def test_single_invoice_shows_the_promised_fields():
    msg = R.render([_invoice()], ENTITIES, batch_uid="b1")
    blob = json.dumps(msg.blocks)
    for expected in ("INV-1", "Acme Bearings", "EUR 12,400.50", "2026-11-20"):
        assert expected in blob
    assert msg.blocks[0]["type"] == "header"
    assert "INV-1" in msg.text
    assert msg.metadata == {"event_type": "erp_notification_posted",
                            "event_payload": {"batch": "b1", "deliveries": ["u1"], "schema_version": 1}}


def test_erp_strings_are_escaped_everywhere():
    msg = R.render([_invoice(supplier_name=HOSTILE, remarks=HOSTILE)], ENTITIES, batch_uid="b")
    texts = _strings(msg.blocks) + [msg.text]
    joined = "\n".join(texts)
    assert "&lt;!channel&gt;" in joined and "&lt;@U123&gt;" in joined and "&amp; co" in joined
    for t in texts:
        assert "<!" not in t and "<@" not in t and "<http" not in t


def test_digest_escapes_and_lists_every_record():
    notices = [N(uid=f"u{i}", record_key=f"K{i}", fields={"invoice": f"INV-{i}", "supplier_name": HOSTILE,
                                                            "amount": "1"}) for i in range(12)]
    msg = R.render(notices, ENTITIES, batch_uid="b")
    joined = "\n".join(_strings(msg.blocks))
    assert all(f"INV-{i}" in joined for i in range(12))
    assert "<!channel>" not in joined
    assert msg.metadata["event_payload"]["deliveries"] == [f"u{i}" for i in range(12)]
    assert msg.blocks[0]["text"]["text"] == "12 supplier invoices"


@pytest.mark.parametrize("length", [R.HEADER_MAX - 30, R.HEADER_MAX, R.HEADER_MAX + 1, 5000])
def test_header_limit(length: int):
    msg = R.render([_invoice(invoice="I" * length)], ENTITIES, batch_uid="b")
    header = msg.blocks[0]["text"]["text"]
    assert len(header) <= R.HEADER_MAX
    assert header.endswith("…") == (len("Supplier invoice  from Acme Bearings") + length > R.HEADER_MAX)


@pytest.mark.parametrize("length", [R._NOTE_MAX - 1, R._NOTE_MAX, R._NOTE_MAX + 1, 50_000])
def test_remarks_section_limit(length: int):
    msg = R.render([_invoice(remarks="x" * length)], ENTITIES, batch_uid="b")
    sections = [b for b in msg.blocks if b["type"] == "section" and "text" in b]
    assert sections and all(len(b["text"]["text"]) <= R._NOTE_MAX for b in sections)
    assert sections[-1]["text"]["text"].endswith("…") == (length > R._NOTE_MAX)


def test_one_record_with_every_field_huge_stays_under_the_total_text_limit():
    huge = "<" * 5000
    fields = {s.field: huge for s in R.TEMPLATES["supplier_invoice"].slots}
    n = N(fields={**fields, "amount": "1", "remarks": huge}, event="updated",
          changes=tuple((s.field, huge, huge + "x") for s in R.TEMPLATES["supplier_invoice"].slots))
    msg = R.render([n], ENTITIES, batch_uid="b")
    assert block_text_size(msg.blocks) <= R.TOTAL_MAX
    assert all(len(f["text"]) <= R.FIELD_MAX for b in msg.blocks for f in b.get("fields", []))


def test_field_limit_and_truncation_never_splits_an_entity():
    msg = R.render([N(fields={"invoice": "1", "supplier_name": "&" * 3000})], ENTITIES, batch_uid="b")
    fields = [f["text"] for b in msg.blocks if b["type"] == "section" for f in b.get("fields", [])]
    assert all(len(t) <= R.FIELD_MAX for t in fields)
    body = fields[0].split("\n", 1)[1]
    assert body.endswith("&amp;…")


def test_worst_case_digest_fits_every_limit():
    notices = [N(uid=f"u{i}", record_key=f"K{i}", event="updated",
                 fields={"invoice": "I" * 500, "supplier_name": "<" * 500, "amount": "9" * 14},
                 changes=(("amount", "1", "2"), ("supplier_name", "a" * 400, "<" * 400)))
               for i in range(R.DIGEST_MAX)]
    msg = R.render(notices, ENTITIES, batch_uid="b")
    assert len(msg.blocks) <= 50
    assert block_text_size(msg.blocks) <= R.TOTAL_MAX
    assert len(msg.text) <= R.TEXT_MAX
    with pytest.raises(ValueError):
        R.render(notices + [notices[0]], ENTITIES, batch_uid="b")


def test_update_shows_what_changed():
    n = _invoice()
    n.event, n.changes = "updated", (("amount", "10", "12.5"),)
    msg = R.render([n], ENTITIES, batch_uid="b")
    joined = json.dumps(msg.blocks, ensure_ascii=False)
    assert "Updated" in msg.blocks[0]["text"]["text"]
    assert "EUR 10.00 → EUR 12.50" in joined


def test_a_change_of_a_field_without_a_slot_reads_as_an_amount_or_a_date_by_its_type():
    entity = Entity(**{**INVOICE.__dict__, "types": {**INVOICE.types, "remaining": "decimal", "quantity": "decimal",
                                                       "paid_on": "date"}})
    n = _invoice()
    n.event, n.changes = "updated", (("remaining", "2500", "0"), ("quantity", "3.000", "5"),
                                     ("paid_on", None, "2026-12-01"))
    reply = json.dumps(R.render_reply(n, entity, batch_uid="b").blocks, ensure_ascii=False)
    assert "*Remaining*: EUR 2,500.00 → EUR 0.00" in reply
    assert "*Quantity*: 3 → 5" in reply and "*Paid on*: — → 2026-12-01" in reply


def test_unknown_fields_and_missing_values_do_not_break_rendering():
    msg = R.render([N(fields={"invoice": "INV-9"})], ENTITIES, batch_uid="b")
    assert "INV-9" in msg.blocks[0]["text"]["text"] and "?" in msg.blocks[0]["text"]["text"]


def test_safe_link_allows_only_http():
    assert R.safe_link("javascript:alert(1)", "x") is None
    link = R.safe_link("https://erp.example/inv?id=1|<x>", "Open <now>")
    assert link is not None and link.count("|") == 1 and "<x>" not in link and "&lt;now&gt;" in link


def test_every_template_renders_round_trip():
    # Each template with every slot filled produces blocks slack_sdk accepts (to_dict validates).
    for name, template in TEMPLATES.items():
        fields = {s.field: ("100.5" if s.format in ("money", "qty", "int") else "2026-01-02" if s.format == "date"
                            else f"{s.label} value") for s in template.slots}
        entity = Entity(source="gp", name=name, title=template.noun, table="t", key=("K",),
                        cursor=Cursor("M", "timestamp", timedelta(minutes=5)), fields={**{f: f for f in fields}, "k": "K", "m": "M"},
                        types={"m": "datetime"}, template=name)
        msg = R.render([N(source="gp", entity=name, fields=fields)], {("gp", name): entity}, batch_uid="b")
        assert msg.blocks and json.loads(json.dumps(msg.blocks)) == msg.blocks


def test_the_text_fallback_never_makes_erp_text_a_live_link():
    # Slack refused the blocks: the record goes out as text, and a URL in a supplier name stays text.
    msg = R.render([_invoice(supplier_name="Pay at https://phish.example/pay or www.evil.example")], ENTITIES,
                   batch_uid="b")
    plain = R.fallback(msg)
    assert plain.metadata == msg.metadata  # reconciliation still finds it
    (section,) = plain.blocks
    assert section["type"] == "section" and section["text"]["verbatim"] is True
    for text in (plain.text, section["text"]["text"]):
        assert "phish.example" in text and "://" not in text and "www.evil" not in text


def test_digest_lines_name_each_record_and_their_plural_is_a_word():
    gl = Entity(
        source="syspro", name="gl_journal", title="GL journal entry", table="GenJournalDetail",
        key=("Journal", "EntryNumber"), cursor=Cursor("TimeStamp", "rowversion"),
        fields={"journal": "Journal", "entry": "EntryNumber", "period": "P", "account": "GlCode", "amount": "V",
                "ts": "TimeStamp"},
        types={"amount": "decimal", "ts": "int"}, template="gl_journal",
    )
    lines = [N(uid=f"u{i}", entity="gl_journal", record_key=f"17|{i}",
               fields={"journal": 17, "entry": i, "period": "2026-11", "account": "40-1000", "amount": "10.00"})
             for i in (1, 2)]
    msg = R.render(lines, {("syspro", "gl_journal"): gl}, batch_uid="b")
    assert msg.blocks[0]["text"]["text"] == "2 GL journal entries"
    body = msg.blocks[1]["text"]["text"].splitlines()
    assert len(body) == 2 and body[0] != body[1] and "entry 1" in body[0] and "entry 2" in body[1]


def block_text_size(blocks: Sequence[Mapping[str, Any]]) -> int:
    """Characters of text across blocks, as Slack's cumulative limit counts them (roughly)."""
    total = 0

    def walk(node: Any) -> None:
        nonlocal total
        if isinstance(node, dict):
            if node.get("type") in ("plain_text", "mrkdwn"):
                total += len(node.get("text", ""))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(list(blocks))
    return total




def test_a_header_shows_an_ampersand_as_the_reader_expects_and_still_defuses_markup():
    # plain_text is not parsed by Slack: an escaped "&" would read "&amp;" in the header.
    msg = R.render([_invoice(supplier="ACME & SONS", invoice="A&B-1 <!here>")], ENTITIES, batch_uid="b")
    header = msg.blocks[0]["text"]["text"]
    assert "A&B-1" in header and "&amp;" not in header
    assert "<!here>" not in header and "&lt;!here&gt;" in header
    assert "A&amp;B-1" in msg.text  # the notification text is parsed as mrkdwn: escaped there


def test_mentions_come_only_from_the_rule_and_lead_the_notification():
    notice = _invoice(supplier_name="<!channel> <@U999> ACME")
    notice.mentions = ("U012AB3CD", "S0614TZR7", "@here")
    msg = R.render([notice], ENTITIES, batch_uid="b")
    assert msg.text.startswith("<@U012AB3CD> <!subteam^S0614TZR7> <!here> ")
    assert msg.blocks[1]["text"]["text"] == "cc <@U012AB3CD> <!subteam^S0614TZR7> <!here>"
    markup = [m for t in _strings(msg.blocks) + [msg.text] for m in __import__("re").findall(r"<[!@][^>]*>", t)]
    assert set(markup) == {"<@U012AB3CD>", "<!subteam^S0614TZR7>", "<!here>"}  # the ERP's own stay escaped
    # A digest mentions each configured target once; a record without mentions adds none.
    other = _invoice(invoice="INV-2")
    digest = R.render([notice, other, notice], ENTITIES, batch_uid="d")
    assert digest.text.count("<!here>") == 1 and "cc <@U012AB3CD>" in json.dumps(digest.blocks)
    plain = R.render([other], ENTITIES, batch_uid="p")
    assert "cc " not in json.dumps(plain.blocks) and "<@" not in plain.text


def test_a_digest_totals_each_currency_apart_and_shows_each_due_date():
    notices = [_invoice(invoice="I-1", amount="100.50", currency="EUR", due_date="2026-12-20"),
               _invoice(invoice="I-2", amount="200.00", currency="EUR"),
               _invoice(invoice="I-3", amount="1000", currency="USD", due_date="2027-01-05")]
    from dataclasses import replace

    msg = R.render(notices, {("syspro", "ap_invoice"): replace(INVOICE, amount_field="amount")}, batch_uid="d")
    blob = json.dumps(msg.blocks, ensure_ascii=False)
    assert "*Total* EUR 300.50 · USD 1,000.00" in blob  # never one sum across currencies
    assert "I-1 · Acme Bearings · EUR 100.50 · due 2026-12-20" in blob and "due 2027-01-05" in blob
    assert blob.count(" · due ") == 2  # I-2 has no due date: nothing is made up


def test_a_balance_at_zero_reads_paid_and_an_open_one_shows_its_amount():
    paid = json.dumps(R.render([_invoice(balance="0.00")], ENTITIES, batch_uid="b").blocks)
    assert "*Balance*\\nPaid" in paid
    open_ = json.dumps(R.render([_invoice(balance="400")], ENTITIES, batch_uid="b").blocks)
    assert "*Balance*\\nEUR 400.00" in open_ and "Paid" not in open_
    # A zero-amount document with a zero balance was never owed: nothing reads "Paid".
    assert "Paid" not in json.dumps(R.render([_invoice(amount="0", balance="0")], ENTITIES, batch_uid="b").blocks)
    digest = R.render([_invoice(balance="0"), _invoice(invoice="INV-2", balance="5")], ENTITIES, batch_uid="b")
    lines = digest.blocks[1]["text"]["text"].splitlines()
    assert lines[0].endswith("· paid") and "paid" not in lines[1]


def test_a_hold_stands_out_under_the_header_and_first_in_the_notification():
    held = R.render([_invoice(hold="Yes")], ENTITIES, batch_uid="b")
    assert held.blocks[1]["text"]["text"] == ":warning: *On hold*"
    assert held.text.split(" ", 1)[1].startswith("On hold · Supplier invoice INV-1")
    assert "On hold" not in json.dumps(R.render([_invoice(hold="No")], ENTITIES, batch_uid="b").blocks)
    digest = R.render([_invoice(hold="Yes"), _invoice(invoice="INV-2")], ENTITIES, batch_uid="b")
    assert "*on hold*" in digest.blocks[1]["text"]["text"].splitlines()[0]
