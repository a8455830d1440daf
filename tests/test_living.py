"""Living messages: one Slack message per document and channel, edited in place as the document
changes, with a thread reply per change; the fallbacks when Slack will not edit, and the
reconciliation of a reply whose answer was lost. Against the loopback Slack simulator."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

from sqlalchemy import update

from erp_slack.model import Cursor, Entity
from erp_slack.schema import deliveries
from erp_slack.slack.gateway import SlackGateway
from erp_slack.slack.send import Drainer, DrainSettings
from erp_slack.store import NewDelivery, Store

ORDER = Entity(
    source="gp", name="purchase_order", title="Purchase order", table="PurchaseOrder", key=("PoNumber",),
    cursor=Cursor("ModifiedDate", "timestamp"),
    fields={"po": "PoNumber", "supplier": "VendorId", "supplier_name": "VendorName", "status": "Status",
            "total": "Total", "currency": "Currency"},
    template="purchase_order", status_field="status", amount_field="total", currency_field="currency",
)
ENTITIES = {("gp", "purchase_order"): ORDER}
CHANNEL = "#purchasing"


def change(store: Store, po: str, status: str, *, style: str = "living", channel: str = CHANNEL,
           total: str = "1200.00", currency: str = "USD") -> None:
    """The ERP shows ``po`` in ``status``: one new version of the document in the outbox."""
    store.enqueue(source="gp", company="TWO", entity="purchase_order", items=[NewDelivery(
        record_key=po, version=f"{status}-{total}", channel=channel, status="pending",
        fields={"po": po, "supplier": "ACME", "supplier_name": "Acme Bearings", "status": status, "total": total,
                "currency": currency},
        cursor=status, status_field="status", watch=("status", "total"), style=style)])


def drain(store: Store, sim, **kw) -> Drainer:
    settings = DrainSettings(time_scale=sim.sim.time_scale, reconcile_after=0.2, **kw)
    d = Drainer(store, SlackGateway(sim.token, base_url=sim.url, timeout=5), ENTITIES, settings=settings)
    d.drain()
    return d


def top_level(sim, channel: str = CHANNEL) -> list[dict]:
    return [m for m in sim.sim.posted(channel) if m.get("thread_ts") in (None, m["ts"])]


def replies(sim, ts: str, channel: str = CHANNEL) -> list[dict]:
    return [m for m in sim.sim.posted(channel) if m.get("thread_ts") == ts and m["ts"] != ts]


def uids(message: dict) -> list[str]:
    return ((message.get("metadata") or {}).get("event_payload") or {}).get("deliveries", [])


def text(message: dict) -> str:
    return str(message.get("text")) + str(message.get("blocks"))


def assert_each_delivery_once(store: Store, sim) -> None:
    """Every row sent, and named by exactly one Slack message (a post or a reply, never an edit)."""
    rows = store.deliveries()
    assert {r["status"] for r in rows} == {"sent"}
    seen = Counter(u for m in sim.sim.posted() for u in uids(m))
    assert seen == Counter({r["uid"]: 1 for r in rows})


def test_a_po_from_new_to_closed_is_one_message_edited_in_place_with_a_reply_per_change(store, slack_sim):
    for status in ("New", "Released", "Received", "Closed"):
        change(store, "PO2200", status)
        drain(store, slack_sim)

    (message,) = top_level(slack_sim)
    assert "Closed" in text(message) and "Released" not in str(message["blocks"])  # the current state only
    assert len(message["edits"]) == 3  # one edit per change
    thread = replies(slack_sim, message["ts"])
    assert [m["blocks"][0]["text"]["text"] for m in thread] == [
        "*Status*: New → Released", "*Status*: Released → Received", "*Status*: Received → Closed"]
    assert_each_delivery_once(store, slack_sim)
    rows = store.deliveries()
    assert rows[0]["thread_ts"] is None and {r["thread_ts"] for r in rows[1:]} == {message["ts"]}
    assert all(r["slack_ts"] == m["ts"] for r, m in zip(rows[1:], thread))
    # A second drain with nothing new touches nothing.
    before = slack_sim.sim.call_counts()
    drain(store, slack_sim)
    after = slack_sim.sim.call_counts()
    assert (after["chat.update"], after["chat.postMessage"]) == (before["chat.update"], before["chat.postMessage"])
    assert len(slack_sim.sim.posted(CHANNEL)) == 4  # the message and its three replies (calls may include a 429)


def test_thread_only_replies_and_leaves_the_first_message_as_it_was(store, slack_sim):
    for status in ("New", "Released", "Received"):
        change(store, "PO2201", status, style="thread-only")
        drain(store, slack_sim)
    (message,) = top_level(slack_sim)
    assert message["edits"] == [] and slack_sim.sim.call_counts()["chat.update"] == 0
    assert len(replies(slack_sim, message["ts"])) == 2
    assert_each_delivery_once(store, slack_sim)


def test_new_message_posts_every_change_on_its_own(store, slack_sim):
    for status in ("New", "Released"):
        change(store, "PO2202", status, style="new-message")
        drain(store, slack_sim)
    posted = top_level(slack_sim)
    assert len(posted) == 2 and "Status changed" in text(posted[1])
    assert slack_sim.sim.call_counts()["chat.update"] == 0


def test_a_document_routed_to_another_channel_starts_its_living_message_there(store, slack_sim):
    # Say a rule by amount sends the order elsewhere once it grows: each channel has its own message.
    change(store, "PO2203", "New")
    drain(store, slack_sim)
    change(store, "PO2203", "Released", channel="#warehouse", total="90000.00")
    drain(store, slack_sim)
    (first,) = top_level(slack_sim)
    (second,) = top_level(slack_sim, "#warehouse")
    assert first["edits"] == [] and replies(slack_sim, first["ts"]) == []
    assert "Released" in text(second) and "90,000.00" in text(second)
    change(store, "PO2203", "Received", channel="#warehouse", total="90000.00")
    drain(store, slack_sim)
    assert len(replies(slack_sim, second["ts"], "#warehouse")) == 1
    assert_each_delivery_once(store, slack_sim)


def test_an_edit_slack_refuses_becomes_a_new_message_linking_the_old_one_which_later_changes_edit(store, slack_sim):
    change(store, "PO2204", "New")
    drain(store, slack_sim)
    (first,) = top_level(slack_sim)
    slack_sim.sim.inject("chat.update", "message_not_found")  # deleted, or past the edit window
    change(store, "PO2204", "Released")
    drain(store, slack_sim)
    old, new = top_level(slack_sim)
    assert old["ts"] == first["ts"] and "Released" in text(new)
    link = f"archives/{new['channel']}/p{first['ts'].replace('.', '')}"
    assert link in text(new) and "earlier message" in text(new)
    (audit,) = store.audit_rows("living_replaced")
    assert "message_not_found" in audit["message"] and audit["record_key"] == "PO2204"

    change(store, "PO2204", "Received")
    drain(store, slack_sim)
    assert len(top_level(slack_sim)) == 2  # the new message is the living one now
    after = next(m for m in slack_sim.sim.posted(CHANNEL) if m["ts"] == new["ts"])
    assert "Received" in text(after) and len(replies(slack_sim, new["ts"])) == 1
    assert_each_delivery_once(store, slack_sim)


def test_a_reply_stored_but_unanswered_is_found_in_its_thread_not_posted_again(store, slack_sim):
    change(store, "PO2205", "New")
    drain(store, slack_sim)
    slack_sim.sim.inject("chat.postMessage", stored_then_failed=True)
    change(store, "PO2205", "Released")
    drain(store, slack_sim)
    (message,) = top_level(slack_sim)
    assert len(replies(slack_sim, message["ts"])) == 1
    assert [r["message"] for r in store.audit_rows("reconciled")] == ["HTTP 500: found in channel history"]
    assert slack_sim.sim.call_counts()["conversations.replies"] >= 1
    assert_each_delivery_once(store, slack_sim)


def test_an_edit_whose_answer_is_lost_is_made_again_and_the_change_replied_once(store, slack_sim):
    change(store, "PO2206", "New")
    drain(store, slack_sim)
    slack_sim.sim.inject("chat.update", status=503)
    change(store, "PO2206", "Released")
    drain(store, slack_sim)
    (message,) = top_level(slack_sim)
    assert slack_sim.sim.call_counts()["chat.update"] == 2 and "Released" in text(message)
    assert len(replies(slack_sim, message["ts"])) == 1
    assert_each_delivery_once(store, slack_sim)


def test_a_reply_posted_by_a_drainer_that_died_is_reconciled_from_its_thread(store, slack_sim):
    from erp_slack.slack.render import render_reply

    change(store, "PO2207", "New")
    drain(store, slack_sim)
    (message,) = top_level(slack_sim)
    change(store, "PO2207", "Released")
    # A drainer claimed the change, edited the message, posted the reply and died before recording it.
    (row,) = store.claim(CHANNEL, 1, worker="dead-worker")
    assert store.mark_attempt([row.id], worker="dead-worker", thread_ts=message["ts"])
    reply = render_reply(row, ORDER, batch_uid=row.batch_uid or "")
    slack_sim.client().chat_postMessage(channel=CHANNEL, thread_ts=message["ts"], **reply.as_kwargs())
    with store.engine.begin() as conn:
        conn.execute(update(deliveries).values(claimed_at=datetime.now(timezone.utc) - timedelta(hours=1)))

    drain(store, slack_sim)
    assert len(replies(slack_sim, message["ts"])) == 1
    assert_each_delivery_once(store, slack_sim)
    assert store.deliveries()[-1]["slack_ts"] == replies(slack_sim, message["ts"])[0]["ts"]


def test_a_digest_line_says_where_a_documents_thread_is(store, slack_sim):
    change(store, "PO2208", "New")
    drain(store, slack_sim)
    (message,) = top_level(slack_sim)
    change(store, "PO2208", "Released")
    for i in range(8):  # a backlog deep enough for a digest
        change(store, f"PO23{i:02d}", "New")
    drain(store, slack_sim, digest_threshold=3)
    digest = next(m for m in top_level(slack_sim) if len(uids(m)) > 1)
    link = f"p{message['ts'].replace('.', '')}|thread>"
    assert link in text(digest)
    assert_each_delivery_once(store, slack_sim)


def test_rows_from_before_living_messages_keep_posting_as_they_did(store, slack_sim):
    # A delivery written before migration 0007 has no style: it was its own message.
    change(store, "PO2209", "New")
    with store.engine.begin() as conn:
        conn.execute(update(deliveries).values(style=None))
    drain(store, slack_sim)
    change(store, "PO2209", "Released")
    drain(store, slack_sim)
    # The old message was never recorded as living, so the change is a message of its own (which
    # is the document's living message from now on), not a reply.
    assert len(top_level(slack_sim)) == len(slack_sim.sim.posted(CHANNEL)) == 2
    change(store, "PO2209", "Received")
    drain(store, slack_sim)
    assert len(replies(slack_sim, top_level(slack_sim)[1]["ts"])) == 1


def test_messages_show_the_configured_iso_code_for_an_erp_currency_id_and_the_outbox_keeps_the_id(store, slack_sim):
    change(store, "PO2210", "New", currency="Z-US$", total="2500.00")
    change(store, "PO2211", "New", currency="Z-C$", total="80.00")  # not mapped: shown as the ERP has it
    drain(store, slack_sim, currency_codes={"Z-US$": "USD"})
    first, second = top_level(slack_sim)
    assert "USD 2,500.00" in text(first) and "Z-US$" not in text(first)
    assert "Z-C$80.00" in text(second)
    assert '"currency": "Z-US$"' in store.deliveries()[0]["fields"]


def test_currency_codes_are_checked_when_the_file_is_loaded():
    import pytest

    from erp_slack.config import parse_config
    from erp_slack.errors import ConfigError

    base = {"syspro": {"base_url": "https://s.example", "operator": "OP", "operator_password": "pw",
                       "company_id": "EDU1"}}
    ok = parse_config({**base, "slack": {"token": "xoxb-t", "currency_codes": {"Z-US$": "USD"}}})
    assert ok.slack.currency_codes == {"Z-US$": "USD"}
    for bad in ("usd", "US$", "DOLLAR"):
        with pytest.raises(ConfigError) as err:
            parse_config({**base, "slack": {"token": "xoxb-t", "currency_codes": {"Z-US$": bad}}})
        assert err.value.path.startswith("slack.currency_codes"), err.value.path
