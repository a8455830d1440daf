"""Reports over the audit store (pandas): what was posted, updated, filtered, failed.

``delivery_table`` counts deliveries per day, channel and entity; ``failures`` lists what
failed and why; ``summary_markdown`` is the run artifact shown in the Prefect UI.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Mapping

import pandas as pd
from sqlalchemy import select

from erp_slack.schema import deliveries
from erp_slack.store import Store, utcnow

__all__ = ["delivery_table", "failures", "to_markdown", "summary_markdown", "report_markdown", "write_csv"]

COLUMNS = ["posted", "updated", "filtered", "dry_run", "pending", "failed", "dead"]


def _frame(store: Store, since: datetime | None) -> pd.DataFrame:
    q = select(
        deliveries.c.created_at, deliveries.c.sent_at, deliveries.c.channel, deliveries.c.entity,
        deliveries.c.source, deliveries.c.company, deliveries.c.event, deliveries.c.status, deliveries.c.last_error,
        deliveries.c.record_key, deliveries.c.reason,
    ).where(deliveries.c.dry_run.is_(False) | (deliveries.c.status == "dry-run"))
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
        if row.status == "sent":
            return "posted" if row.event == "created" else "updated"
        if row.status in ("pending", "sending"):
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
    df = df[df["status"].isin(["failed", "dead"])]
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


def report_markdown(store: Store, *, days: int = 7) -> str:
    """The whole report as Markdown: counts, oldest pending age, failures."""
    age = store.oldest_pending_age()
    parts = [
        f"## Deliveries, last {days} days", to_markdown(delivery_table(store, days=days)), "",
        f"Oldest pending delivery: {_age(age)}", "",
        "## Failures", to_markdown(failures(store, days=days)),
    ]
    return "\n".join(parts)


def summary_markdown(summary: Mapping[str, Any], store: Store) -> str:
    """The run artifact: per-entity poll figures, delivery figures, then the 7-day report."""
    polls = pd.DataFrame(summary.get("polls") or [])
    cols = ["entity", "rows_seen", "new", "updated", "filtered", "dry_run_rows", "bad", "watermark_before", "watermark_after"]
    poll_md = to_markdown(polls[cols]) if not polls.empty else "_no entities polled_"
    lines = [
        f"# {summary['source']} · company {summary['company']}" + (" (dry run)" if summary.get("dry_run") else ""),
        poll_md, "",
        f"Delivered {summary.get('delivered_records', 0)} records in {summary.get('messages', 0)} Slack messages; "
        f"{summary.get('rate_limited', 0)} rate-limit answers; {summary.get('failed', 0)} failed, "
        f"{summary.get('dead', 0)} dead letters; {summary.get('pending_left', 0)} still pending.",
    ]
    if summary.get("halted"):
        lines.append(f"**Delivery halted:** {summary['halted']}")
    lines += ["", report_markdown(store)]
    return "\n".join(lines)


def _age(age: timedelta | None) -> str:
    if age is None:
        return "none"
    minutes = int(age.total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"
