"""The failure alert: a Prefect automation that notifies a person when an unattended run fails.

It watches every deployment that runs on a schedule, without anyone starting it
(``daily``, ``dispatch``, the ``daily-deadline`` check, which fails when the day's
ladder has not completed by the lender's cut-off hour, and the weekly review, the
nightly retention and the weekly risk training) and fires when one of their runs
ends Failed, Crashed or TimedOut. When the deadline fails because the day's daily
run failed, its message says it is that same problem, already alerted. The notification goes to a webhook from
the settings (a Slack incoming webhook takes it as is) or to an existing
notification block (email, Teams, PagerDuty...). Made by a command, not by hand
in the UI, so a fresh server gets the same alert.

The message names the deployment, the run and its state and links to the run;
state messages carry ids and counts only, never personal data.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from prefect.automations import Automation, EventTrigger, Posture, SendNotification
from prefect.blocks.core import Block
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client

ALERT_BLOCK_NAME = "campaigns-alerts"
ALERT_AUTOMATION_NAME = "campaigns: an unattended run failed"
# Every scheduled deployment of prefect.yaml (tests/orchestration/test_ops_cli.py holds the two lists together).
ALERTED_DEPLOYMENTS = ("daily", "dispatch", "daily-deadline", "effectiveness-review", "retention", "train-risk-model",
                       "train-uplift-model")
FAILED_STATES = ("prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut")

SUBJECT = "Collections: {{ deployment.name }} run {{ flow_run.name }} {{ flow_run.state.name }}"
BODY = (
    "The {{ flow.name }}/{{ deployment.name }} run {{ flow_run.name }} ended {{ flow_run.state.name }}"
    "{% if flow_run.parameters.as_of %} (as of {{ flow_run.parameters.as_of }}){% endif %}: "
    "{{ flow_run.state.message }}\n"
    "Re-running the day is safe: nothing is sent twice. Run: {{ flow_run|ui_url }}"
)


class AlertsNotConfigured(ValueError):
    pass


def notification_block_id(webhook_url: str, block: str) -> UUID:
    """The block the alert sends through: ``block`` (``type-slug/name``) if given, else a webhook block
    for ``webhook_url`` (kept as a secret value, so the UI does not show a Slack token)."""
    if block:
        if "/" not in block:
            raise AlertsNotConfigured(f"CAMPAIGNS_ALERT_BLOCK={block!r} must be type-slug/name, e.g. slack-webhook/ops")
        return Block.load(block)._block_document_id
    if not webhook_url:
        raise AlertsNotConfigured("set CAMPAIGNS_ALERT_WEBHOOK_URL (or CAMPAIGNS_ALERT_BLOCK) to install alerts")
    webhook = CustomWebhookNotificationBlock(
        name=ALERT_BLOCK_NAME,
        url="{{ alert_url }}",
        json_data={"text": "{{ subject }}\n{{ body }}"},
        secrets={"alert_url": webhook_url},
    )
    return webhook.save(ALERT_BLOCK_NAME, overwrite=True)


def install_failure_alerts(settings, deployments: tuple[str, ...] = ALERTED_DEPLOYMENTS) -> Automation:
    """Create or replace the failure automation for ``deployments`` (those on the server)."""
    block_id = notification_block_id(settings.alert_webhook_url, settings.alert_block)
    with get_client(sync_client=True) as client:
        ids = [d.id for d in client.read_deployments() if d.name in deployments]
        if not ids:
            raise AlertsNotConfigured("none of the alerted deployments is on the server: "
                                      "run `campaigns ops deploy` first")
        for existing in client.read_automations_by_name(ALERT_AUTOMATION_NAME):
            client.delete_automation(existing.id)
    return Automation(
        name=ALERT_AUTOMATION_NAME,
        description="A scheduled run (daily, dispatch, daily-deadline, effectiveness-review, retention, "
                    "train-risk-model, train-uplift-model) ended Failed, Crashed or TimedOut. "
                    "Installed by `campaigns ops alerts`.",
        trigger=EventTrigger(
            expect=set(FAILED_STATES),
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.id": [f"prefect.deployment.{i}" for i in ids]},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[SendNotification(block_document_id=block_id, subject=SUBJECT, body=BODY)],
    ).create()

