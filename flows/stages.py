"""One flow per rung of the ladder. Who each selects is in config/ladder.yaml."""

from __future__ import annotations

from prefect import flow

from campaigns.db.models import Stage
from flows.parameters import AsOf, DryRun, Now
from flows.runners import RunnerFromSettings
from flows.stage_run import run_stage


@flow(name="pre_due_reminder", description="Friendly reminder before the due date.", task_runner=RunnerFromSettings())
def pre_due_reminder(as_of: AsOf = None, now: Now = None, dry_run: DryRun = False) -> dict:
    return run_stage(Stage.pre_due, as_of, now, dry_run)


@flow(name="soft_nudge", description="Gentle note soon after the due date.", task_runner=RunnerFromSettings())
def soft_nudge(as_of: AsOf = None, now: Now = None, dry_run: DryRun = False) -> dict:
    return run_stage(Stage.soft_nudge, as_of, now, dry_run)


@flow(name="plan_offer", description="Instalment options once the debt has aged.", task_runner=RunnerFromSettings())
def plan_offer(as_of: AsOf = None, now: Now = None, dry_run: DryRun = False) -> dict:
    return run_stage(Stage.plan_offer, as_of, now, dry_run)


@flow(name="escalation", description="Hand the account to people: the agents' worklist.", task_runner=RunnerFromSettings())
def escalation(as_of: AsOf = None, now: Now = None, dry_run: DryRun = False) -> dict:
    return run_stage(Stage.escalation, as_of, now, dry_run)


@flow(name="thank_you", description="One thank-you when an account is paid in full.", task_runner=RunnerFromSettings())
def thank_you(as_of: AsOf = None, now: Now = None, dry_run: DryRun = False) -> dict:
    return run_stage(Stage.thank_you, as_of, now, dry_run)


STAGE_FLOWS = {
    Stage.pre_due: pre_due_reminder,
    Stage.soft_nudge: soft_nudge,
    Stage.plan_offer: plan_offer,
    Stage.escalation: escalation,
    Stage.thank_you: thank_you,
}
