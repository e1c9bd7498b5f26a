"""Daily retention: personal data kept no longer than it is needed (campaigns.privacy.retention).

Old rendered messages are reduced to the hash of what was sent, their outbox
copies deleted, and customers closed for long are anonymised; the contact log's
facts stay. Scheduled in prefect.yaml (``retention``) before the morning run.
"""

from __future__ import annotations

from prefect import flow

from campaigns.bootstrap import ready_services
from campaigns.clock import resolve_clock
from flows.credentials import load_credentials
from flows.parameters import DryRun, Now
from tasks.privacy_tasks import apply_retention_and_publish


@flow(name="retention", description="Reduce old messages to their hash and anonymise long-closed customers "
                                    "(periods from settings); a dry run only counts.")
def retention(now: Now = None, dry_run: DryRun = False) -> dict:
    s = ready_services(load_credentials())
    _, moment = resolve_clock(None, now, s.settings.lender_zone)
    return apply_retention_and_publish(moment, dry_run)
