"""The weekly effectiveness review: what worked, written to files and shown as Prefect artifacts."""

from __future__ import annotations

from prefect import flow

from campaigns.bootstrap import ready_services
from flows.credentials import load_credentials
from flows.parameters import OutDir, ReviewDay
from tasks.review_tasks import review_and_publish

@flow(name="effectiveness_review",
      description="What works: arms, cure and recovery, uplift against the holdout and the champion, as files "
                  "and artifacts.")
def effectiveness_review(since: ReviewDay = None, until: ReviewDay = None, out_dir: OutDir = None) -> dict:
    ready_services(load_credentials())  # one clear error if the database is missing or behind
    return review_and_publish(since, until, out_dir)
