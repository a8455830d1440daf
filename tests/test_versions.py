"""The outbox's pure decision (``store.classify_version``): is a record version news, and what changed?

Each row: the latest recorded state of the key (None: never seen), the incoming version, and
what it must count as. The store applies the verdict; ``test_store.py`` checks it does so in SQL.
"""

from __future__ import annotations

from typing import Any

import pytest

from erp_slack.store import NewDelivery, Verdict, classify_version

FIELDS = {"invoice": "INV-1", "amount": "100.00", "status": "open", "note": "x"}


def item(version: str = "v2", delivery: str = "pending", watch: tuple[str, ...] = (), **fields: Any) -> NewDelivery:
    return NewDelivery(record_key="K", version=version, channel="#ap", status=delivery, fields={**FIELDS, **fields},
                       cursor="1", status_field="status", watch=watch)


def latest(version: str = "v1", delivery: str = "sent", dry_run: bool = False, row_id: int = 7,
           **fields: Any) -> dict[str, Any]:
    return {"latest": version, "latest_id": row_id, "latest_status": delivery, "latest_dry_run": dry_run,
            "fields": {**FIELDS, **fields}}


CASES = [
    # (why, latest state, incoming, repeated in page, live backfill, verdict)
    ("a key never seen is created", None, item(), False, False, Verdict("created")),
    ("the version last recorded is a duplicate", latest("v2"), item("v2"), False, False, Verdict(None)),
    ("the same version twice in one page is one", None, item(), True, False, Verdict(None)),
    ("an amount change is an update naming it", latest(), item(amount="90.00"), False, False,
     Verdict("updated", [("amount", "100.00", "90.00")])),
    ("a status field change is a status change", latest(), item(status="paid"), False, False,
     Verdict("status_change", [("status", "open", "paid")])),
    ("a new hash with no watched change is not news", latest(), item(watch=("amount",), note="y"), False, False,
     Verdict(None)),
    ("an unwatched field never shows as a change", latest(), item(watch=("amount",), amount="1.00", note="y"),
     False, False, Verdict("updated", [("amount", "100.00", "1.00")])),
    ("returning to an earlier state is news again", latest("v1", amount="90.00"), item("v0"), False, False,
     Verdict("updated", [("amount", "90.00", "100.00")])),
    ("a live backfill revives a held-back latest version", latest("v2", delivery="filtered"), item("v2"), False, True,
     Verdict(None, revive=7)),
    ("a normal poll never revives", latest("v2", delivery="filtered"), item("v2"), False, False, Verdict(None)),
    ("a dry-run backfill rehearses the revival as created", latest("v2", delivery="filtered"),
     item("v2", delivery="dry-run"), False, True, Verdict("created")),
    ("a held-back row from a dry run is not revived", latest("v2", delivery="filtered", dry_run=True), item("v2"),
     False, True, Verdict(None)),
    ("a backfill that still holds the row back revives nothing", latest("v2", delivery="filtered"),
     item("v2", delivery="filtered"), False, True, Verdict(None)),
]


@pytest.mark.parametrize("why, prior, incoming, repeated, backfill, expected", CASES, ids=[c[0] for c in CASES])
def test_classify_version(why: str, prior: Any, incoming: NewDelivery, repeated: bool, backfill: bool,
                          expected: Verdict) -> None:
    assert classify_version(incoming, prior, repeated=repeated, requeue_filtered=backfill) == expected
