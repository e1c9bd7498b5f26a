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
    "dispatch": "dispatch",
}


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
        if deployment.name == "dispatch":
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
    stage_deployments = [d for d in model.deployments if d.name not in ("daily", "dispatch")]
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
