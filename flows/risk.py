"""The weekly risk model: trained from the outcome log, stored with its version, window and metrics."""

from __future__ import annotations

from prefect import flow

from campaigns.bootstrap import ready_services
from flows.credentials import load_credentials
from flows.parameters import TrainingDays
from tasks.risk_tasks import train_and_publish

@flow(name="train_risk_model",
      description="Train the next risk model version from the outcome log (logistic regression, explainable); with "
                  "too little history it says so and the segments decide.")
def train_risk_model(days: TrainingDays = 180) -> dict:
    ready_services(load_credentials())
    return train_and_publish(days)
