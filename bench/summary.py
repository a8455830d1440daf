"""Cost of a scheduled summary over years of documents.

An audit store (SQLite, a temporary file) is filled with N supplier invoices, each recorded twice
(created, then a change), one in five now "Pending Approval"; then the summary "Invoices awaiting
approval" is built as the summaries flow builds it: each document's newest state read from the
store (streamed), filtered, and rendered as the Slack message (no Slack call). Printed: the time to
build it (median of 3) and the Python memory it allocated at its peak (tracemalloc, a separate
pass), against targets of 2 s and 50 MB at 50,000 documents.

    python -m bench.summary            # 1,000 / 10,000 / 50,000 documents
    python -m bench.summary --quick    # 1,000 / 10,000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench._sims import Row, print_machine, table, verdict
from erp_slack.config import SummaryConfig
from erp_slack.slack.render import render_summary
from erp_slack.slack.summary import matching_documents
from erp_slack.sources import all_entities
from erp_slack.store import NewDelivery, Store

SUMMARY = SummaryConfig(title="Invoices awaiting approval", channel="#ap-invoices", at=["09:00"],
                        entity="payables_invoice", where={"approval": ["Pending Approval"]}).to_core()
ENTITIES = all_entities()


def fill(store: Store, n: int) -> None:
    for version in ("Submitted", "final"):
        for start in range(0, n, 500):
            items = []
            for i in range(start, min(n, start + 500)):
                approval = "Submitted" if version == "Submitted" else ("Pending Approval" if i % 5 == 0 else "Approved")
                items.append(NewDelivery(
                    record_key=f"Invoice|{i:08d}", version=approval, channel="#ap-invoices", status="filtered",
                    reason="bench", cursor=str(i),
                    fields={"doc_type": "Invoice", "voucher": f"{i:08d}", "invoice": f"INV-{i}", "supplier": "ACME",
                            "supplier_name": "Acme Bearings", "amount": f"{100 + i % 900}.00", "currency": "Z-US$",
                            "due_date": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}", "status": "Posted",
                            "approval": approval, "hold": "No"},
                    status_field="status", watch=("approval",)))
            store.enqueue(source="gp", company="TWO", entity="payables_invoice", items=items)


def build(store: Store) -> int:
    docs = matching_documents(store, SUMMARY, ENTITIES)
    render_summary(title=SUMMARY.title, when="09:00 Thu 3 Dec", uid="bench", notices=docs, entities=ENTITIES)
    return len(docs)


def measure(n: int) -> Row:
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{Path(folder) / 'audit.db'}")
        try:
            fill(store, n)
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                listed = build(store)
                times.append(time.perf_counter() - t0)
            tracemalloc.start()
            build(store)
            peak = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()
        finally:
            store.dispose()
    seconds = statistics.median(times)
    scale = n / 50_000
    met = seconds <= 2.0 * max(scale, 0.02) and peak <= 50 * max(scale, 0.1)
    return Row([f"{n:,}", f"{listed:,}", f"{seconds:.2f}", f"{n / seconds:,.0f}", f"{peak:.1f}"], met)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print_machine()
    sizes = (1_000, 10_000) if args.quick else (1_000, 10_000, 50_000)
    rows = [measure(n) for n in sizes]
    print(table(["documents", "listed", "build s", "documents/s", "peak MB (Python)"], rows))
    print("target: 2 s and 50 MB at 50,000 documents, in proportion below")
    print(verdict("summary", rows))


if __name__ == "__main__":
    main()
