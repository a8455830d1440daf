"""Scheduled summaries: at set times of day one message per summary listing the documents now in a
state ("Invoices awaiting approval" at 09:00), with counts, totals per currency and due dates;
each slot posted once, a lost answer found instead of posted again, a failure told to ops while
the other summaries go. Against the loopback Slack simulator."""

from __future__ import annotations

import tempfile
from datetime import datetime, time, timezone

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from erp_slack.config import SummaryConfig, parse_config
from erp_slack.errors import ConfigError
from erp_slack.routing import Rule
from erp_slack.slack.gateway import SlackGateway
from erp_slack.slack.send import Drainer, DrainSettings
from erp_slack.slack.summary import Summary, matching_documents, post_summaries
from erp_slack.sources import all_entities
from erp_slack.store import NewDelivery, Store
from tests._history_model import PROFILE  # noqa: F401  (loads the ci or deep Hypothesis profile)

ENTITIES = all_entities()
CHANNEL = "#ap-invoices"
APPROVALS = SummaryConfig(title="Invoices awaiting approval", channel=CHANNEL, at=["09:00", "16:00"],
                          days=["mon", "tue", "wed", "thu", "fri"], timezone="Europe/London",
                          entity="payables_invoice", where={"approval": ["Pending Approval"]}).to_core()
THU_0905 = datetime(2026, 12, 3, 9, 5, tzinfo=timezone.utc)  # London is on UTC in December


def invoice(store: Store, voucher: str, approval: str, *, amount: str = "100.00", currency: str = "Z-US$",
            due: str = "2026-12-20", channel: str | None = CHANNEL, company: str = "TWO") -> None:
    """The ERP shows payables invoice ``voucher`` in ``approval``: one version in the outbox
    (``channel`` None: a route filtered it, so it was never posted on its own)."""
    store.enqueue(source="gp", company=company, entity="payables_invoice", items=[NewDelivery(
        record_key=f"Invoice|{voucher}", version=f"{approval}-{amount}", channel=channel or "",
        status="pending" if channel else "filtered", reason="" if channel else "filtered by rule 1",
        fields={"doc_type": "Invoice", "voucher": voucher, "invoice": f"INV-{voucher}", "supplier": "ACME",
                "supplier_name": "Acme Bearings", "amount": amount, "currency": currency, "due_date": due,
                "status": "Unposted", "approval": approval, "hold": "No"},
        cursor=voucher, status_field="status", watch=("approval", "amount"), style="living")])


def drain(store: Store, sim) -> None:
    Drainer(store, SlackGateway(sim.token, base_url=sim.url, timeout=5), ENTITIES,
            settings=DrainSettings(time_scale=sim.sim.time_scale, reconcile_after=0.2)).drain()


def run(store: Store, sim, summaries=(APPROVALS,), now: datetime = THU_0905, **kw):
    gateway = SlackGateway(sim.token, base_url=sim.url, timeout=5, team_url="https://acme.slack.com")
    return post_summaries(store, gateway, list(summaries), ENTITIES, now=now,
                          currency_codes={"Z-US$": "USD"}, **kw)


def summaries_in(sim, channel: str = CHANNEL) -> list[dict]:
    return [m for m in sim.sim.posted(channel) if m["metadata"]["event_type"] == "erp_summary_posted"]


def body(message: dict) -> str:
    return "\n".join(b["text"]["text"] for b in message["blocks"] if b["type"] == "section")


# --- when a summary is due ---------------------------------------------------------------------


@pytest.mark.parametrize("now, slot", [
    (datetime(2026, 12, 3, 8, 59, tzinfo=timezone.utc), datetime(2026, 12, 2, 16, 0, tzinfo=timezone.utc)),
    (datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc), datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)),
    (datetime(2026, 12, 3, 23, 0, tzinfo=timezone.utc), datetime(2026, 12, 3, 16, 0, tzinfo=timezone.utc)),
    # The weekend has no slot: Monday morning's latest is Friday 16:00.
    (datetime(2026, 12, 7, 8, 0, tzinfo=timezone.utc), datetime(2026, 12, 4, 16, 0, tzinfo=timezone.utc)),
    # Summer time: 09:00 in London is 08:00 UTC.
    (datetime(2026, 7, 1, 8, 30, tzinfo=timezone.utc), datetime(2026, 7, 1, 8, 0, tzinfo=timezone.utc)),
])
def test_the_latest_slot_is_the_last_time_of_day_on_a_chosen_day_in_the_summary_time_zone(now, slot):
    assert APPROVALS.latest_slot(now) == slot


def test_the_slot_keeps_its_local_time_on_the_days_clocks_change():
    # 29 March 2026: London springs forward at 01:00 UTC; 27 October: falls back.
    early = Summary("t", CHANNEL, (time(9, 0),), Rule(channel=CHANNEL), "Europe/London")
    assert early.latest_slot(datetime(2026, 3, 29, 8, 30, tzinfo=timezone.utc)).hour == 8
    assert early.latest_slot(datetime(2026, 3, 28, 9, 30, tzinfo=timezone.utc)).hour == 9
    assert early.label(datetime(2026, 3, 29, 8, 0, tzinfo=timezone.utc)) == "09:00 Sun 29 Mar"


# --- what it lists -------------------------------------------------------------------------------


def test_a_summary_lists_the_documents_now_awaiting_approval_with_count_totals_and_due_dates(store, slack_sim):
    invoice(store, "V1", "Pending Approval", amount="250.00", due="2026-12-24")
    invoice(store, "V2", "Pending Approval", amount="100.00", due="2026-12-10")
    invoice(store, "V3", "Pending Approval", amount="40.00", currency="EUR", channel=None)  # filtered: still counted
    invoice(store, "V4", "Pending Approval", amount="999.00")
    drain(store, slack_sim)
    invoice(store, "V4", "Approved", amount="999.00")  # moved on: drops out
    invoice(store, "V5", "Not Submitted", amount="5.00")
    drain(store, slack_sim)

    (outcome,) = run(store, slack_sim)
    assert (outcome.status, outcome.documents) == ("posted", 3)
    (message,) = summaries_in(slack_sim)
    assert message["blocks"][0]["text"]["text"] == "Invoices awaiting approval · 09:00 Thu 3 Dec"
    text = body(message)
    assert "*3* supplier invoices · *Total* EUR 40.00 · USD 350.00" in text
    lines = [line for line in text.splitlines() if "INV-" in line]
    assert [line.split(" · ")[0].split()[-1] for line in lines] == ["INV-V2", "INV-V3", "INV-V1"]  # due first
    assert "due 2026-12-10" in lines[0] and "INV-V4" not in text and "INV-V5" not in text
    # A document with a living message links its thread; one that was filtered has none.
    assert "acme.slack.com/archives/" in lines[0] and "archives" not in lines[1]
    assert "Z-US$" not in str(message)


def test_more_documents_than_the_limit_are_counted_and_the_rest_named_as_more(store, slack_sim):
    for i in range(7):
        invoice(store, f"W{i}", "Pending Approval", channel=None)
    short = SummaryConfig(title="Awaiting approval", channel=CHANNEL, at=["09:00"], entity="payables_invoice",
                          where={"approval": ["Pending Approval"]}, limit=5).to_core()
    run(store, slack_sim, [short])
    text = body(summaries_in(slack_sim)[0])
    assert "*7* supplier invoices" in text and "…and 2 more" in text
    assert sum("INV-W" in line for line in text.splitlines()) == 5


def test_nothing_matching_says_so_unless_the_summary_skips_empty_mornings(store, slack_sim):
    invoice(store, "V1", "Approved")
    (said,) = run(store, slack_sim)
    assert said.status == "posted" and "Nothing to show" in body(summaries_in(slack_sim)[0])
    quiet = SummaryConfig(title="Quiet", channel=CHANNEL, at=["09:00"], entity="payables_invoice",
                          where={"approval": ["Pending Approval"]}, post_empty=False).to_core()
    (skipped,) = run(store, slack_sim, [quiet])
    assert skipped.status == "skipped-empty" and len(summaries_in(slack_sim)) == 1


def test_a_line_says_where_a_document_stands_not_what_last_happened_to_it(store, slack_sim):
    invoice(store, "V1", "Pending Approval", amount="100.00")
    drain(store, slack_sim)
    invoice(store, "V1", "Pending Approval", amount="120.00")  # an update: its reply said what changed
    drain(store, slack_sim)
    run(store, slack_sim)
    (line,) = [x for x in body(summaries_in(slack_sim)[0]).splitlines() if "INV-V1" in x]
    assert "USD 120.00" in line and "updated" not in line.lower() and "→" not in line


def test_statuses_companies_and_amounts_filter_like_a_route(store, slack_sim):
    invoice(store, "V1", "Pending Approval", amount="50000.00")
    invoice(store, "V2", "Pending Approval", amount="10.00")
    invoice(store, "V3", "Pending Approval", amount="70000.00", company="OTHER")
    large = SummaryConfig(title="Large invoices", channel=CHANNEL, at=["09:00"], entity="payables_invoice",
                          company="TWO", min_amount="10000", statuses=["Unposted"]).to_core()
    (outcome,) = run(store, slack_sim, [large])
    assert outcome.documents == 1 and "INV-V1" in body(summaries_in(slack_sim)[0])


# --- once per slot -------------------------------------------------------------------------------


def test_each_slot_is_posted_once_however_often_the_flow_runs(store, slack_sim):
    invoice(store, "V1", "Pending Approval")
    assert [o.status for o in run(store, slack_sim)] == ["posted"]
    assert [o.status for o in run(store, slack_sim, now=THU_0905.replace(minute=40))] == ["already-posted"]
    assert [o.status for o in run(store, slack_sim, now=THU_0905.replace(hour=16, minute=1))] == ["posted"]
    assert len(summaries_in(slack_sim)) == 2
    assert "*1* supplier invoice · *Total* USD 100.00" in body(summaries_in(slack_sim)[0])
    assert [r["message"] for r in store.audit_rows("summary_posted")] == [
        "Invoices awaiting approval: 1 document"] * 2


def test_a_post_whose_answer_was_lost_is_found_in_the_channel_not_posted_again(store, slack_sim):
    invoice(store, "V1", "Pending Approval")
    slack_sim.sim.inject("chat.postMessage", stored_then_failed=True)
    (first,) = run(store, slack_sim)
    assert first.status == "failed" and len(summaries_in(slack_sim)) == 1  # Slack has it; we do not know
    (second,) = run(store, slack_sim, now=THU_0905.replace(minute=30))
    assert second.status == "found" and len(summaries_in(slack_sim)) == 1
    assert second.ts == summaries_in(slack_sim)[0]["ts"]


def test_a_summary_that_cannot_be_posted_tells_ops_once_and_the_others_still_go(store, slack_sim):
    invoice(store, "V1", "Pending Approval")
    lost = SummaryConfig(title="To nowhere", channel="#no-such-channel", at=["09:00"], entity="payables_invoice",
                         ).to_core()
    outcomes = run(store, slack_sim, [lost, APPROVALS], ops_channel="#finance-alerts")
    assert [o.status for o in outcomes] == ["failed", "posted"]
    assert "channel_not_found" in outcomes[0].error
    run(store, slack_sim, [lost], now=THU_0905.replace(minute=20), ops_channel="#finance-alerts")
    (alert,) = slack_sim.sim.posted("#finance-alerts")
    assert "Scheduled summary (To nowhere) needs attention" in alert["text"]
    assert [r["kind"] for r in store.audit_rows() if r["kind"].startswith("summary")] == [
        "summary_failed", "summary_posted", "summary_failed"]


def test_a_bot_outside_a_public_channel_joins_it_to_post(store, slack_sim):
    slack_sim.sim.kick_bot("purchasing")
    invoice(store, "V1", "Pending Approval")
    po = SummaryConfig(title="Pending", channel="#purchasing", at=["09:00"], entity="payables_invoice").to_core()
    (outcome,) = run(store, slack_sim, [po])
    assert outcome.status == "posted" and len(summaries_in(slack_sim, "#purchasing")) == 1


# --- configuration -------------------------------------------------------------------------------


def _cfg(**summary) -> dict:
    return {"dynamics_gp": {"base_url": "http://gp.example:443/GPService", "company": "TWO", "username": "CORP\\\\gp",
                            "password": "b"},
            "slack": {"token": "xoxb-1", "summaries": [{"title": "A", "channel": "#ap", "at": ["09:00"], **summary}]}}


@pytest.mark.parametrize("bad, field", [
    ({"at": []}, "slack.summaries.0.at"),
    ({"days": ["monday"]}, "slack.summaries.0.days.0"),
    ({"timezone": "Europe/Londn"}, "slack.summaries.0.timezone"),
    ({"entity": "invoices"}, "slack.summaries.0.entity"),
    ({"entity": "gl_journal", "where": {"approval": ["Pending Approval"]}}, "slack.summaries.0"),
    ({"at": ["25:00"]}, "slack.summaries.0.at.0"),
    ({"limit": 40}, "slack.summaries.0.limit"),
])
def test_a_bad_summary_is_refused_at_load_naming_the_field(bad, field):
    with pytest.raises(ConfigError) as err:
        parse_config(_cfg(**bad))
    assert str(err.value).startswith(field + ":"), str(err.value)


def test_two_summaries_with_one_title_in_one_channel_are_refused():
    data = _cfg()
    data["slack"]["summaries"].append(dict(data["slack"]["summaries"][0]))
    with pytest.raises(ConfigError, match="two summaries called 'A' post to #ap"):
        parse_config(data)


def test_the_deployment_schedules_are_one_cron_per_time_in_the_summary_time_zone():
    from cli.apply import _describe_schedule, summary_schedules

    cfg = parse_config(_cfg(at=["09:00", "16:30"], days=["mon", "tue", "wed", "thu", "fri"],
                            timezone="Europe/London"))
    cfg.slack.summaries.append(SummaryConfig(title="B", channel="#b", at=["09:00"]))
    assert [(s.cron, s.timezone) for s in summary_schedules(cfg)] == [
        ("0 9 * * *", "UTC"), ("0 9 * * 1,2,3,4,5", "Europe/London"), ("30 16 * * 1,2,3,4,5", "Europe/London")]
    assert _describe_schedule(summary_schedules(cfg)[1]) == "Mon,Tue,Wed,Thu,Fri at 09:00 Europe/London"


# --- the deployment's flow -----------------------------------------------------------------------


@pytest.mark.prefect
def test_the_summaries_flow_posts_what_the_gp_run_recorded_once_per_slot(
    prefect_harness, block_names, gp_sim, slack_sim, tmp_path,
):
    from blocks import AuditDatabase, DynamicsGpCredentials, SlackBot
    from flows.gp import gp_to_slack
    from flows.summaries import erp_summaries

    DynamicsGpCredentials(base_url=gp_sim.base_url, tenant=gp_sim.tenant, company=gp_sim.company,
                          username=gp_sim.username, password=gp_sim.password).save(block_names["gp"], overwrite=True)
    every_day = SummaryConfig(title="Open payables", channel="#ap-invoices", at=["00:00"], entity="payables_invoice",
                              where={"status": ["Posted", "Unposted"]})
    SlackBot(token=slack_sim.token, base_url=slack_sim.url, time_scale=slack_sim.sim.time_scale,
             ops_channel="#finance-alerts", summaries=[every_day]).save(block_names["slack"], overwrite=True)
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    AuditDatabase(url=db).save(block_names["audit"], overwrite=True)
    gp_to_slack(gp_block=block_names["gp"], slack_block=block_names["slack"], audit_block=block_names["audit"],
                first_run="post")

    first = erp_summaries(slack_block=block_names["slack"], audit_block=block_names["audit"])
    store = Store(db)
    try:
        expected = {d.record_key for d in store.current_documents([("gp", "payables_invoice")])
                    if d.fields.get("status") in ("Posted", "Unposted")}
    finally:
        store.dispose()
    assert expected and [(o["status"], o["documents"]) for o in first] == [("posted", len(expected))]
    (message,) = summaries_in(slack_sim)
    assert f"*{len(expected)}* supplier invoices" in body(message)
    again = erp_summaries(slack_block=block_names["slack"], audit_block=block_names["audit"])
    assert [o["status"] for o in again] == ["already-posted"] and len(summaries_in(slack_sim)) == 1


# --- generated histories ---------------------------------------------------------------------------

DOCS = ["A", "B", "C"]
STATES = ["Submitted", "Pending Approval", "Approved"]
AMOUNTS = ["50.00", "150.00", "5000.00"]
PENDING_LARGE = SummaryConfig(title="Large invoices awaiting approval", channel=CHANNEL, at=["09:00"],
                              entity="payables_invoice", where={"approval": ["Pending Approval"]},
                              min_amount="100").to_core()


class SummaryHistory(RuleBasedStateMachine):
    """Invoices change state, are re-read, rehearsed in dry runs, held back by a baseline and
    revived by a backfill; the summary always lists exactly the invoices whose latest live state
    matches, as that state."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        self.store = Store(f"sqlite:///{self.folder.name}/audit.db")
        self.latest: dict[str, tuple[str, str, str]] = {}  # doc -> (approval, amount, status of its row)

    def teardown(self) -> None:
        self.store.dispose()
        self.folder.cleanup()

    def _enqueue(self, doc: str, approval: str, amount: str, *, status: str, dry_run: bool = False,
                 requeue: bool = False) -> None:
        self.store.enqueue(source="gp", company="TWO", entity="payables_invoice", dry_run=dry_run,
                           requeue_filtered=requeue, items=[NewDelivery(
                               record_key=f"Invoice|{doc}", version=f"{approval}-{amount}", channel=CHANNEL,
                               status=status, reason="" if status == "pending" else "baseline", cursor=doc,
                               fields={"invoice": f"INV-{doc}", "supplier": "ACME", "amount": amount,
                                       "currency": "Z-US$", "approval": approval, "status": "Posted"},
                               status_field="status", watch=("approval", "amount"))])

    @rule(doc=st.sampled_from(DOCS), approval=st.sampled_from(STATES), amount=st.sampled_from(AMOUNTS),
          held_back=st.booleans())
    def erp_shows(self, doc: str, approval: str, amount: str, held_back: bool) -> None:
        self._enqueue(doc, approval, amount, status="filtered" if held_back else "pending")
        if self.latest.get(doc, ("", "", ""))[:2] != (approval, amount):
            self.latest[doc] = (approval, amount, "filtered" if held_back else "pending")

    @rule(doc=st.sampled_from(DOCS), approval=st.sampled_from(STATES), amount=st.sampled_from(AMOUNTS))
    def dry_run_rehearses(self, doc: str, approval: str, amount: str) -> None:
        self._enqueue(doc, approval, amount, status="dry-run", dry_run=True)  # changes nothing live

    @rule(doc=st.sampled_from(DOCS))
    def backfill_revives(self, doc: str) -> None:
        if doc in self.latest:
            approval, amount, _ = self.latest[doc]
            self._enqueue(doc, approval, amount, status="pending", requeue=True)

    @invariant()
    def the_summary_lists_exactly_the_matching_latest_states(self) -> None:
        listed = {d.record_key.split("|")[1]: (d.fields["approval"], d.fields["amount"])
                  for d in matching_documents(self.store, PENDING_LARGE, ENTITIES)}
        expected = {doc: (a, amt) for doc, (a, amt, _) in self.latest.items()
                    if a == "Pending Approval" and float(amt) >= 100}
        assert listed == expected


def test_summary_histories() -> None:
    run_state_machine_as_test(lambda: SummaryHistory(), settings=settings())
