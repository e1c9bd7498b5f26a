"""The uplift model's task: train the next version from the outcome log, store it, publish what it is."""

from __future__ import annotations

from datetime import datetime, timezone

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from campaigns.bootstrap import services
from campaigns.risk.model import training_units
from campaigns.risk.uplift import train_and_store
from tasks.retries import DB_RETRIES


@task(name="train-uplift-model", tags=["campaigns", "db"], **DB_RETRIES)
def train_and_publish_uplift(days: int) -> dict:
    s = services()
    now = datetime.now(timezone.utc)
    units, window = training_units(s.engine, s.review, now.astimezone(s.settings.lender_zone).date(), days)
    model = train_and_store(s.engine, units, window, now, s.review)
    create_markdown_artifact(
        key="uplift-model",
        markdown=f"# Uplift model v{model.version}: {model.status}\n\nTrained on assignments {window[0]} to "
                 f"{window[1]}: {model.contacted:,} contacted and {model.held_out:,} held out.\n\n{model.note}",
        description=f"Uplift model v{model.version} ({model.status})")
    if model.curve:
        create_table_artifact(key="uplift-model-qini", table=model.curve,
                              description=f"Uplift model v{model.version}: extra cures per contacted account when "
                                          "contacting the top share by predicted uplift, and at random, held out")
    get_run_logger().info("uplift model v%d: %s (%s)", model.version, model.status, model.note)
    return {"version": model.version, "status": model.status, "contacted": model.contacted,
            "held_out": model.held_out, "qini": model.qini, "note": model.note,
            "window": [window[0].isoformat(), window[1].isoformat()]}
