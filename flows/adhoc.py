"""An ad-hoc campaign: one stage for a cohort the data team chose (a file, a filter, or a named view)."""

from __future__ import annotations

import enum
from typing import Annotated

from prefect import flow
from pydantic import Field

from campaigns.contact.adhoc import AdhocCohort
from campaigns.db.models import Stage
from flows.parameters import AsOf, DryRun, Now
from flows.runners import RunnerFromSettings
from flows.stage_run import run_stage


class AdhocStage(str, enum.Enum):
    """The stages an ad-hoc cohort can run (the thank-you follows payments, not a cohort)."""

    pre_due = "pre_due"
    soft_nudge = "soft_nudge"
    plan_offer = "plan_offer"
    escalation = "escalation"


StageParam = Annotated[AdhocStage, Field(description="The stage whose messages, channels and rules the cohort gets "
                                                     "(its days-past-due selector is replaced by the cohort).")]
CohortParam = Annotated[AdhocCohort, Field(description="Exactly one of: file (CSV/Parquet path with account_id), "
                                                       "filter (days past due, balance, segment, product, locale, "
                                                       "country), or view (named in adhoc_views).")]


@flow(name="adhoc_campaign", task_runner=RunnerFromSettings(),
      description="One stage for a chosen cohort, through the same policy, experiments, idempotency and log as "
                  "the daily run.")
def adhoc_campaign(stage: StageParam, cohort: CohortParam, as_of: AsOf = None, now: Now = None,
                   dry_run: DryRun = False) -> dict:
    summary = run_stage(Stage(AdhocStage(stage).value), as_of, now, dry_run, cohort=AdhocCohort.model_validate(cohort))
    summary["cohort_source"] = AdhocCohort.model_validate(cohort).describe()
    return summary
