"""Reports over the audit store (pandas): what was posted, updated, filtered, failed.

``delivery_table`` counts deliveries per day, channel and entity; ``failures`` lists what
failed and why; ``summary_markdown`` is the run artifact shown in the Prefect UI.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Mapping

import pandas as pd
from sqlalchemy import select

from erp_slack.model import readable_watermark
from erp_slack.schema import DeliveryStatus, deliveries
from erp_slack.store import Store, utcnow

__all__ = [
    "status_frame", "status_markdown","delivery_table", "failures", "to_markdown", "summary_markdown", "report_markdown", "write_csv"]

COLUMNS = ["posted", "updated", "filtered", "dry_run", "pending", "failed", "dead"]


def _frame(store: Store, since: datetime | None) -> pd.DataFrame:
    q = select(
        deliveries.c.created_at, deliveries.c.sent_at, deliveries.c.channel, deliveries.c.entity,
        deliveries.c.source, deliveries.c.company, deliveries.c.event, deliveries.c.status, deliveries.c.last_error,
        deliveries.c.record_key, deliveries.c.reason,
    ).where(deliveries.c.dry_run.is_(False) | (deliveries.c.status == DeliveryStatus.DRY_RUN))
    if since is not None:
        q = q.where(deliveries.c.created_at >= since)
    with store.engine.connect() as conn:
        df = pd.DataFrame(conn.execute(q).all(), columns=[
            "created_at", "sent_at", "channel", "entity", "source", "company", "event", "status", "last_error",
            "record_key", "reason",
        ])
    return df


def delivery_table(store: Store, *, days: int = 7) -> pd.DataFrame:
    """Counts per day, source, company, channel and entity over the last ``days`` days."""
    df = _frame(store, utcnow() - timedelta(days=days))
    index = ["day", "source", "company", "channel", "entity"]
    if df.empty:
        return pd.DataFrame(columns=[*index, *COLUMNS])
    df["day"] = pd.to_datetime(df["created_at"], utc=True).dt.strftime("%Y-%m-%d")
    df["channel"] = df["channel"].where(df["channel"] != "", "(none)")

    def bucket(row: Any) -> str:
        if row.status == DeliveryStatus.SENT:
            return "posted" if row.event == "created" else "updated"
        if row.status in (DeliveryStatus.PENDING, DeliveryStatus.SENDING):
            return "pending"
        return row.status.replace("-", "_")

    df["bucket"] = df.apply(bucket, axis=1)
    table = (
        df.pivot_table(index=index, columns="bucket", values="record_key", aggfunc="count", fill_value=0)
        .reindex(columns=COLUMNS, fill_value=0)
        .reset_index()
    )
    table.columns.name = None
    return table.sort_values(index).reset_index(drop=True)


def failures(store: Store, *, days: int = 7) -> pd.DataFrame:
    """Failed and dead deliveries with their reasons."""
    df = _frame(store, utcnow() - timedelta(days=days))
    df = df[df["status"].isin([DeliveryStatus.FAILED, DeliveryStatus.DEAD])]
    return df[["created_at", "source", "company", "entity", "record_key", "channel", "status", "last_error"]
              ].reset_index(drop=True)


def write_csv(store: Store, path: str, *, days: int = 7) -> list[str]:
    """The report as two CSV files (counts, and failures next to it); returns both paths."""
    from pathlib import Path

    counts = Path(path)
    failed = counts.with_name(counts.stem + "-failures" + (counts.suffix or ".csv"))
    counts.parent.mkdir(parents=True, exist_ok=True)
    delivery_table(store, days=days).to_csv(counts, index=False)
    failures(store, days=days).to_csv(failed, index=False)
    return [str(counts), str(failed)]


def to_markdown(df: pd.DataFrame) -> str:
    if df.empty:
        return "_nothing yet_"
    return df.to_markdown(index=False)


_STATUS_COLUMNS = {
    "source": "Source", "company": "Company", "entity": "Entity", "last_poll": "Last poll",
    "last_change": "Last change", "watermark": "Read up to", "pending": "Pending", "sending": "Sending",
    "filtered": "Held back", "failed": "Failed", "dead": "Dead", "oldest_waiting": "Oldest waiting",
}


def status_frame(store: Store, now: datetime | None = None) -> pd.DataFrame:
    """``Store.status`` as a table people read: times as ages, watermarks as the ERP shows them."""
    now = now or utcnow()
    rows = store.status(now)
    df = pd.DataFrame(rows, columns=list(_STATUS_COLUMNS))
    if df.empty:
        return df.rename(columns=_STATUS_COLUMNS)
    for col in ("last_poll", "last_change"):
        df[col] = [("never" if v is None or pd.isna(v) else _age(now - v) + " ago") for v in df[col]]
    df["watermark"] = [readable_watermark(v) for v in df["watermark"]]
    df["oldest_waiting"] = [("—" if v is None or pd.isna(v) else _age(v)) for v in df["oldest_waiting"]]
    return df.rename(columns=_STATUS_COLUMNS)


def status_markdown(store: Store) -> str:
    """The status table as Markdown (``erp-slack status`` and the run's status artifact)."""
    df = status_frame(store)
    return "_nothing polled yet_" if df.empty else to_markdown(df)


def report_markdown(store: Store, *, days: int = 7) -> str:
    """The whole report as Markdown: counts, oldest pending age, failures."""
    age = store.oldest_pending_age()
    held = store.held()
    parts = [
        f"## Deliveries, last {days} days", to_markdown(delivery_table(store, days=days)), "",
        f"Oldest pending delivery: {_age(age)}", "",
        *([f"Held for quiet hours: {held} (pending; they go out as a digest when the window ends)", ""]
          if held else []),
        "## Failures", to_markdown(failures(store, days=days)),
    ]
    return "\n".join(parts)


_POLL_HEADERS = {
    "entity": "Entity", "rows_seen": "Rows read", "new": "New", "updated": "Updated",
    "filtered": "Held back", "dry_run_rows": "Would post (dry run)", "bad": "Quarantined",
    "watermark_after": "Read up to",
}
SHOWN_DOCUMENTS = 50  # documents listed in a run summary; the rest are counted


def summary_markdown(summary: Mapping[str, Any], store: Store) -> str:
    """The run artifact a person reads in the Prefect UI: what each entity read, the documents
    this run posted (with links to the messages), what failed, then the 7-day counts."""
    title = f"# {_SOURCE.get(summary['source'], summary['source'])} · company {summary['company']}"
    lines = [title + (" (dry run)" if summary.get("dry_run") else "")]
    polls = pd.DataFrame(summary.get("polls") or [])
    if polls.empty:
        lines.append("_no entities polled_")
    else:
        polls = polls.copy()
        polls["watermark_after"] = polls["watermark_after"].map(readable_watermark)
        polls["entity"] = [f"{e} (skipped: not offered)" if s else e
                           for e, s in zip(polls["entity"], polls.get("skipped", [None] * len(polls)))]
        lines.append(to_markdown(polls[list(_POLL_HEADERS)].rename(columns=_POLL_HEADERS)))
    lines += ["", (f"Delivered {summary.get('delivered_records', 0)} records in {summary.get('messages', 0)} Slack "
                   f"messages; {summary.get('failed', 0)} failed, {summary.get('dead', 0)} dead letters, "
                   f"{summary.get('pending_left', 0)} still pending; Slack asked to slow down "
                   f"{summary.get('rate_limited', 0)} times.")]
    if summary.get("in_flight"):
        age = summary.get("in_flight_age")
        minutes = f", the oldest claimed {int(age.total_seconds() // 60)} min ago" if age is not None else ""
        lines.append(f"**Still sending:** {summary['in_flight']} record(s) under a claim{minutes} "
                     "(another run's batch, or one checked against Slack once its lease is over).")
    if summary.get("halted"):
        lines.append(f"**Delivery halted:** {summary['halted']}")
    started = summary.get("started_at")
    if started is not None:
        lines += ["", "## Posted by this run", _posted_since(store, started, summary["source"])]
    lines += ["", report_markdown(store)]
    return "\n".join(lines)


_SOURCE = {"syspro": "SYSPRO", "gp": "Dynamics GP"}


def _posted_since(store: Store, started: Any, source: str) -> str:
    import json

    q = (
        select(deliveries.c.entity, deliveries.c.record_key, deliveries.c.event, deliveries.c.channel,
               deliveries.c.fields, deliveries.c.permalink)
        .where(deliveries.c.source == source, deliveries.c.status == DeliveryStatus.SENT, deliveries.c.sent_at >= started)
        .order_by(deliveries.c.id)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    if not rows:
        return "_nothing_"
    table = []
    for r in rows[:SHOWN_DOCUMENTS]:
        f = json.loads(r.fields)
        party = f.get("supplier_name") or f.get("vendor_name") or f.get("supplier") or f.get("vendor") or ""
        amount = next((f[k] for k in ("amount", "total", "value", "debit") if f.get(k) not in (None, "")), "")
        money = f"{amount} {f.get('currency') or ''}".strip() if amount != "" else ""
        link = f"[message]({r.permalink})" if r.permalink else ""
        table.append({"Document": f"{r.entity} {r.record_key}", "What": r.event.replace("_", " "),
                      "Supplier / vendor": party, "Amount": money, "Channel": r.channel, "Slack": link})
    out = pd.DataFrame(table).to_markdown(index=False)
    if len(rows) > SHOWN_DOCUMENTS:
        out += f"\n\n… and {len(rows) - SHOWN_DOCUMENTS} more (see `erp-slack report`)."
    return out


def _age(age: timedelta | None) -> str:
    if age is None:
        return "none"
    minutes = int(age.total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"
