"""`erp-slack report`: counts per source and company, and every file it writes is named."""

from __future__ import annotations

from pathlib import Path

from cli.main import main
from erp_slack.store import NewDelivery, Store


def _fill(store: Store) -> None:
    for source, company in (("syspro", "EDU1"), ("gp", "Fabrikam, Inc.")):
        store.enqueue(source=source, company=company, entity="ap_invoice",
                      items=[NewDelivery(record_key=f"{company}-{i}", version="v", channel="#ap", status="pending",
                                         fields={"invoice": str(i)}, cursor="1") for i in range(2)])


def test_the_report_counts_per_source_and_company_and_names_its_files(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'a.db'}"
    store = Store(db)
    _fill(store)
    store.dispose()
    assert main(["report", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "| source" in out and "| company" in out and "Fabrikam, Inc." in out and "EDU1" in out
    csv = tmp_path / "out" / "report.csv"
    assert main(["report", "--db", db, "--csv", str(csv)]) == 0
    written = [line.removeprefix("wrote ") for line in capsys.readouterr().out.splitlines()]
    assert written == [str(csv), str(tmp_path / "out" / "report-failures.csv")]
    assert all(Path(p).exists() for p in written)
    assert "company" in csv.read_text().splitlines()[0]


def test_the_run_summary_reads_as_what_happened(tmp_path):
    from datetime import datetime, timedelta, timezone

    from erp_slack.report import SHOWN_DOCUMENTS, summary_markdown

    store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    started = datetime.now(timezone.utc) - timedelta(seconds=5)
    n = SHOWN_DOCUMENTS + 3
    res = store.enqueue(source="syspro", company="EDU1", entity="ap_invoice", items=[NewDelivery(
                            record_key=f"0000001|INV-{i}", version="v", channel="#ap-invoices", status="pending",
                            fields={"invoice": f"INV-{i}", "supplier_name": "Acme Bearings", "amount": "1250.00",
                                    "currency": "USD"}, cursor="1") for i in range(n)])
    for i, rid in enumerate(res.ids):
        store.claim("#ap-invoices", 1, worker="w")
        store.mark_sent([rid], worker="w", channel_id="C1", ts=f"1.{i}", permalink=f"https://x.slack.com/p{i}",
                        payload=None, batch_uid=f"b{i}")
    poll = {"entity": "ap_invoice", "rows_seen": n, "new": n, "updated": 0, "filtered": 0, "dry_run_rows": 0,
            "bad": 0, "watermark_after": str(0x0A21F7), "skipped": None}
    text = summary_markdown({"source": "syspro", "company": "EDU1", "polls": [poll], "started_at": started,
                             "delivered_records": n, "messages": n}, store)
    assert text.startswith("# SYSPRO · company EDU1")
    assert "Rows read" in text and "rows_seen" not in text and "rowversion 0x00000000000A21F7" in text
    assert "Acme Bearings" in text and "1250.00 USD" in text and "[message](https://x.slack.com/p0)" in text
    assert text.count("[message](") == SHOWN_DOCUMENTS and "… and 3 more" in text
