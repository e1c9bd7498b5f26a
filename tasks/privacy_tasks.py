"""The retention task: one pass of campaigns.privacy.retention, and an artifact that says what went."""

from __future__ import annotations

from datetime import datetime

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from campaigns.bootstrap import services
from campaigns.privacy.retention import apply_retention
from tasks.retries import DB_RETRIES


@task(name="apply-retention", tags=["campaigns", "db"], **DB_RETRIES)
def apply_retention_and_publish(now: datetime, dry_run: bool) -> dict:
    s = services()
    report = apply_retention(s.engine, now, message_days=s.settings.retention_message_days,
                             closed_customer_days=s.settings.retention_closed_customer_days, dry_run=dry_run)
    verb = "would be" if dry_run else "were"
    rows = [
        {"what": f"messages older than {s.settings.retention_message_days} days", "cut-off": report.messages_before,
         "count": report.messages_reduced, "done": f"{verb} reduced to the hash of what was sent"},
        {"what": "outbox copies of those messages", "cut-off": report.messages_before,
         "count": report.outbox_deleted, "done": f"{verb} deleted"},
        {"what": f"customers closed longer than {s.settings.retention_closed_customer_days} days",
         "cut-off": report.closed_before, "count": report.customers_anonymised,
         "done": f"{verb} anonymised (opt-outs kept as blind indexes)"},
    ]
    create_table_artifact(key="retention", table=rows,
                          description=("Dry run: nothing changed. " if dry_run else "")
                          + "Retention: personal data past its period (counts only)")
    get_run_logger().info("retention%s: %d messages, %d outbox copies, %d customers", " (dry run)" if dry_run
                          else "", report.messages_reduced, report.outbox_deleted, report.customers_anonymised)
    return report.as_counts()
