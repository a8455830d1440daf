"""`erp-slack report`: counts per source and company, and every file it writes is named."""

from __future__ import annotations

from pathlib import Path

from cli.main import main
from erp_slack.store import NewDelivery, Store


def _fill(store: Store) -> None:
    for source, company in (("syspro", "EDU1"), ("gp", "Fabrikam, Inc.")):
        store.enqueue(source=source, company=company, entity="ap_invoice", cursor_kind="rowversion", watermark=None,
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
