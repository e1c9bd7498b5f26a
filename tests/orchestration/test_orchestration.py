"""A snapshot of the orchestration surface: prefect.yaml, its entrypoints, schedules and parameters."""

from __future__ import annotations

import importlib
import inspect
from zoneinfo import ZoneInfo

import pytest
import yaml
from prefect.cli.deploy._models import PrefectYamlModel
from prefect.flows import Flow

from campaigns.settings import PROJECT_ROOT, Settings

EXPECTED = {
    "daily": "daily_campaign",
    "pre-due-reminder": "pre_due_reminder",
    "soft-nudge": "soft_nudge",
    "plan-offer": "plan_offer",
    "escalation": "escalation",
    "thank-you": "thank_you",
    "dispatch": "dispatch",
    "daily-deadline": "daily_deadline",
    "effectiveness-review": "effectiveness_review",
    "adhoc-campaign": "adhoc_campaign",
    "train-risk-model": "train_risk_model",
    "train-uplift-model": "train_uplift_model",
    "retention": "retention",
}
NOT_STAGES = ("daily", "dispatch", "daily-deadline", "effectiveness-review", "adhoc-campaign", "train-risk-model",
              "train-uplift-model", "retention")


@pytest.fixture(scope="module")
def config():
    raw = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())
    return raw, PrefectYamlModel.model_validate(raw)


def load_entrypoint(entrypoint: str) -> Flow:
    path, name = entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, name)


def test_deployments_are_the_ladder(config):
    _, model = config
    assert {d.name: load_entrypoint(d.entrypoint).name for d in model.deployments} == EXPECTED


def test_every_entrypoint_is_a_flow_with_the_run_parameters(config):
    _, model = config
    for deployment in model.deployments:
        if deployment.name in NOT_STAGES[1:]:
            continue
        flow = load_entrypoint(deployment.entrypoint)
        assert isinstance(flow, Flow)
        assert list(inspect.signature(flow.fn).parameters) == ["as_of", "now", "dry_run"]
        schema = flow.parameters.model_dump()
        assert set(schema["properties"]) == {"as_of", "now", "dry_run"} and not schema.get("required")
        assert set(deployment.parameters) <= set(schema["properties"])


def test_daily_runs_every_morning_in_the_lender_zone_without_overlap(config):
    raw, model = config
    daily = next(d for d in model.deployments if d.name == "daily")
    [schedule] = daily.schedules
    assert schedule.cron == "0 9 * * *"
    ZoneInfo(schedule.timezone)
    assert schedule.timezone == Settings.model_fields["lender_timezone"].default
    assert daily.concurrency_limit.limit == 1 and daily.concurrency_limit.collision_strategy == "CANCEL_NEW"
    stage_deployments = [d for d in model.deployments if d.name not in NOT_STAGES]
    assert all(not d.schedules for d in stage_deployments)  # the daily run covers them
    assert all(d.concurrency_limit.limit == 1 for d in stage_deployments)


def test_dispatch_runs_every_15_minutes_one_at_a_time(config):
    _, model = config
    dispatch = next(d for d in model.deployments if d.name == "dispatch")
    flow = load_entrypoint(dispatch.entrypoint)
    assert list(inspect.signature(flow.fn).parameters) == ["now"]
    [schedule] = dispatch.schedules
    assert schedule.interval.total_seconds() == 900
    assert dispatch.concurrency_limit.limit == 1


def test_the_deadline_check_runs_later_the_same_morning_in_the_same_zone(config):
    _, model = config
    daily = next(d for d in model.deployments if d.name == "daily")
    deadline = next(d for d in model.deployments if d.name == "daily-deadline")
    [morning], [cutoff] = daily.schedules, deadline.schedules
    assert cutoff.timezone == morning.timezone
    assert int(cutoff.cron.split()[1]) > int(morning.cron.split()[1])
    assert list(inspect.signature(load_entrypoint(deadline.entrypoint).fn).parameters) == ["as_of"]


def test_the_review_runs_weekly_in_the_lender_zone_with_its_days_as_parameters(config):
    _, model = config
    review = next(d for d in model.deployments if d.name == "effectiveness-review")
    [schedule] = review.schedules
    assert schedule.cron == "0 7 * * 1" and schedule.timezone == Settings.model_fields["lender_timezone"].default
    flow = load_entrypoint(review.entrypoint)
    assert list(inspect.signature(flow.fn).parameters) == ["since", "until", "out_dir"]
    properties = flow.parameters.model_dump()["properties"]
    assert properties["since"]["format"] == properties["until"]["format"] == "date"


@pytest.mark.parametrize("name", ["train-risk-model", "train-uplift-model"])
def test_the_models_train_weekly_before_the_review(config, name):
    _, model = config
    training = next(d for d in model.deployments if d.name == name)
    [schedule] = training.schedules
    assert schedule.cron == "0 6 * * 0" and schedule.timezone == Settings.model_fields["lender_timezone"].default
    days = load_entrypoint(training.entrypoint).parameters.model_dump()["properties"]["days"]
    assert (days["type"], days["default"], days["minimum"]) == ("integer", 180, 28)


def test_retention_runs_every_night_before_the_morning_run_one_at_a_time(config):
    _, model = config
    retention = next(d for d in model.deployments if d.name == "retention")
    daily = next(d for d in model.deployments if d.name == "daily")
    [night], [morning] = retention.schedules, daily.schedules
    assert night.timezone == morning.timezone == Settings.model_fields["lender_timezone"].default
    assert night.cron.split()[2:] == ["*", "*", "*"] and int(night.cron.split()[1]) < int(morning.cron.split()[1])
    assert retention.concurrency_limit.limit == 1 and retention.parameters == {"dry_run": False}
    assert list(inspect.signature(load_entrypoint(retention.entrypoint).fn).parameters) == ["now", "dry_run"]


def test_the_adhoc_deployment_asks_for_a_stage_and_a_validated_cohort_and_previews_by_default(config):
    _, model = config
    adhoc = next(d for d in model.deployments if d.name == "adhoc-campaign")
    assert not adhoc.schedules and adhoc.parameters == {"dry_run": True}  # a person starts it, and sees first
    schema = load_entrypoint(adhoc.entrypoint).parameters.model_dump()
    assert schema["required"] == ["stage", "cohort"]
    assert schema["definitions"]["AdhocStage"]["enum"] == ["pre_due", "soft_nudge", "plan_offer", "escalation"]
    cohort = schema["definitions"]["AdhocCohort"]
    assert set(cohort["properties"]) == {"file", "filter", "view"} and cohort["additionalProperties"] is False
    assert all(len(p["description"]) > 30 for p in cohort["properties"].values())


def test_every_parameter_has_a_type_and_a_description_for_the_run_form(config):
    """The UI's "Run" form is built from these schemas: no untyped field, nothing unexplained."""
    _, model = config
    for deployment in model.deployments:
        properties = load_entrypoint(deployment.entrypoint).parameters.model_dump()["properties"]
        for name, prop in properties.items():
            if "$ref" in prop:  # the ad-hoc stage and cohort: a described model (the test above)
                continue
            assert prop.get("type") in ("string", "boolean", "integer"), (deployment.name, name, prop)
            assert len(prop.get("description", "")) > 30, (deployment.name, name)
        if "as_of" in properties:
            assert properties["as_of"]["format"] == "date"
        if "now" in properties:
            assert properties["now"]["format"] == "date-time" and "UTC offset" in properties["now"]["description"]


def test_a_now_without_offset_is_refused_with_what_to_write():
    from flows.daily import daily_campaign

    with pytest.raises(Exception, match="now needs a UTC offset, e.g. 2026-11-23T09:00:00-05:00"):
        daily_campaign.validate_parameters({"now": "2026-11-23T09:00:00"})
    ok = daily_campaign.validate_parameters({"as_of": "2026-11-23", "now": "2026-11-23T14:00:00Z"})
    assert ok["now"].utcoffset() is not None


def test_workers_get_settings_from_the_project_not_the_deployer_and_no_credentials_are_in_the_file(config):
    raw, model = config
    text = (PROJECT_ROOT / "prefect.yaml").read_text()
    for word in ("API_KEY", "AUTH_TOKEN", "SECRET", "PASSWORD", "DATABASE_URL"):
        assert word not in text.upper().replace("# ", ""), word
    [step] = raw["pull"]
    assert step["prefect.deployments.steps.set_working_directory"]["directory"] == "{{ $CAMPAIGNS_HOME }}"
    for deployment in model.deployments:
        env = deployment.work_pool.job_variables["env"]
        assert env["PREFECT_RESULTS_DEFAULT_SERIALIZER"] == "json"
        assert env["PREFECT_LOCAL_STORAGE_PATH"].startswith("{{ $CAMPAIGNS_HOME }}/var/")
