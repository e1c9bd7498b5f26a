"""The weekly risk model: trained from the outcome log, stored with its version, window and metrics."""

from __future__ import annotations

from typing import Annotated

from prefect import flow
from pydantic import Field, WithJsonSchema

from campaigns.bootstrap import ready_services
from flows.credentials import load_credentials
from tasks.risk_tasks import train_and_publish

TrainingDays = Annotated[
    int,
    Field(ge=28, le=730),
    WithJsonSchema({"type": "integer", "minimum": 28, "maximum": 730,
                    "description": "How many days of assignments (whose attribution window has closed) to learn from."}),
]


@flow(name="train_risk_model",
      description="Train the next risk model version from the outcome log (logistic regression, explainable); with "
                  "too little history it says so and the segments decide.")
def train_risk_model(days: TrainingDays = 180) -> dict:
    ready_services(load_credentials())
    return train_and_publish(days)
